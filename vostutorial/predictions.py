"""Predictions in the YouTube-VOS submission layout, and the copy-first baseline.

``PRED_DIR/<video>/<frame>.png``: one palette PNG per frame of the video, pixel value = object
id, at the video's original resolution. ``--zip`` archives of this folder are what the
YouTube-VOS server takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data.palette import read_mask, write_mask
from .data.ytvos import VideoSample, YTVOSSplit
from .files import (
    atomic_write,
    check_name,
    file_sha256,
    is_empty_dir,
    require_writable_dir,
    write_json,
    write_text,
)

MARKER = ".vostutorial-predictions.json"  # what produced the folder (`open_predictions`)
LOCK = ".lock"  # held while a run writes into the folder
ZIP_RECORD = ".vostutorial-zip"  # the SHA-256 of the PRED_DIR.zip the kit wrote beside it


def predictions_dir(root: str | os.PathLike, method: str) -> Path:
    """Where the demo and the notebooks keep a method's predictions for dataset ``root``:
    ``<root>/predictions/<method>``, inside the dataset folder the user named."""
    return Path(root) / "predictions" / method


def _tag(producer: dict) -> str:
    return hashlib.sha256(json.dumps(producer, sort_keys=True).encode()).hexdigest()[:16]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextmanager
def _lock(pred_dir: Path) -> Iterator[None]:
    """Hold ``pred_dir/.lock`` while writing; a second run on the same folder is refused, a
    lock left by a run that died is taken over."""
    path = pred_dir / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise ValueError(
                    f"{pred_dir}: another run (pid {pid}) is writing predictions here; wait "
                    f"for it to finish or choose another --out (a stale lock is {path})"
                ) from None
            path.unlink(missing_ok=True)  # its writer is gone
    else:
        raise ValueError(f"{path}: cannot take the lock; remove it if no run is writing here")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


@contextmanager
def open_predictions(
    pred_dir: str | os.PathLike, producer: dict, overwrite: bool = False
) -> Iterator[str]:
    """Make ``pred_dir`` ready for predictions made by ``producer`` (checkpoint hash, settings,
    split: everything that decides the pixels) and hold its lock; yields the tag that
    `write_video_masks` and `video_done` take.

    A new or empty folder is claimed. A folder of the same producer is resumed (finished
    videos are kept). A folder of another producer is an error unless ``overwrite`` (then every
    video is predicted again). A non-empty folder that the kit did not write is never touched.
    """
    pred_dir = require_writable_dir(Path(pred_dir))
    marker = pred_dir / MARKER
    if marker.is_file():
        try:
            saved = json.loads(marker.read_text())
        except ValueError:
            saved = {}
        if saved != producer and not overwrite:
            keys = {**saved, **producer}  # a setting only one of them has differs too
            diff = {
                k: (saved.get(k), producer.get(k)) for k in keys if saved.get(k) != producer.get(k)
            }
            raise ValueError(
                f"{pred_dir}: holds predictions made with other settings {diff} (there, now); "
                "pass --overwrite to replace them, or choose another --out"
            )
    elif not is_empty_dir(pred_dir):
        raise ValueError(
            f"{pred_dir}: not a predictions folder written by vostutorial (no {MARKER}) and not "
            "empty; refusing to write into it: choose a new or empty --out"
        )
    with _lock(pred_dir):
        write_json(marker, producer)
        yield _tag(producer)


def write_video_masks(
    pred_dir: str | os.PathLike, video: str, names: list[str], masks: np.ndarray, tag: str = ""
) -> None:
    """Write ``(T, H, W)`` id masks as ``pred_dir/video/<name>.png`` (each file atomically).

    A ``.done`` marker holding ``tag`` (who made them, from `open_predictions`) is written last:
    it tells a re-run of the same producer that the video is complete.
    """
    if len(names) != len(masks):
        raise ValueError(f"{video}: {len(names)} frame names but {len(masks)} masks")
    check_name(video, "video", pred_dir)
    out = Path(pred_dir) / video
    out.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, masks, strict=True):
        write_mask(out / f"{check_name(name, 'frame', out)}.png", mask)
    write_text(out / ".done", tag)


def video_done(pred_dir: str | os.PathLike, video: str, tag: str = "") -> bool:
    """True when `write_video_masks` finished this video for the producer ``tag``."""
    path = Path(pred_dir) / video / ".done"
    return path.is_file() and path.read_text() == tag


def read_video_masks(pred_dir: str | os.PathLike, video: str, names: list[str]) -> np.ndarray:
    """``(T, H, W)`` uint8 ids from ``pred_dir/video/<name>.png``."""
    return np.stack([read_mask(Path(pred_dir) / video / f"{n}.png") for n in names])


def copy_first(sample: VideoSample) -> np.ndarray:
    """The copy-first baseline: every object's given mask copied unchanged to all later frames.

    Returns ``(T, H, W)`` uint8 ids. Objects are painted in id order, so where two given masks
    overlap on a later frame the higher id wins; before its first frame an object is absent.
    """
    t, h, w = sample.frames.shape[:3]
    out = np.zeros((t, h, w), np.uint8)
    for oid, (start, mask) in sorted(sample.first_masks.items()):
        out[start:][:, mask] = oid
    return out


BASELINES = ("copy-first", "label-propagation")


def _baseline(method: str) -> Callable[[VideoSample], np.ndarray]:
    """The function ``sample -> (T, H, W) ids`` of a baseline in `BASELINES`."""
    if method == "copy-first":
        return copy_first
    if method == "label-propagation":
        from .propagation import feature_extractor, propagate_labels  # loads torch and VGG16

        trunk = feature_extractor("hed")
        return lambda sample: propagate_labels(trunk, sample.frames, sample.first_masks)
    raise ValueError(f"unknown baseline {method!r}; choose from {list(BASELINES)}")


def baseline_predictions(
    root: str | os.PathLike,
    split: str,
    pred_dir: str | os.PathLike,
    method: str = "copy-first",
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a baseline's predictions for every video of a split: ``copy-first`` (`copy_first`)
    or ``label-propagation`` (`propagation.propagate_labels`, training-free, on HED's VGG16)."""
    predict = _baseline(method)
    ds = YTVOSSplit(root, split)
    producer = {"method": method, **ds.identity()}
    with open_predictions(pred_dir, producer, overwrite) as tag:
        todo = [v for v in ds.videos if overwrite or not video_done(pred_dir, v, tag)]
        for video in tqdm(todo, desc=method, unit="video", disable=not progress):
            sample = ds.read_video(video)
            write_video_masks(pred_dir, video, sample.frame_names, predict(sample), tag)
    return Path(pred_dir)


