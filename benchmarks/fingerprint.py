"""Fingerprints of what the kit computes, to prove a refactor changed nothing.

Prints (and with ``--json`` records) SHA-256 digests of
- the shipped checkpoint's predictions on a small synthetic split (probabilities and the
  written masks), plain and with the CPU speed-ups, with and without online learning;
- the weights after a short training run of ``tiny`` and of ``s2s-vgg16`` (float32, CPU).

Run it before and after a change on the same machine: equal digests mean bit-identical
behaviour (digests differ between CPUs, whose float kernels differ). Takes about a minute.

    python benchmarks/fingerprint.py --json benchmarks/results/fingerprint.json --label after
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vostutorial.checkpoint import load_checkpoint, model_from_checkpoint
from vostutorial.data import SynthConfig, YTVOSSplit, generate
from vostutorial.inference import finetune_online, predict_objects, predict_split
from vostutorial.paths import SHIPPED_CHECKPOINT
from vostutorial.train import train
from vostutorial.train_config import load_config

SMALL_DATA = SynthConfig(train_videos=6, valid_videos=3, seed=3, size=(64, 112), frames=8)


def digest(*arrays: np.ndarray | bytes) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(a if isinstance(a, bytes) else np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def folder_digest(folder: Path) -> str:
    return digest(*(p.read_bytes() for p in sorted(folder.rglob("*.png"))))


def prediction_digests(root: Path, work: Path) -> dict[str, str]:
    model = model_from_checkpoint(load_checkpoint(SHIPPED_CHECKPOINT), "cpu", SHIPPED_CHECKPOINT)
    split = YTVOSSplit(root, "valid")
    sample = split.read_video(next(iter(split.videos)))
    probs = predict_objects(model, sample)
    tuned = predict_objects(finetune_online(model, sample, 3), sample)
    out = {
        "probs": digest(*(probs[k] for k in sorted(probs))),
        "probs online 3": digest(*(tuned[k] for k in sorted(tuned))),
    }
    for fast in (False, True):
        for steps in (0, 2):
            pred = predict_split(
                root,
                "valid",
                SHIPPED_CHECKPOINT,
                work / f"pred-{fast}-{steps}",
                online_steps=steps,
                fast=fast,
                progress=False,
            )
            out[f"predict fast={fast} online={steps}"] = folder_digest(pred)
    return out


def training_digests(root: Path, work: Path) -> dict[str, str]:
    out = {}
    for name, size, steps in (("tiny", [64, 96], 4), ("s2s-vgg16", [64, 96], 2)):
        small = {
            "size": size,
            "batch_size": 2,
            "clip_len": 3,
            "workers": 0,
            "steps": steps,
            "val_every": steps,
            "val_videos": 1,
            "bf16": False,
        }
        cfg = load_config(name, small)
        ckpt = train(cfg, work / f"run-{name}", root, progress=False)
        state = load_checkpoint(ckpt)["model"]  # in the order the model holds them
        out[f"train {name} {steps} steps"] = digest(*(v.numpy() for v in state.values()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, help="add the digests under --label to this file")
    ap.add_argument("--label", default="now")
    args = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = generate(work / "synth", SMALL_DATA, workers=1, progress=False)
        found = prediction_digests(root, work) | training_digests(root, work)
    for k, v in found.items():
        print(f"{k:32s} {v}")
    if args.json:
        record = json.loads(args.json.read_text()) if args.json.exists() else {}
        record[args.label] = found
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        same = [lab for lab, d in record.items() if lab != args.label and d == found]
        print(f"identical to: {', '.join(same) or 'none recorded'}", file=sys.stderr)


if __name__ == "__main__":
    main()
