"""Your own video: a clip (a video file or a folder of frames) in, its masks and an overlay out.

Video files are decoded in-process by PyAV, whose wheels bundle FFmpeg: no program to install
and no frame files to cut by hand. A folder of frames may hold ``.jpg`` or ``.png`` files
numbered any way (``00000.jpg``, ``1.png``, ``frame_7.jpg``): they are ordered by number.
A long side above ``size_cap`` is scaled down on reading, so a 4K phone clip fits a laptop.

The first mask is a palette PNG of object ids (the DAVIS palette: what `data.write_mask`
writes and what annotation tools export), or a 0/255 grayscale PNG for one object. An RGB or
anti-aliased mask cannot say which pixel is which object: it is refused, unless an explicit
colour-to-id table is given.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

from .data.palette import PALETTE, read_mask, write_image
from .data.ytvos import ObjectInfo, write_meta, write_video
from .files import atomic_write, check_name

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".avi", ".mkv", ".m4v")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class Clip:
    """Frames ``(T, H, W, 3)`` uint8, named by their decoded frame index (``00000``, ...),
    the frame rate (per kept frame) and how much the frames were scaled on reading."""

    frames: np.ndarray
    names: list[str]
    fps: float
    scale: float
    source: Path


def read_clip(
    path: str | os.PathLike,
    stride: int = 1,
    start: int = 0,
    stop: int | None = None,
    size_cap: int | None = 480,
) -> Clip:
    """Frames ``start, start + stride, ...`` (before ``stop``) of a video file or a folder of
    frames, each scaled so that its shorter side is at most ``size_cap`` (None: as stored)."""
    path = Path(path)
    if stride < 1 or start < 0 or (stop is not None and stop <= start):
        raise ValueError(f"{path}: need stride >= 1 and 0 <= start < stop")
    if not path.exists():
        raise ValueError(f"{path}: not found; give a video file or a folder of frames")
    if path.is_dir():
        indices, frames, fps = _read_folder(path, stride, start, stop)
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        indices, frames, fps = _read_video(path, stride, start, stop)
    else:
        raise ValueError(
            f"{path}: not a video ({', '.join(VIDEO_SUFFIXES)}) or a folder of frames "
            f"({', '.join(FRAME_SUFFIXES)})"
        )
    if not frames:
        raise ValueError(f"{path}: no frames to read (from frame {start}, stride {stride})")
    scale = _scale(frames[0].shape[:2], size_cap)
    if scale < 1:
        frames = [_resized(f, scale) for f in frames]
    names = [f"{i:05d}" for i in indices]
    return Clip(np.stack(frames), names, fps / stride, scale, path)


def _scale(hw: tuple[int, int], size_cap: int | None) -> float:
    """The factor that brings the shorter side down to ``size_cap`` (1 if it is already)."""
    return 1.0 if size_cap is None or min(hw) <= size_cap else size_cap / min(hw)


def _resized(frame: np.ndarray, scale: float) -> np.ndarray:
    h, w = frame.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def _read_video(
    path: Path, stride: int, start: int, stop: int | None
) -> tuple[list[int], list[np.ndarray], float]:
    import av  # FFmpeg inside the wheel; imported only when a video is read

    indices, frames, fps = [], [], 25.0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: holds no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 25)
            for i, frame in enumerate(container.decode(stream)):
                if stop is not None and i >= stop:
                    break
                if i >= start and (i - start) % stride == 0:
                    indices.append(i)
                    frames.append(frame.to_ndarray(format="rgb24"))
    except av.error.EOFError:  # a container that ends before (or between) frames
        pass
    except av.FFmpegError as exc:
        raise ValueError(f"{path}: cannot decode video ({exc}); the file is corrupt") from None
    return indices, frames, fps


def _read_folder(
    path: Path, stride: int, start: int, stop: int | None
) -> tuple[list[int], list[np.ndarray], float]:
    files = {}
    for f in path.iterdir():
        number = re.findall(r"\d+", f.stem)
        if f.suffix.lower() in FRAME_SUFFIXES and number:
            files.setdefault(int(number[-1]), f)
    if not files:
        raise ValueError(f"{path}: no numbered frames ({', '.join(FRAME_SUFFIXES)}) in it")
    ordered = [files[k] for k in sorted(files)]
    picked = list(range(start, len(ordered) if stop is None else min(stop, len(ordered)), stride))
    frames = [_read_rgb(ordered[i]) for i in picked]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"{path}: frames of several sizes {sorted(shapes)}; use one size")
    return picked, frames, 25.0


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot decode image ({exc})") from None


# --- the first mask ---------------------------------------------------------------------------
def read_first_mask(
    path: str | os.PathLike,
    size: tuple[int, int],
    colours: dict[tuple[int, int, int], int] | None = None,
) -> np.ndarray:
    """The mask ``(H, W)`` uint8 of object ids for a clip of frame size ``size``: a palette
    PNG as it is (a 0/255 grayscale one is object 1), or an RGB image mapped by ``colours``
    (every colour in it must be listed; black is background). Resized (nearest) to ``size``
    when it has the clip's aspect ratio."""
    path = Path(path)
    if colours is None:  # a palette PNG of ids, or a 0/255 grayscale one (one object: DAVIS 2016)
        try:
            ids = read_mask(path)
        except ValueError as exc:
            raise ValueError(
                f"{exc}; or map its colours to ids explicitly (`colours=`, --colour R,G,B=ID)"
            ) from None
    else:
        ids = _mapped(path, colours)
    present = np.unique(ids)
    if present.max(initial=0) == 0:
        raise ValueError(f"{path}: the mask is empty: paint at least one object (id 1, 2, ...)")
    if len(present) > 12:  # anti-aliased edges make a ramp of ids, not objects
        raise ValueError(
            f"{path}: {len(present) - 1} object ids; an anti-aliased mask makes a phantom object "
            "per edge shade: save it without anti-aliasing (one id per object)"
        )
    return _fitted(ids, size, path)


