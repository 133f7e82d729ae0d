"""Where a model with mask feedback loses its objects: J and mask size frame by frame.

A model that feeds its own mask back (``feedback``) can drift: each frame's small excess or
shortfall is fed into the next one. The training loss sees five-frame clips; J is scored on
whole videos. This script shows both side by side for each model given, on the first
``--videos`` videos of the synthetic valid split (never real video):

- J per frame after the given one, averaged over the objects given on frame 0;
- the predicted area over the true area per frame (1 = right size; above 1 the masks grow);
- the training loss of the recipe (``bce_iou``) on frames 0-4 of the same predictions: a
  model can lower it while its thresholded masks, and J, get worse.

    python benchmarks/bench_drift.py [CHECKPOINT ...] [--untrained CONFIG] [--videos 8]
                                     [--feedback-dim D] [--json FILE]

``--untrained s2s-vgg16`` adds that config as built (pretrained trunk, nothing trained):
with label propagation it already follows objects. ``--feedback-dim`` multiplies the fed-back
masks at inference as training's ``fade_feedback`` does (1 = as `predict` runs). ``--json``
keeps the rows of an earlier run on the same videos, keyed by the checkpoint path as given
(run it from a folder of checkpoints named after how they were trained).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from vostutorial.checkpoint import load_checkpoint, model_from_checkpoint
from vostutorial.data import ensure_default
from vostutorial.data.ytvos import YTVOSSplit
from vostutorial.inference import masks_to_tensor, predict_objects
from vostutorial.losses import bce_iou
from vostutorial.metrics import jaccard
from vostutorial.models import build_model
from vostutorial.models.s2s import S2S
from vostutorial.resources import set_threads

SHOWN = (1, 2, 4, 7, 10, 13, 16, 19)  # frames printed (all are in --json)


def with_feedback_dim(model: S2S, dim: float) -> None:
    """Make ``model(frames, masks)`` multiply its fed-back masks by ``dim``."""
    forward = model.forward
    model.forward = lambda f, m: forward(f, m, feedback_dim=torch.full((m.shape[0], 1, 1, 1), dim))


def drift(model: S2S, split: YTVOSSplit, videos: list[str]) -> dict:
    """Per-frame mean J, area ratio, and the five-frame loss of ``model`` on ``videos``."""
    js, areas, losses = [], [], []
    for video in videos:
        sample = split.read_video(video)
        probs = predict_objects(model, sample)
        for oid, (t0, _) in sample.first_masks.items():
            if t0:  # objects given later start later: frame-by-frame rows would not line up
                continue
            gt = np.stack([split.ground_truth(video, f) == oid for f in sample.frame_names])
            gt = masks_to_tensor(gt, probs[oid].shape[-2:])[:, 0] > 0.5  # as the model saw it
            pred = probs[oid] > 0.5
            js.append(jaccard(pred, gt.numpy()))
            areas.append(pred.sum((1, 2)) / np.maximum(gt.sum((1, 2)).numpy(), 1))
            logits = torch.logit(torch.from_numpy(probs[oid][:5]), eps=1e-6)[None, :, None]
            losses.append(bce_iou(logits, gt[:5].float()[None, :, None]).item())
    n = min(len(j) for j in js)
    return {
        "objects": len(js),
        "J_per_frame": np.mean([j[:n] for j in js], axis=0).round(4).tolist(),
        "area_ratio_per_frame": np.mean([a[:n] for a in areas], axis=0).round(3).tolist(),
        "loss_frames_0_4": round(float(np.mean(losses)), 4),
    }


def recipe(ckpt: dict) -> dict:
    """What a training checkpoint is: its step and the settings that shape feedback."""
    t, m = ckpt.get("train_config") or {}, ckpt["model_config"]
    keep = ("steps", "batch_size", "clip_len", "lr", "loss", "score_first", "fade_feedback")
    return {"step": ckpt.get("step"), "hard_feedback": m.get("hard_feedback", False)} | {
        k: t[k] for k in keep if k in t
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="*", type=Path)
    p.add_argument("--untrained", action="append", default=[], metavar="CONFIG")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--feedback-dim", type=float, default=1.0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    if not a.checkpoints and not a.untrained:
        p.error("give a checkpoint or --untrained CONFIG")
    set_threads()
    split = YTVOSSplit(ensure_default(progress=False), "valid")
    videos = sorted(split.videos)[: a.videos]
    models = {f"untrained {c}": (build_model(c).eval(), {}) for c in a.untrained}
    for c in a.checkpoints:
        ckpt = load_checkpoint(c)
        models[str(c)] = (model_from_checkpoint(ckpt, "cpu", c), recipe(ckpt))
    rows = {}
    for name, (model, made) in models.items():
        if a.feedback_dim != 1.0:
            with_feedback_dim(model, a.feedback_dim)
        rows[name] = made | drift(model, split, videos)
    print(f"synthetic valid, first {len(videos)} videos, feedback x{a.feedback_dim}")
    print("| model | loss 0-4 | J mean | " + " | ".join(f"J@{t}" for t in SHOWN) + " |")
    print("|---|---|---|" + "---|" * len(SHOWN))
    for name, r in rows.items():
        j, area = r["J_per_frame"], r["area_ratio_per_frame"]
        cells = " | ".join(f"{j[t]:.2f} ({area[t]:.1f}x)" for t in SHOWN if t < len(j))
        print(f"| {name} | {r['loss_frames_0_4']:.3f} | {np.mean(j[1:]):.3f} | {cells} |")
    print("(J at frame t, and in brackets the predicted area over the true one)")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"videos": len(videos), "feedback_dim": a.feedback_dim, "rows": rows}
        if a.json.exists():  # rows measured earlier on the same videos stay in the file
            old = json.loads(a.json.read_text())
            if (old["videos"], old["feedback_dim"]) == (len(videos), a.feedback_dim):
                payload["rows"] = {**old["rows"], **rows}
        a.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
