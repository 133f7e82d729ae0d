"""Bring real datasets into the kit's YouTube-VOS layout (used by ``data_scripts/``).

- `davis_to_ytvos`: DAVIS 2016/2017 to YouTube-VOS, as a training split or as a held-out split.
- `carve_heldout`: split a downloaded YouTube-VOS ``train`` into a smaller train and a local
  held-out split whose ``Annotations`` give first appearances only and whose ``GroundTruth``
  keeps every mask, with some categories held out entirely (unseen) and some videos of the
  remaining categories held out too (seen), so J and F seen/unseen can be scored locally.
"""

from __future__ import annotations

import os
import shutil
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..files import atomic_write, building, check_name, is_empty_dir
from .davis import DavisSequences
from .palette import read_image, write_image
from .ytvos import ObjectInfo, YTVOSSplit, sort_frames, write_meta, write_video


def _resized(arr: np.ndarray, height: int | None, nearest: bool) -> np.ndarray:
    """An image or mask resized to ``height`` rows (aspect kept); as is for ``None``."""
    if height is None or arr.shape[0] == height:
        return arr
    w = round(arr.shape[1] * height / arr.shape[0])
    img = Image.fromarray(arr).resize((w, height), Image.NEAREST if nearest else Image.BILINEAR)
    return np.asarray(img)


def _copy_frame(src: Path, dst: Path, height: int | None, link: bool) -> None:
    """One JPEG frame: hard-linked, copied, or (with ``height``) resized and re-encoded."""
    if height is None and link:
        os.link(src, dst)
    elif height is None:
        with open(src, "rb") as f, atomic_write(dst) as g:
            shutil.copyfileobj(f, g)
    else:
        write_image(dst, _resized(read_image(src), height, nearest=False))


def davis_to_ytvos(
    davis_root: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "train",
    resolution: str = "480p",
    category: str = "object",
    heldout: bool = False,
    progress: bool = True,
) -> Path:
    """Convert a DAVIS folder into ``out/<split>`` in the YouTube-VOS layout.

    Grayscale 0/255 masks (DAVIS 2016) become id 1; DAVIS 2017 "void" pixels (255) become
    background, since YouTube-VOS has no void label. DAVIS has no categories, so every object
    gets ``category``. With ``heldout`` the split follows the valid convention (first
    appearances in ``Annotations``, every mask in ``GroundTruth``).
    """
    final = Path(out) / check_name(split, "split", "--split")
    davis = DavisSequences(davis_root, resolution)
    if final.exists():
        raise ValueError(f"{final}: already exists; remove it or choose another --out")
    with building(final) as out_split:
        videos = _davis_videos(davis, out_split, category, heldout, progress)
        write_meta(out_split / "meta.json", videos)
    return final


def _davis_videos(
    davis: DavisSequences, out_split: Path, category: str, heldout: bool, progress: bool
) -> dict[str, dict[int, ObjectInfo]]:
    """Every DAVIS sequence written into ``out_split``; returns meta.json's objects."""
    videos: dict[str, dict[int, ObjectInfo]] = {}
    for seq in tqdm(davis.sequences, desc="DAVIS -> YouTube-VOS", disable=not progress):
        names = davis.frames(seq)
        annotated = set(davis.masks(seq))

        def mask(name: str, seq: str = seq, annotated: set = annotated) -> np.ndarray | None:
            if name not in annotated:
                return None
            m = davis.read_mask(seq, name)
            return np.where(m == 255, 0, m).astype(np.uint8)

        present: dict[int, list[str]] = {}
        for name in sort_frames(annotated, davis.mask_dir / seq):
            for oid in np.unique(mask(name)).tolist():
                if oid:
                    present.setdefault(oid, []).append(name)
        videos[seq] = {oid: ObjectInfo(oid, category, fr) for oid, fr in present.items()}
        frames = {
            n: partial(_copy_frame, davis.frame_dir / seq / f"{n}.jpg", height=None, link=False)
            for n in names
        }
        gts = {n: m for n in names if (m := mask(n)) is not None}
        write_video(out_split, seq, frames, gts, videos[seq], heldout)
    return videos


