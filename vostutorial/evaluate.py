"""Evaluation reports: YouTube-VOS (J/F, seen vs unseen) and DAVIS (J&F with recall and decay).

YouTube-VOS mode scores each object on every ground-truth frame after the frame where its mask
is given (optionally that frame too: the server's own code is not public), averages per object,
then over the objects of seen and of unseen categories; overall is the mean of J_seen,
J_unseen, F_seen and F_unseen. A category is unseen when no object of the train split has it.

DAVIS mode follows the DAVIS 2017 semi-supervised protocol: objects 1..K from the first
ground-truth frame, the first and last frames not scored, frames where an object is absent from
both masks scored too (J = F = 1), and J&F-Mean weighting every object equally.
"""

from __future__ import annotations

import json
import os
import zipfile
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .data.davis import DavisSequences
from .data.palette import image_size, mask_ids, read_mask
from .data.ytvos import YTVOSSplit, frame_key, sort_frames
from .metrics import disk_radius, f_measure, jaccard, statistics
from .resources import worker_pool

MAX_LISTED = 10  # problems printed before "... and N more"


def _load_pred(
    path: Path, shape: tuple[int, int], known: set[int], allow_missing: bool
) -> tuple[np.ndarray | None, str | None]:
    """A prediction mask, or ``(None, problem)``; a missing file is empty with ``allow_missing``.

    A 0/255 grayscale PNG is read as object 1 only where the video has one object: with
    several, it cannot say which object it shows."""
    if not path.exists():
        if allow_missing:
            return np.zeros(shape, np.uint8), None
        return None, f"{path}: missing prediction"
    try:
        mask = read_mask(path, require_palette=len(known) > 1)
    except ValueError as exc:
        return None, str(exc)
    if mask.shape != shape:
        return None, (
            f"{path}: prediction is {mask.shape[1]}x{mask.shape[0]} (WxH), ground truth "
            f"is {shape[1]}x{shape[0]}; write masks at the video's original size"
        )
    top = int(mask.max())
    if top and not known.issuperset(range(1, top + 1)):  # the cheap test failed: look closer
        unknown = sorted(set(mask_ids(mask)) - known)
    else:
        unknown = []
    if unknown:
        return (
            None,
            f"{path}: holds ids {unknown} that are not objects of this video {sorted(known)}",
        )
    return mask, None


