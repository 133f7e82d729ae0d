"""The model and label propagation together: which share of the vote to give propagation.

For each video, label propagation's soft labels (`propagation.propagate_soft`, HED's VGG16 up
to block 3) are computed once, and the model's probabilities (`inference.tuned_probs`) once per
number of online-learning steps; each pair is then averaged at every share
(`inference.blend_vote`) and merged. Share 0 is the model alone, share 1 propagation alone.
The share is CHOSEN ON SYNTHETIC VALID: the real DAVIS sequences, where present, are scored
only to report it.

    python benchmarks/bench_vote.py [--checkpoint PT] [--online-steps 0 30]
                                    [--shares 0 0.25 0.5 0.75 1] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import SHIPPED_CHECKPOINT, real_davis
from tqdm.auto import tqdm

from vostutorial.checkpoint import load_checkpoint, model_from_checkpoint, training_loss
from vostutorial.data import ensure_default
from vostutorial.data.convert import davis_to_ytvos
from vostutorial.data.ytvos import YTVOSSplit
from vostutorial.evaluate import evaluate_davis, evaluate_ytvos
from vostutorial.fast import speed_up
from vostutorial.inference import ONLINE_STEPS, VOTE_SHARE, blend_vote, merge, tuned_probs
from vostutorial.models import S2S
from vostutorial.predictions import write_video_masks
from vostutorial.propagation import feature_extractor, propagate_soft
from vostutorial.resources import set_threads


def predict(
    model: S2S,
    loss: str,
    trunk: torch.nn.Module,
    root: Path,
    steps: list[int],
    shares: list[float],
    out: Path,
) -> dict[str, float]:
    """Predictions of ``root/valid`` for every number of online ``steps`` and every share,
    into ``out/<steps>/<share>``; seconds per frame spent on the model and on propagation."""
    split, spent = YTVOSSplit(root, "valid"), {"propagation": 0.0}
    for video in tqdm(split.videos, desc=root.name, unit="video"):
        sample = split.read_video(video)
        t0 = time.perf_counter()
        vote = propagate_soft(trunk, sample.frames, sample.first_masks)
        spent["propagation"] += time.perf_counter() - t0
        for n in steps:
            t0 = time.perf_counter()
            probs = tuned_probs(model, sample, n, loss)
            spent[f"model, {n} online steps"] = spent.get(f"model, {n} online steps", 0.0)
            spent[f"model, {n} online steps"] += time.perf_counter() - t0
            for share in shares:
                labels = merge(blend_vote(probs, vote, share), sample.first_masks, fast=True)
                write_video_masks(out / str(n) / str(share), video, sample.frame_names, labels)
    frames = sum(len(v.frames) for v in split.videos.values())
    return {k: v / frames for k, v in spent.items()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    p.add_argument("--online-steps", type=int, nargs="+", default=[0, ONLINE_STEPS])
    p.add_argument("--shares", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    p.add_argument("--davis", type=Path, default=real_davis(), help="a DAVIS root, if present")
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    set_threads()
    ckpt = load_checkpoint(a.checkpoint)
    model = speed_up(model_from_checkpoint(ckpt, "cpu", a.checkpoint))
    loss, trunk = training_loss(ckpt), feature_extractor("hed")
    runs = [(n, s) for n in a.online_steps for s in a.shares]
    rows: dict[tuple[int, float], dict[str, float]] = {run: {} for run in runs}
    cost = {}
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = ensure_default(progress=False)
        cost["synthetic"] = predict(model, loss, trunk, synthetic, a.online_steps, a.shares,
                                    Path(tmp) / "synthetic")  # fmt: skip
        for n, s in runs:
            pred = Path(tmp) / "synthetic" / str(n) / str(s)
            rows[n, s]["synthetic"] = evaluate_ytvos(pred, synthetic, progress=False)["overall"]
        if (a.davis / "JPEGImages").is_dir():  # converted with the first masks given
            real = davis_to_ytvos(a.davis, Path(tmp) / "davis", "valid", heldout=True).parent
            cost["davis"] = predict(model, loss, trunk, real, a.online_steps, a.shares,
                                    Path(tmp) / "real")  # fmt: skip
            for n, s in runs:
                pred = Path(tmp) / "real" / str(n) / str(s)
                rows[n, s]["davis"] = evaluate_davis(pred, a.davis, progress=False)["J&F-Mean"]
        else:
            print(f"no DAVIS root at {a.davis}: synthetic valid only")
    print(f"checkpoint {a.checkpoint.name}; share: label propagation's share of the vote "
          "(0: the model alone, 1: propagation alone)")  # fmt: skip
    print("| online steps | share | synthetic overall | DAVIS J&F |\n|---|---|---|---|")
    best = {}
    for n in a.online_steps:
        best[n] = max(a.shares, key=lambda s: rows[n, s]["synthetic"])
        for s in a.shares:
            r, mark = rows[n, s], " (best on synthetic)" if s == best[n] else ""
            davis = f"{r['davis']:.3f}" if "davis" in r else "-"
            print(f"| {n} | {s}{mark} | {r['synthetic']:.3f} | {davis} |")
    print(f"the kit's share (inference.VOTE_SHARE): {VOTE_SHARE}")
    for root, c in cost.items():
        print(f"{root}, seconds per frame: " + ", ".join(f"{k} {v:.3f}" for k, v in c.items()))
    if a.json:
        out = {
            "checkpoint": a.checkpoint.name,
            "rows": [{"online_steps": n, "share": s, **rows[n, s]} for n, s in runs],
            "best_on_synthetic": {str(n): s for n, s in best.items()},
            "seconds_per_frame": cost,
        }
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