def baseline_copy_first(
    root: str | os.PathLike,
    split: str,
    pred_dir: str | os.PathLike,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the copy-first baseline's predictions for every video of a split."""
    return baseline_predictions(root, split, pred_dir, "copy-first", progress, overwrite)


def zip_path_for(pred_dir: str | os.PathLike) -> Path:
    """``PRED_DIR.zip`` beside the folder, named after its whole name (``pred.v1`` ->
    ``pred.v1.zip``, never ``pred.zip``)."""
    pred_dir = Path(pred_dir).resolve()
    return pred_dir.with_name(pred_dir.name + ".zip")


def zip_predictions(pred_dir: str | os.PathLike, zip_path: str | os.PathLike) -> None:
    """A server-ready archive: ``Annotations/<video>/<frame>.png`` (written atomically). An
    existing ``zip_path`` is replaced only if it is the archive written for this folder before
    (its SHA-256 is recorded in ``pred_dir/.vostutorial-zip``): never a user's file."""
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    check_zip_target(pred_dir, zip_path)
    with atomic_write(zip_path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
        for png in sorted(pred_dir.glob("*/*.png")):
            z.write(png, f"Annotations/{png.parent.name}/{png.name}")
    write_text(pred_dir / ZIP_RECORD, file_sha256(zip_path))


def check_zip_target(pred_dir: str | os.PathLike, zip_path: str | os.PathLike) -> None:
    """Raise unless ``zip_path`` is free or the archive the kit wrote for ``pred_dir``."""
    pred_dir, zip_path = Path(pred_dir), Path(zip_path)
    record = pred_dir / ZIP_RECORD
    if zip_path.exists():
        ours = record.is_file() and record.read_text().strip() == file_sha256(zip_path)
        if not ours:
            raise ValueError(
                f"{zip_path}: exists and was not written by vostutorial for {pred_dir}; move it "
                "away to write the archive there"
            )
