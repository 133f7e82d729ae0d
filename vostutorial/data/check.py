"""`vostutorial check-data`: every problem of a YouTube-VOS split, one line each."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .ytvos import YTVOSSplit, frame_key


def check_split(
    root: str | os.PathLike, split: str = "train", progress: bool = True
) -> tuple[list[str], dict]:
    """Decode every frame and mask of ``<root>/<split>`` and check it against meta.json.

    Returns ``(problems, summary)``: each problem is ``"<file>: <what is wrong>"``; the summary
    counts videos, objects, categories and frames.
    """
    try:
        ds = YTVOSSplit(root, split)
    except ValueError as exc:
        return [str(exc)], {}
    problems: list[str] = []
    n_frames = 0
    videos = tqdm(ds.videos, desc=f"check {split}", unit="video", disable=not progress)
    for video in videos:
        shapes = _check_frames(ds, video, problems)
        n_frames += len(shapes)
        if ds.videos[video].frames:
            _check_masks(ds, video, shapes, problems)
    on_disk = {p.name for p in (ds.dir / "JPEGImages").glob("*") if p.is_dir()}
    for video in sorted(on_disk - set(ds.videos)):
        problems.append(f"{ds.dir / 'JPEGImages' / video}: video folder not listed in meta.json")
    summary = {
        "split": split,
        "videos": len(ds.videos),
        "objects": sum(len(v.objects) for v in ds.videos.values()),
        "categories": len(ds.categories()),
        "frames": n_frames,
    }
    return problems, summary


def _check_frames(ds: YTVOSSplit, video: str, problems: list[str]) -> dict[str, tuple]:
    """Decode every frame; returns the shapes of those that decode."""
    info = ds.videos[video]
    if video in ds.odd_frame_files or not info.frames:
        try:
            ds.require_frames(video)  # names the odd files, or says there are none
        except ValueError as exc:
            problems.append(str(exc))
    shapes: dict[str, tuple[int, ...]] = {}
    for f in info.frames:
        try:
            shapes[f] = ds.frame(video, f).shape
        except ValueError as exc:
            problems.append(str(exc))
    for f in ds.missing_frames(video) if info.frames else []:
        problems.append(f"{ds.frame_path(video, f)}: meta.json lists frame {f} but it has no file")
    return shapes


def _check_masks(ds: YTVOSSplit, video: str, shapes: dict, problems: list[str]) -> None:
    """Every mask on disk must decode, be a palette PNG of its frame's size and hold known
    ids; the full masks must agree with meta.json; each object's first mask must exist."""
    full_dir = "GroundTruth" if ds.has_ground_truth else "Annotations"
    for kind, reader in (("Annotations", ds.annotation), ("GroundTruth", ds.ground_truth)):
        if kind == "GroundTruth" and not ds.has_ground_truth:
            continue
        for path in sorted((ds.dir / kind / video).glob("*.png")):
            try:
                mask = reader(video, path.stem, shapes.get(path.stem))
            except ValueError as exc:
                problems.append(str(exc))
                continue
            if not ds.frame_path(video, path.stem).exists():  # (unreadable: reported above)
                problems.append(f"{path}: mask has no frame {ds.frame_path(video, path.stem)}")
            if kind == full_dir:
                problems.extend(_meta_disagreements(ds, video, path, mask))
    problems.extend(_promised_masks_missing(ds, video))


def _promised_masks_missing(ds: YTVOSSplit, video: str) -> list[str]:
    """What meta.json promises that is not on disk: each object's frames, its first mask."""
    out = []
    objects = ds.videos[video].objects
    full = ds.ground_truth_path(video, "x").parent
    if objects and not full.is_dir():
        return [f"{full}: missing: no masks for video {video!r} listed in meta.json"]
    listed = sorted({f for o in objects.values() for f in o.frames}, key=frame_key)
    firsts = {o.frames[0] for o in objects.values() if o.frames}
    if not ds.has_ground_truth and {p.stem for p in full.glob("*.png")} <= firsts:
        listed = sorted(firsts, key=frame_key)  # a valid-style split: first masks only
    lacking = [f for f in listed if not ds.ground_truth_path(video, f).exists()]
    if lacking:
        out.append(
            f"{full / lacking[0]}.png: meta.json lists objects on frame {lacking[0]} of video "
            f"{video!r} but its mask is missing ({len(lacking)} such frame(s))"
        )
    for oid, obj in objects.items():
        if not obj.frames:
            out.append(f"{ds.dir / 'meta.json'}: object {oid} of video {video!r} lists no frames")
        elif not (path := ds.annotation_path(video, obj.frames[0])).exists():
            out.append(f"{path}: object {oid} first appears here but the file is missing")
    return out


def _meta_disagreements(ds: YTVOSSplit, video: str, path: Path, mask: np.ndarray) -> list[str]:
    """Objects present in a full mask but not listed for its frame in meta.json, or listed
    but absent."""
    present = set(np.unique(mask).tolist()) - {0}
    out = []
    for oid, obj in ds.videos[video].objects.items():
        if (oid in present) != (path.stem in obj.frames):
            where = "is in" if oid in present else "is missing from"
            out.append(f"{path}: object {oid} {where} the mask, unlike its frames in meta.json")
    return out