def _copy_video(
    src: YTVOSSplit, video: str, out_split: Path, height: int | None, link: bool, heldout: bool
) -> None:
    """One video of a YouTube-VOS split copied into ``out_split`` (resized to ``height``)."""
    info = src.videos[video]
    annotated = {p.stem for p in (src.dir / "Annotations" / video).glob("*.png")}
    frames = {
        n: partial(_copy_frame, src.frame_path(video, n), height=height, link=link)
        for n in info.frames
    }
    gts = {
        n: _resized(src.annotation(video, n), height, nearest=True)
        for n in info.frames
        if n in annotated
    }
    write_video(out_split, video, frames, gts, info.objects, heldout)


def _copy_frames(src: Path, dst: Path, height: int | None, link: bool) -> None:
    """Every ``*.jpg`` of ``src`` into ``dst`` (resized to ``height`` if given)."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("*.jpg")):
        _copy_frame(path, dst / path.name, height, link)


def carve_heldout(
    root: str | os.PathLike,
    out: str | os.PathLike,
    heldout_videos: int = 100,
    unseen_categories: int = 10,
    seed: int = 0,
    height: int | None = None,
    link: bool = False,
    heldout_name: str = "heldout",
    progress: bool = True,
) -> dict:
    """Split ``root/train`` into ``out/train`` and ``out/<heldout_name>``.

    ``unseen_categories`` categories are chosen at random and every video holding one of
    them goes to the held-out split (they are unseen: no object of theirs remains in train);
    then ``heldout_videos`` more videos are drawn from the rest (seen). ``height`` resizes
    frames (bilinear) and masks (nearest); ``link`` hard-links frames instead of copying when
    not resizing. Returns a summary of what went where.
    """
    check_name(heldout_name, "split", "--heldout-name")
    src = YTVOSSplit(root, "train")
    rng = np.random.default_rng(seed)
    cats = sorted(src.categories())
    if unseen_categories >= len(cats):
        raise ValueError(
            f"{src.dir}: only {len(cats)} categories; cannot hold out {unseen_categories}"
        )
    unseen = (
        set(rng.choice(cats, size=unseen_categories, replace=False).tolist())
        if unseen_categories
        else set()
    )
    with_unseen = [
        v for v, i in src.videos.items() if {o.category for o in i.objects.values()} & unseen
    ]
    rest = [v for v in src.videos if v not in set(with_unseen)]
    n_seen = min(heldout_videos, max(0, len(rest) - 1))
    seen_held = sorted(rng.choice(rest, size=n_seen, replace=False).tolist()) if n_seen else []
    held = set(with_unseen) | set(seen_held)
    out = Path(out)
    if heldout_name == "train":
        raise ValueError("--heldout-name train: the held-out split needs a name other than train")
    names = ("train", heldout_name, f"{heldout_name}_all_frames")
    for name in names:
        if (out / name).exists():
            raise ValueError(f"{out / name}: already exists; remove it or choose another --out")
    # each folder is built beside its final name and appears whole, or not at all
    with ExitStack() as stack:
        dirs = {n: stack.enter_context(building(out / n)) for n in names}
        metas: dict[str, dict] = {"train": {}, heldout_name: {}}
        videos = tqdm(src.videos.items(), desc="carve held-out split", disable=not progress)
        for video, info in videos:
            split = heldout_name if video in held else "train"
            _copy_video(src, video, dirs[split], height, link, heldout=split == heldout_name)
            metas[split][video] = info.objects
            every = src.all_frames_dir / video
            if split == heldout_name and every.is_dir():
                _copy_frames(every, dirs[names[2]] / "JPEGImages" / video, height, link)
        for split, objects in metas.items():
            write_meta(dirs[split] / "meta.json", objects)
    if is_empty_dir(out / names[2]):  # the source has no all-frames folder
        (out / names[2]).rmdir()
    return {
        "unseen_categories": sorted(unseen),
        "train_videos": len(metas["train"]),
        "heldout_videos": len(metas[heldout_name]),
        "heldout_seen_videos": len(seen_held),
    }
