"""Predictions in the YouTube-VOS submission layout, and the copy-first baseline.

``PRED_DIR/<video>/<frame>.png``: one palette PNG per frame of the video, pixel value = object
id, at the video's original resolution. ``--zip`` archives of this folder are what the
YouTube-VOS server takes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data.palette import read_mask, write_mask
from .data.ytvos import VideoSample, YTVOSSplit


def predictions_dir(root: str | os.PathLike, method: str) -> Path:
    """Where the demo and the notebooks keep a method's predictions for dataset ``root``:
    ``<root>/../predictions/<method>`` (``data/predictions/model`` for the built-in data)."""
    return Path(root).parent / "predictions" / method


def write_video_masks(
    pred_dir: str | os.PathLike, video: str, names: list[str], masks: np.ndarray
) -> None:
    """Write ``(T, H, W)`` id masks as ``pred_dir/video/<name>.png`` (each file atomically).

    A ``.done`` marker written last tells a re-run that the video is complete.
    """
    if len(names) != len(masks):
        raise ValueError(f"{video}: {len(names)} frame names but {len(masks)} masks")
    out = Path(pred_dir) / video
    out.mkdir(parents=True, exist_ok=True)
    for name, mask in zip(names, masks, strict=True):
        write_mask(out / f"{name}.png", mask)
    (out / ".done").touch()


def video_done(pred_dir: str | os.PathLike, video: str) -> bool:
    """True when `write_video_masks` finished this video."""
    return (Path(pred_dir) / video / ".done").exists()


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


def baseline_copy_first(
    root: str | os.PathLike, split: str, pred_dir: str | os.PathLike, progress: bool = True
) -> Path:
    """Write the copy-first baseline's predictions for every video of a split."""
    ds = YTVOSSplit(root, split)
    for video in tqdm(ds.videos, desc="copy-first", unit="video", disable=not progress):
        sample = ds.read_video(video)
        write_video_masks(pred_dir, video, sample.frame_names, copy_first(sample))
    return Path(pred_dir)
