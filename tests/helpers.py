"""Builders for small hand-made datasets in the YouTube-VOS layout."""

from pathlib import Path

import numpy as np

from vostutorial.data import ObjectInfo, first_appearance_masks, write_image, write_mask, write_meta


def write_split(
    root: Path,
    split: str,
    videos: dict,
    heldout: bool = False,
    categories: dict | None = None,
    step: int = 5,
) -> Path:
    """Write ``videos = {name: (frames (T,H,W,3) uint8, ids (T,H,W) uint8)}`` as a split.

    Frames are named 00000, 00005, ... (every ``step``-th original frame); with ``heldout``
    Annotations hold first appearances and GroundTruth every mask. ``categories`` maps object
    id to category (default "thing").
    """
    meta = {}
    for name, (frames, ids) in videos.items():
        names = [f"{step * t:05d}" for t in range(len(frames))]
        for sub in ("JPEGImages", "Annotations", "GroundTruth"):
            (root / split / sub / name).mkdir(parents=True, exist_ok=True)
        objects = {}
        for oid in sorted(set(np.unique(ids).tolist()) - {0}):
            present = [names[t] for t in range(len(ids)) if (ids[t] == oid).any()]
            objects[oid] = ObjectInfo(oid, (categories or {}).get(oid, "thing"), present)
        meta[name] = objects
        full = "GroundTruth" if heldout else "Annotations"
        for t, f in enumerate(names):
            write_image(root / split / "JPEGImages" / name / f"{f}.jpg", frames[t], quality=95)
            write_mask(root / split / full / name / f"{f}.png", ids[t])
        if heldout:
            firsts = {oid: o.frames[0] for oid, o in objects.items()}
            frame_ids = dict(zip(names, ids, strict=True))
            given = first_appearance_masks(firsts, frame_ids.__getitem__)
            for f, m in given.items():
                write_mask(root / split / "Annotations" / name / f"{f}.png", m)
        else:
            (root / split / "GroundTruth" / name).rmdir()
    if not heldout:
        (root / split / "GroundTruth").rmdir()
    write_meta(root / split / "meta.json", meta)
    return root


def square_video(t: int = 6, h: int = 32, w: int = 48, step: int = 3) -> tuple:
    """A white square moving right on black: frames and ids (object 1)."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    ids = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        ids[i, 8:20, 4 + step * i : 16 + step * i] = 1
    frames[ids > 0] = 255
    return frames, ids
