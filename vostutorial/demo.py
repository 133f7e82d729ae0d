"""``make demo``: the kit's main job, end to end on the built-in synthetic dataset.

Generate (or reuse) the data, load the reproducible ``tiny`` checkpoint (training it when
missing), predict every valid video, score the predictions and the copy-first baseline, and
write a small report to ``results/demo/``: ``metrics.json`` (the evaluate JSON), ``results.md``
(the table beside the paper's and the course project's), ``loss.png`` and overlay strips.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np

from .checkpoint import PROJECT, tiny_checkpoint
from .data.check import check_split
from .data.synthetic import ensure_default
from .data.ytvos import YTVOSSplit
from .evaluate import REFERENCE_RESULTS, evaluate_ytvos, format_ytvos, markdown_table, write_json
from .inference import predict_split
from .predictions import baseline_copy_first, predictions_dir, read_video_masks
from .viz import overlay_strip


def _plot_loss(log_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    steps = np.array([r["step"] for r in log])
    loss = np.array([r["loss"] for r in log])
    fig, ax = plt.subplots(1, 2, figsize=(10, 3))
    ax[0].plot(steps, loss, alpha=0.3)
    k = min(25, len(loss))
    ax[0].plot(steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"))
    ax[0].set(xlabel="step", ylabel="balanced BCE", yscale="log", title="training loss")
    val = [(r["step"], r["val_J"]) for r in log if "val_J" in r]
    if val:
        ax[1].plot(*zip(*val, strict=True), "o-")
    ax[1].set(xlabel="step", ylabel="J", ylim=(0, 1), title="validation J")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def _strips(valid: YTVOSSplit, pred_dir: Path, out_dir: Path, videos: int = 3) -> list[Path]:
    """Ground truth above prediction, every 4th frame, for a few multi-object videos."""
    from PIL import Image

    names = sorted(valid.videos, key=lambda v: -len(valid.videos[v].objects))[:videos]
    paths = []
    for video in names:
        sample = valid.read_video(video)
        pred = read_video_masks(pred_dir, video, sample.frame_names)
        top = overlay_strip(sample.frames, valid.masks(video), step=4)
        bottom = overlay_strip(sample.frames, pred, step=4)
        path = out_dir / f"overlay_{video}.png"
        Image.fromarray(np.concatenate([top, bottom])).save(path)
        paths.append(path)
    return paths


def run_demo(data: Path | None = None, out: Path | None = None, progress: bool = True) -> dict:
    """The whole job; returns the model's evaluation report."""
    t0 = time.perf_counter()
    root = ensure_default(data, progress=progress)
    out = out or PROJECT / "results" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    train = YTVOSSplit(root, "train")
    for split in ("train", "valid"):
        problems, s = check_split(root, split, progress=False)
        if problems:
            raise ValueError("\n".join(problems))
        cats = YTVOSSplit(root, split).categories()
        unseen = sorted(set(cats) - set(train.categories()))
        print(
            f"  {split}: {s['videos']} videos, {s['objects']} objects, {s['frames']} frames, "
            f"categories {cats}" + (f", unseen {unseen}" if unseen else "")
        )
    ckpt = tiny_checkpoint(progress=progress)
    print(f"model: {ckpt}")
    model_dir, floor_dir = predictions_dir(root, "model"), predictions_dir(root, "copy-first")
    shutil.rmtree(model_dir, ignore_errors=True)  # always from this checkpoint
    predict_split(root, "valid", ckpt, model_dir, progress=progress)
    baseline_copy_first(root, "valid", floor_dir, progress=False)
    report = evaluate_ytvos(model_dir, root, "valid", progress=False)
    floor = evaluate_ytvos(floor_dir, root, "valid", progress=False)
    print(format_ytvos(report))
    print(f"copy-first baseline: overall {floor['overall']:.3f}")
    write_json(report, out / "metrics.json")
    write_json(floor, out / "metrics_copy_first.json")
    table = markdown_table(
        {
            "S2S tiny (synthetic valid)": report,
            "copy-first (synthetic valid)": floor,
            **REFERENCE_RESULTS,
        }
    )
    (out / "results.md").write_text(
        "# vostutorial demo\n\nSynthetic YouTube-VOS valid split; the given first frame of each "
        "object is not scored. Paper and course-project rows are on the real YouTube-VOS.\n\n"
        + table
        + "\n"
    )
    log = ckpt.with_suffix(".log.jsonl")
    if log.exists():
        _plot_loss(log, out / "loss.png")
    strips = _strips(YTVOSSplit(root, "valid"), model_dir, out)
    print(
        f"report: {out}/ (results.md, metrics.json, loss.png, {len(strips)} overlay strips); "
        f"{time.perf_counter() - t0:.0f} s"
    )
    return report
