"""What several test files share: builders for small hand-made datasets in the YouTube-VOS
layout, and running the ``vostutorial`` command."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np

from vostutorial.data import ObjectInfo, write_image, write_meta
from vostutorial.data.ytvos import write_video


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
        objects = {}
        for oid in sorted(set(np.unique(ids).tolist()) - {0}):
            present = [names[t] for t in range(len(ids)) if (ids[t] == oid).any()]
            objects[oid] = ObjectInfo(oid, (categories or {}).get(oid, "thing"), present)
        meta[name] = objects
        pairs = zip(names, frames, strict=True)
        writers = {f: partial(write_image, image=im, quality=95) for f, im in pairs}
        masks = dict(zip(names, ids, strict=True))
        write_video(root / split, name, writers, masks, objects, heldout)
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


# `vostutorial train` in seconds on conftest's small dataset
SMALL_TRAIN = [
    "--set",
    "size=[64, 96]",
    "--set",
    "batch_size=2",
    "--set",
    "clip_len=3",
    "--set",
    "workers=0",
    "--set",
    "val_videos=1",
    "--quiet",
]


def run_kit(
    *args: object, env: dict | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """``python -m vostutorial ARGS`` in a fresh process on one thread (tests may run side by
    side); with ``check`` a non-zero exit fails the test, showing the end of stderr."""
    r = subprocess.run(
        [sys.executable, "-m", "vostutorial", *map(str, args)],
        capture_output=True,
        text=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"} | (env or {}),
    )
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r