def _object_scores(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame J and F of one object's ``(T, H, W)`` bool masks, cut down once for both."""
    r = disk_radius(gt.shape[-2:])  # the tolerance comes from the full frame's diagonal
    if void is not None:
        pred, gt = pred & ~void, gt & ~void
    return jaccard(pred, gt), f_measure(pred, gt, bound_th=r)


def score_video(
    pred: np.ndarray, gt: np.ndarray, given: dict[int, int], score_first: bool = False
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The YouTube-VOS protocol for one video, the one place it is written: each object is
    scored on every frame after the one where its mask is given (with ``score_first`` that
    frame too), whatever it does there (absent from both masks: J = F = 1).

    ``pred`` and ``gt`` are ``(T, H, W)`` id maps of the same frames; ``given`` maps each
    object id to the index of its given frame. Returns ``{id: (J, F)}``, per-frame arrays
    (empty when no frame follows the given one)."""
    scores = {}
    for oid, t in sorted(given.items()):
        start = t if score_first else t + 1
        if start < len(gt):
            scores[oid] = _object_scores(pred[start:] == oid, gt[start:] == oid)
        else:
            scores[oid] = (np.zeros(0), np.zeros(0))
    return scores


def _in_object_units(pixels: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Per frame, the count of ``pixels`` ``(T, H, W)`` bool over the object's size ``(T,)``;
    NaN on frames without the object."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(size > 0, pixels.sum(axis=(1, 2)) / size, np.nan)


def coverage(pred: np.ndarray, gt: np.ndarray, oid: int) -> tuple[np.ndarray, np.ndarray]:
    """Where one object's predicted pixels lie, per frame of ``(T, H, W)`` id maps, both in
    units of the object's true size ``|G|``: the share of the object they cover,
    ``|P & G| / |G|``, and how much they paint outside it, ``|P - G| / |G|`` (NaN on frames
    without the object). J, ``|P & G| / |P | G|``, mixes the two: J falling while the cover
    stays high is a map spilling onto something else, not a lost object. Returns two ``(T,)``
    arrays."""
    p, g = pred == oid, gt == oid
    size = g.sum(axis=(1, 2))
    return _in_object_units(p & g, size), _in_object_units(p & ~g, size)


def pixel_shares(pred: np.ndarray, gt: np.ndarray, oid: int) -> dict[int, np.ndarray]:
    """Where one object's true pixels went, per frame of ``(T, H, W)`` id maps: ``{predicted
    id: (T,) share of the object's pixels given that id}``, 0 for background, each id that
    got any (NaN on frames without the object). A low J with most pixels under another id is
    a swap or a merge, not a miss."""
    g = gt == oid
    size = g.sum(axis=(1, 2))
    return {k: _in_object_units((pred == k) & g, size) for k in np.unique(pred[g]).tolist()}


def _run(
    fn: Callable,
    jobs: list,
    workers: int,
    desc: str,
    progress: bool,
    sizes: list[int] | None = None,
) -> list:
    """``[fn(j) for j in jobs]`` over a process pool, with a progress bar. With ``sizes``
    (the work of each job) the largest start first, so no worker is left with a long one at
    the end; results come back in the jobs' order."""
    bar = dict(total=len(jobs), desc=desc, unit="video", disable=not progress)
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in tqdm(jobs, **bar)]
    order = sorted(range(len(jobs)), key=lambda i: -sizes[i]) if sizes else range(len(jobs))
    with worker_pool(workers) as pool:
        done = list(tqdm(pool.imap(fn, [jobs[i] for i in order]), **bar))
    results = [None] * len(jobs)
    for i, r in zip(order, done, strict=True):
        results[i] = r
    return results


def check_report_target(path: str | os.PathLike) -> None:
    """Raise unless ``path`` is new or a report `evaluate` wrote (``--json`` never replaces
    another file)."""
    path = Path(path)
    if not path.exists():
        return
    try:
        ours = "protocol" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        ours = False
    if not ours:
        raise ValueError(
            f"{path}: exists and is not a report of `vostutorial evaluate`; move it away or "
            "name another --json"
        )


def _prediction_folder(pred_dir: str | os.PathLike, videos: list[str]) -> Path:
    """``pred_dir`` if it is a folder of ``<video>/<frame>.png``, else an error that says what
    it is instead: a zip archive, the server layout, nothing."""
    pred_dir = Path(pred_dir)
    if pred_dir.is_file():
        kind = "a zip archive" if zipfile.is_zipfile(pred_dir) else "a file"
        raise ValueError(
            f"{pred_dir}: is {kind}; --pred takes the folder PRED_DIR/<video>/<frame>.png "
            "(unzip a server archive: its Annotations/ folder is PRED_DIR)"
        )
    if not pred_dir.is_dir():
        raise ValueError(f"{pred_dir}: prediction folder not found")
    nested = pred_dir / "Annotations"
    if nested.is_dir() and not any((pred_dir / v).is_dir() for v in videos):
        raise ValueError(
            f"{pred_dir}: holds the server layout (Annotations/<video>/); pass --pred {nested}"
        )
    return pred_dir


def _raise_problems(problems: list[str], pred_dir: Path) -> None:
    """No score where one would be wrong: every problem of the predictions or of the ground
    truth, listed, as one error."""
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = (
            f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        )
        raise ValueError(
            f"{pred_dir}: {len(problems)} problem(s) found while scoring:\n  {listed}{more}\n"
            "(--allow-missing scores missing predictions as empty; problems of the ground truth "
            "are fixed in the dataset: `vostutorial check-data ROOT` lists them all)"
        )


# --- YouTube-VOS ----------------------------------------------------------------------------
def _score_ytvos_video(job: tuple) -> tuple[list[dict], list[str], int]:
    ds, video, pred_dir, score_first, allow_missing, seen = job
    info = ds.videos[video]
    gt_dir = ds.ground_truth_path(video, "x").parent
    on_disk = sort_frames((p.stem for p in gt_dir.glob("*.png")), gt_dir)
    firsts = {oid: frame_key(f) for oid, f in ds.first_appearances(video).items()}
    start = min(firsts.values()) if firsts else None
    names = [n for n in on_disk if start is not None and frame_key(n) >= start]
    problems = _missing_ground_truth(ds, video, gt_dir, on_disk, start)
    if problems:
        return [], problems, 0
    gts, preds, missing = [], [], 0
    for n in names:
        frame = ds.frame_path(video, n)
        # The frame's size is the truth: a ground-truth mask of another size is its own error.
        gt = ds.ground_truth(video, n, image_size(frame) if frame.exists() else None)
        path = pred_dir / video / f"{n}.png"
        missing += not path.exists()
        pred, problem = _load_pred(path, gt.shape, set(info.objects), allow_missing)
        if problem:
            problems.append(problem)
        gts.append(gt)
        preds.append(pred)
    absent = set(firsts) - {i for gt in gts for i in mask_ids(gt)}
    for oid in sorted(absent):  # it would score J = F = 1 on every frame
        problems.append(
            f"{gt_dir}: object {oid} of video {video!r} is listed in meta.json but appears in no "
            "ground-truth mask"
        )
    if problems:
        return [], problems, missing
    keys = [frame_key(n) for n in names]
    given = {}
    for oid, first in firsts.items():
        t = bisect_right(keys, first) - 1  # the given frame (or the last one before it)
        given[oid] = t + 1 if score_first and (t < 0 or keys[t] != first) else t
    scores = score_video(np.stack(preds), np.stack(gts), given, score_first) if names else {}
    rows = []
    for oid in sorted(firsts):
        j, f = scores.get(oid, (np.zeros(0), np.zeros(0)))
        cat = info.objects[oid].category
        rows.append(
            {
                "video": video,
                "object": oid,
                "category": cat,
                "seen": seen is None or cat in seen,
                "J": float(j.mean()) if len(j) else None,
                "F": float(f.mean()) if len(f) else None,
                "frames": len(j),
            }
        )
    return rows, problems, missing


def _missing_ground_truth(
    ds: YTVOSSplit, video: str, gt_dir: Path, on_disk: list[str], start: tuple | None
) -> list[str]:
    """What meta.json promises that the ground truth lacks: the video's folder, or a mask of a
    frame from the first given one on (a frame left out would change the score unseen)."""
    info = ds.videos[video]
    if not gt_dir.is_dir():
        return [f"{gt_dir}: missing: no ground truth for video {video!r} listed in meta.json"]
    if start is None:
        return [f"{ds.annotation_path(video, 'x').parent}: no object of video {video!r} is given"]
    promised = {f for o in info.objects.values() for f in o.frames}
    promised |= {f for f in info.frames if frame_key(f) >= start}
    lacking = sorted(promised - set(on_disk), key=frame_key)
    if lacking:
        return [
            f"{gt_dir / (lacking[0] + '.png')}: ground truth missing for frame {lacking[0]} of "
            f"video {video!r} ({len(lacking)} such frame(s))"
        ]
    return []


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def evaluate_ytvos(
    pred_dir: str | os.PathLike,
    root: str | os.PathLike,
    split: str = "valid",
    score_first: bool = False,
    allow_missing: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Score predictions in the submission layout against ``root/split``; see module doc.

    Returns the report: ``J_seen, J_unseen, F_seen, F_unseen, overall`` (a group without
    objects is None and overall is the mean of the groups present), ``objects`` (one record
    per object: video, object, category, seen, J, F, frames) and ``protocol``.
    """
    ds = YTVOSSplit(root, split)
    pred_dir = _prediction_folder(pred_dir, list(ds.videos))
    train_meta = Path(root) / "train" / "meta.json"
    seen = set(YTVOSSplit(root, "train").categories()) if train_meta.exists() else None
    jobs = [(ds, v, pred_dir, score_first, allow_missing, seen) for v in ds.videos]
    sizes = [len(ds.videos[v].frames) * len(ds.videos[v].objects) for v in ds.videos]
    results = _run(_score_ytvos_video, jobs, workers, "evaluate", progress, sizes)
    objects = [r for rows, _, _ in results for r in rows]
    _raise_problems([p for _, probs, _ in results for p in probs], pred_dir)
    # Folders of other videos are not scored: list them, they may be a wrong --split or --data.
    extra = sorted(p.name for p in pred_dir.iterdir() if p.is_dir() and p.name not in ds.videos)
    scored = [o for o in objects if o["frames"]]
    report: dict = {}
    for m in ("J", "F"):
        for group, flag in (("seen", True), ("unseen", False)):
            report[f"{m}_{group}"] = _mean([o[m] for o in scored if o["seen"] == flag])
    report["overall"] = _mean([report[k] for k in ("J_seen", "J_unseen", "F_seen", "F_unseen")])
    report["objects"] = objects
    report["protocol"] = {
        "mode": "youtube-vos",
        "objects_scored": len(scored),
        "object_frames_scored": sum(o["frames"] for o in scored),
        # given on the last frame (or, with score_first, past it): nothing left to score
        "objects_without_frames_to_score": len(objects) - len(scored),
        "ground_truth": str(ds.ground_truth_path("v", "f").parent.parent),
        "first_frame_scored": score_first,
        "missing_frames_scored_empty": sum(m for _, _, m in results) if allow_missing else 0,
        "videos_not_in_split": extra,
        "unseen_rule": "no object of the category in train"
        if seen is not None
        else "no train split found: every category counted as seen",
    }
    return report


def format_ytvos(report: dict) -> str:
    """The report as a small text table."""
    p = report["protocol"]
    fmt = lambda v: "   -  " if v is None else f"{v:6.3f}"  # noqa: E731
    n = {
        g: sum(1 for o in report["objects"] if o["seen"] == (g == "seen") and o["frames"])
        for g in ("seen", "unseen")
    }
    lines = [
        f"YouTube-VOS evaluation against {p['ground_truth']} "
        f"(given first frame {'scored' if p['first_frame_scored'] else 'not scored'})",
        f"{'':8} {'J':>6} {'F':>6}  objects",
        f"{'seen':8} {fmt(report['J_seen'])} {fmt(report['F_seen'])}  {n['seen']}",
        f"{'unseen':8} {fmt(report['J_unseen'])} {fmt(report['F_unseen'])}  {n['unseen']}",
        f"{'overall':8} {fmt(report['overall'])}   ({_overall_groups(report)})",
    ]
    extra = p.get("videos_not_in_split") or []
    if extra:
        shown = ", ".join(extra[:MAX_LISTED]) + (" ..." if len(extra) > MAX_LISTED else "")
        lines.append(
            f"note: {len(extra)} prediction folder(s) are not videos of this split and were not "
            f"scored: {shown}"
        )
    if p["missing_frames_scored_empty"]:
        lines.append(f"note: {p['missing_frames_scored_empty']} missing frames scored as empty")
    lines.append(
        f"scored: {p['objects_scored']} objects on {p['object_frames_scored']} object-frames"
        + (
            f"; {p['objects_without_frames_to_score']} not scored: given on their video's last "
            "frame, no frame after it"
            if p["objects_without_frames_to_score"]
            else ""
        )
    )
    return "\n".join(lines)


def _overall_groups(report: dict) -> str:
    """Which of the four means ``overall`` averages (all four unless a group has no objects)."""
    keys = ("J_seen", "J_unseen", "F_seen", "F_unseen")
    present = [k for k in keys if report[k] is not None]
    if len(present) == len(keys):
        return "mean of the four"
    if not present:
        return "no object was scored"
    empty = sorted({k.split("_")[1] for k in keys if report[k] is None})
    return f"mean of {', '.join(present)} only: no {' or '.join(empty)} objects"


# --- DAVIS ----------------------------------------------------------------------------------
def _score_davis_sequence(job: tuple) -> tuple[list[dict], list[str]]:
    davis, seq, pred_dir, ignore_void, allow_missing = job
    names = davis.masks(seq)
    # DAVIS scores every frame: a frame without ground truth would silently drop out.
    annotated = set(names)
    unannotated = [f for f in davis.frames(seq) if f not in annotated]
    if unannotated:
        path = davis.mask_dir / seq / f"{unannotated[0]}.png"
        return [], [
            f"{path}: ground truth missing for frame {unannotated[0]} of sequence {seq!r} "
            f"({len(unannotated)} such frame(s)); DAVIS scores every frame"
        ]
    if len(names) < 3:  # frames 2..T-1 are scored: nothing to score, not a score of 1
        return [], [
            f"{davis.mask_dir / seq}: sequence {seq!r} has {len(names)} annotated frame(s); the "
            "DAVIS protocol scores all but the first and last, so it needs at least 3"
        ]
    gt = np.stack([davis.read_mask(seq, n) for n in names[:-1]])  # the last frame is not scored
    void = gt == 255
    if void.any():
        gt[void] = 0  # void is background, or with ignore_void left out of both masks
    void = void if ignore_void else None
    k = int(gt[0].max())
    if not k:
        return [], [f"{davis.mask_dir / seq / names[0]}.png: no object on the first frame"]
    scored = names[1:-1]  # DAVIS does not score the first and last frames
    problems, preds = [], []
    for n in scored:
        pred, problem = _load_pred(
            pred_dir / seq / f"{n}.png", gt.shape[1:], set(range(1, k + 1)), allow_missing
        )
        problems.append(problem) if problem else preds.append(pred)
    if problems or not scored:
        return [], problems
    pred = np.stack(preds)
    g_all, v = gt[1:], (void[1:] if void is not None else None)
    rows = []
    for oid in range(1, k + 1):
        j, f = _object_scores(pred == oid, g_all == oid, v)
        (jm, jr, jd), (fm, fr, fd) = statistics(j), statistics(f)
        rows.append(
            {
                "sequence": seq,
                "object": oid,
                "J-Mean": jm,
                "J-Recall": jr,
                "J-Decay": jd,
                "F-Mean": fm,
                "F-Recall": fr,
                "F-Decay": fd,
                "frames": len(j),
            }
        )
    return rows, problems


def evaluate_davis(
    pred_dir: str | os.PathLike,
    davis_root: str | os.PathLike,
    resolution: str = "480p",
    ignore_void: bool = False,
    allow_missing: bool = False,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """DAVIS semi-supervised evaluation of ``pred_dir/<sequence>/<frame>.png``.

    Label 255 in the ground truth counts as background; with ``ignore_void`` those pixels are
    left out of both masks instead, as the DAVIS 2017 toolkit does.
    """
    davis = DavisSequences(davis_root, resolution)
    pred_dir = _prediction_folder(pred_dir, davis.sequences)
    jobs = [(davis, s, pred_dir, ignore_void, allow_missing) for s in davis.sequences]
    sizes = [len(davis.masks(s)) for s in davis.sequences]
    results = _run(_score_davis_sequence, jobs, workers, "evaluate DAVIS", progress, sizes)
    _raise_problems([p for _, probs in results for p in probs], pred_dir)
    objects = [r for rows, _ in results for r in rows]
    report = {
        key: _mean([o[key] for o in objects])
        for key in ("J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
    }
    report["J&F-Mean"] = (
        None if report["J-Mean"] is None else (report["J-Mean"] + report["F-Mean"]) / 2
    )
    report["objects"] = objects
    report["protocol"] = {
        "mode": "davis",
        "void": "ignored" if ignore_void else "background",
        "first_and_last_frames_scored": False,
        "objects_scored": len(objects),
        "object_frames_scored": sum(o["frames"] for o in objects),
    }
    return report


def format_davis(report: dict) -> str:
    keys = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
    lines = [
        "  ".join(f"{k:>8}" for k in keys),
        "  ".join(f"{report[k]:8.3f}" if report[k] is not None else f"{'-':>8}" for k in keys),
        "",
        f"{'sequence':24} {'obj':>3} {'J-Mean':>7} {'F-Mean':>7}",
    ]
    for o in report["objects"]:
        lines.append(f"{o['sequence']:24} {o['object']:>3} {o['J-Mean']:7.3f} {o['F-Mean']:7.3f}")
    p = report["protocol"]
    lines.append(
        f"scored: {p['objects_scored']} objects on {p['object_frames_scored']} object-frames "
        "(every frame but each sequence's first and last)"
    )
    return "\n".join(lines)


# --- reference numbers ----------------------------------------------------------------------
# YouTube-VOS 2018 validation, J and F on seen and unseen categories, from the benchmark paper
# (Xu et al., "YouTube-VOS: A Large-Scale Video Object Segmentation Benchmark",
# arXiv 1809.03327, its results table). The S2S paper (arXiv 1809.00461) reports its own test
# split instead, so its numbers are not these. Overall is the mean of the four.
REFERENCE_RESULTS = {
    "S2S, without online learning [1809.03327]": {
        "J_seen": 0.667,
        "J_unseen": 0.482,
        "F_seen": 0.655,
        "F_unseen": 0.503,
    },
    "S2S, with online learning [1809.03327]": {
        "J_seen": 0.710,
        "J_unseen": 0.555,
        "F_seen": 0.700,
        "F_unseen": 0.612,
    },
    "OSVOS [1809.03327]": {"J_seen": 0.598, "J_unseen": 0.542, "F_seen": 0.605, "F_unseen": 0.607},
    "MaskTrack [1809.03327]": {
        "J_seen": 0.599,
        "J_unseen": 0.450,
        "F_seen": 0.595,
        "F_unseen": 0.479,
    },
    "OnAVOS [1809.03327]": {"J_seen": 0.601, "J_unseen": 0.466, "F_seen": 0.627, "F_unseen": 0.514},
    "OSMN [1809.03327]": {"J_seen": 0.600, "J_unseen": 0.406, "F_seen": 0.601, "F_unseen": 0.440},
}


def markdown_table(reports: dict[str, dict]) -> str:
    """``{name: report}`` as a Markdown table of overall, J and F seen/unseen."""
    keys = ("overall", "J_seen", "J_unseen", "F_seen", "F_unseen")
    lines = ["| | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, r in reports.items():
        r = dict(r)
        if r.get("overall") is None:
            r["overall"] = _mean([r.get(k) for k in keys[1:]])
        cells = [f"{r[k]:.3f}" if r.get(k) is not None else "-" for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