def _mapped(path: Path, colours: dict[tuple[int, int, int], int]) -> np.ndarray:
    rgb = _read_rgb(path)
    table = {(0, 0, 0): 0} | {tuple(map(int, c)): int(i) for c, i in colours.items()}
    ids = np.zeros(rgb.shape[:2], np.uint8)
    seen = np.zeros(rgb.shape[:2], bool)
    for colour, oid in table.items():
        hit = (rgb == np.array(colour, np.uint8)).all(-1)
        ids[hit], seen[hit] = oid, True
    if not seen.all():
        y, x = np.argwhere(~seen)[0]
        raise ValueError(
            f"{path}: colour {tuple(rgb[y, x].tolist())} at ({x}, {y}) is in no colour table "
            "entry (anti-aliased edges?); list it or save the mask without anti-aliasing"
        )
    return ids


def _fitted(ids: np.ndarray, size: tuple[int, int], path: Path) -> np.ndarray:
    """``ids`` at the clip's ``size`` (nearest: ids stay ids), if the aspect ratio agrees."""
    (h, w), (th, tw) = ids.shape, size
    if (h, w) == (th, tw):
        return ids
    if abs(h / w - th / tw) > 0.02:
        raise ValueError(
            f"{path}: mask is {w}x{h} (WxH) but the clip's frames are {tw}x{th}; paint the mask "
            "on a frame of this clip"
        )
    return np.asarray(Image.fromarray(ids).resize((tw, th), Image.Resampling.NEAREST))


# --- how the tracking went, without ground truth ---------------------------------------------
def object_curves(
    labels: np.ndarray,
    probs: dict[int, np.ndarray],
    earlier: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per object, its area (fraction of the frame) and the model's mean confidence (its mean
    probability where it is above 0.5) on every frame ``(T,)`` each: a sudden drop of either
    is where to look, and where a correction helps. Frames before the object starts are NaN,
    or, for a run re-started from a correction, the ``earlier`` run's curves there."""
    curves = {}
    for oid, p in probs.items():
        area = (labels == oid).mean(axis=(1, 2))
        inside = p > 0.5
        conf = np.where(
            inside.any(axis=(1, 2)),
            (p * inside).sum(axis=(1, 2)) / np.maximum(inside.sum(axis=(1, 2)), 1),
            0.0,
        )
        started = p.reshape(len(p), -1).any(axis=1).cumsum() > 0  # zero before the given frame
        old = (earlier or {}).get(oid, (np.full(len(p), np.nan),) * 2)
        curves[oid] = (np.where(started, area, old[0]), np.where(started, conf, old[1]))
    return curves


def write_ytvos(
    root: str | os.PathLike, split: str, video: str, clip: Clip, labels: np.ndarray
) -> Path:
    """The clip and its masks as one video of a YouTube-VOS split (``root/split``), every
    mask a palette PNG in ``Annotations``, so that ``check-data``, ``evaluate`` (as ground
    truth or as predictions) and ``convert`` read it; returns the split's folder."""
    split_dir = Path(root) / check_name(split, "split", "write_ytvos")
    frames = {
        n: partial(write_image, image=f) for n, f in zip(clip.names, clip.frames, strict=True)
    }
    masks = dict(zip(clip.names, labels, strict=True))
    objects = {
        oid: ObjectInfo(oid, "object", [n for n, m in masks.items() if (m == oid).any()])
        for oid in sorted(set(np.unique(labels).tolist()) - {0})
    }
    write_video(split_dir, check_name(video, "video", "write_ytvos"), frames, masks, objects, False)
    write_meta(split_dir / "meta.json", {video: objects})
    return split_dir


# --- overlays ---------------------------------------------------------------------------------
def overlay(frames: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` with each object's pixels tinted in its DAVIS palette colour."""
    colours = PALETTE[masks].astype(np.float32)  # (T, H, W, 3)
    tint = np.where(masks[..., None] > 0, alpha, 0.0)
    return (frames * (1 - tint) + colours * tint).astype(np.uint8)


def write_gif(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """An animated GIF (looping), written atomically."""
    images = [Image.fromarray(f) for f in frames]
    with atomic_write(path) as f:
        images[0].save(
            f, format="GIF", save_all=True, append_images=images[1:], duration=1000 / fps, loop=0
        )


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: float) -> None:
    """An H.264 MP4 (even sizes, as the codec needs), written atomically."""
    import av

    h, w = (s - s % 2 for s in frames.shape[1:3])
    with atomic_write(path) as f, av.open(f, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=max(1, round(fps)))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame[:h, :w], format="rgb24")))
        out.mux(stream.encode())
