"""What each of the tracking cues and training levers buys, variant against variant.

Trains variants of a base config (``--base``: ``s2s-vgg16``, the S2S on a frozen pretrained
VGG16; ``tiny``, the shipped model, learnt from scratch; or ``vgg16-tiny``, tiny on VGG16's
first two blocks, frozen) side by side from the same seed on the
built-in synthetic data (never on real video), each for ``--steps`` steps at batch ``--batch``
(default: the base recipe's own, i.e. full length), then scores each without online learning
on the synthetic valid split and, when a DAVIS root is there (default
``../shared/real-samples/davis2016``; evaluation only), on its sequences:

- ``plain``: the paper's data flow alone (no skips, no feedback, no matching or propagation),
  trained with the base recipe's loss and frame-0 loss; ``plain, no frame-0 loss``: without
  the latter;
- ``plain, paper's loss``: the same trained with the paper's class-balanced BCE on the frames
  after the given one; ``plain, paper's loss, then BCE``: plain BCE after step 350;
  ``plain, Lovasz``: with BCE + Lovasz hinge (``bce_lovasz``);
- ``+ skips``, ``+ feedback``: the cues one at a time, cumulatively;
- ``all``: the base config as it is (``s2s-vgg16``: + label propagation; ``tiny`` and
  ``vgg16-tiny``: + learnt matching), with the base recipe's frame-0 loss and faded feedback;
- ``all, no frame-0 loss, no fade``: without the two training levers;
- ``all, hard feedback, Lovasz, no fade``: the mask fed back thresholded at 0.5
  (``hard_feedback``) and trained with BCE + Lovasz hinge (``bce_lovasz``), without the fade;
  ``..., skips before pool``: and the decoder's skips taken from each stage's last convolution
  before its pool (``skips_before_pool``: conv3_3, conv2_2, conv1_2 at 1/4, 1/2, full size).

    python benchmarks/bench_ablation.py [--base s2s-vgg16] [--steps N] [--batch B] [--json FILE]
                                        [--only VARIANT ...] [--keep DIR]

Every table starts with copying the first mask, scored in the same run: the floor. On the real
sequences each row also has ``size_first`` and ``size_last``, the median of the predicted
mask's area over the true one's on the first and the last scored frame (`mask_sizes`): too
much painted, or the object lost.

``--json`` writes the table (notebook 03 shows the files in ``benchmarks/results/``); rows of
variants measured earlier into the same file with the same recipe are kept, so that the
variants can be run one session at a time (``--only``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from vostutorial.data import ensure_default
from vostutorial.data.convert import davis_to_ytvos
from vostutorial.data.palette import read_mask
from vostutorial.evaluate import evaluate_davis, evaluate_ytvos
from vostutorial.inference import predict_split
from vostutorial.models.config import CONFIGS
from vostutorial.paths import real_davis
from vostutorial.predictions import baseline_copy_first
from vostutorial.resources import set_threads
from vostutorial.train import train
from vostutorial.train_config import load_config

DAVIS = real_davis()

# name: (model switches, training overrides); switches a base does not have stay off
NONE = dict(skips=False, feedback=False, matching=False, propagation=False)
VARIANTS: dict[str, tuple[dict, dict]] = {
    "plain": (NONE, dict(fade_feedback=0.0)),
    # which of the base recipe's loss and its frame-0 loss makes the plain flow hold the object
    "plain, no frame-0 loss": (NONE, dict(fade_feedback=0.0, score_first=False)),
    # the paper's flow trained as the paper does: class-balanced BCE on the frames after frame 0
    "plain, paper's loss": (NONE, dict(fade_feedback=0.0, loss="balanced", score_first=False)),
    # the paper's loss for the first half of the s2s-vgg16 recipe's 700 steps, then plain BCE:
    # trained on the class-balanced BCE alone the masks grow on real video (the object's
    # pixels weigh the background's area over the object's); plain BCE after it was tried to
    # calibrate them, and they vanish instead (README, "What each addition buys")
    "plain, paper's loss, then BCE": (
        NONE,
        dict(fade_feedback=0.0, loss="balanced", score_first=False, bce_from=350),
    ),
    # the same trained on the thresholded mask's Jaccard (BCE + Lovasz hinge)
    "plain, Lovasz": (NONE, dict(fade_feedback=0.0, loss="bce_lovasz")),
    "+ skips": (NONE | dict(skips=True), dict(fade_feedback=0.0)),
    "+ feedback": (NONE | dict(skips=True, feedback=True), {}),
    "all": ({}, {}),
    "all, no frame-0 loss, no fade": ({}, dict(score_first=False, fade_feedback=0.0)),
    # feedback as J sees it (thresholded), a loss on the thresholded mask, no fade: the first
    # recipe under which s2s-vgg16 gets better with training (benchmarks/bench_drift.py)
    "all, hard feedback, Lovasz, no fade": (
        dict(hard_feedback=True),
        dict(loss="bce_lovasz", fade_feedback=0.0),
    ),
    # and the decoder's skips from each stage before its pool, down to full size (conv1_2)
    "all, hard feedback, Lovasz, no fade, skips before pool": (
        dict(hard_feedback=True, skips_before_pool=True),
        dict(loss="bce_lovasz", fade_feedback=0.0),
    ),
}


COPY = "copy the first mask"  # the floor every variant is read against, measured in the same run


def real_root(a, work: Path) -> Path:
    """The DAVIS sequences in the YouTube-VOS layout `predict_split` reads (converted once)."""
    real = work / "davis"
    if not (real / "valid" / "meta.json").exists():
        davis_to_ytvos(a.davis, real, "valid", heldout=True, progress=False)
    return real


def mask_sizes(pred: Path, davis: Path) -> dict:
    """How a variant fails on real video: the median over the DAVIS sequences of its mask's
    area over the true mask's, on the first and on the last scored frame (1 is right; above
    it the network paints more than the object, towards 0 it loses the object)."""
    first, last = [], []
    for video in sorted(p for p in pred.iterdir() if p.is_dir()):
        truth = sorted((davis / "Annotations" / "480p" / video.name).glob("*.png"))
        for frame, sizes in ((truth[1], first), (truth[-2], last)):
            true_area = (read_mask(frame) > 0).sum()
            sizes.append((read_mask(video / frame.name) > 0).sum() / max(true_area, 1))
    return {"size_first": float(np.median(first)), "size_last": float(np.median(last))}


def copy_row(a, root: Path, work: Path) -> dict:
    """Copy-first's row: the given masks copied to every later frame (nothing trained)."""
    pred = baseline_copy_first(root, "valid", work / "copy" / "synthetic", progress=False)
    syn = evaluate_ytvos(pred, root, progress=False)
    row = {k: syn[k] for k in ("overall", "J_seen", "J_unseen")}
    if (a.davis / "JPEGImages").is_dir():
        pred = baseline_copy_first(
            real_root(a, work), "valid", work / "copy" / "real", progress=False
        )
        row["real_JF"] = evaluate_davis(pred, a.davis, progress=False)["J&F-Mean"]
    return row


def run(name: str, switches: dict, overrides: dict, a, root: Path, work: Path) -> dict:
    """Train one variant and score it; returns its row."""
    key = "ablation-" + name.replace(" ", "").replace(",", "-")
    variant = replace(CONFIGS[a.base], name=key, **switches)
    short = {"steps": a.steps, "batch_size": a.batch, "val_every": a.steps, "val_videos": 1}
    cfg = load_config(a.base, short | {"ckpt_every": a.steps} | overrides)
    t0 = time.perf_counter()
    ckpt = train(cfg, work / key / "run", data=root, progress=False, model_config=variant)
    minutes = (time.perf_counter() - t0) / 60
    pred = predict_split(root, "valid", ckpt, work / key / "synthetic", progress=False)
    syn = evaluate_ytvos(pred, root, progress=False)
    row = {"minutes": round(minutes, 1)} | {k: syn[k] for k in ("overall", "J_seen", "J_unseen")}
    if (a.davis / "JPEGImages").is_dir():
        pred = predict_split(real_root(a, work), "valid", ckpt, work / key / "real", progress=False)
        row["real_JF"] = evaluate_davis(pred, a.davis, progress=False)["J&F-Mean"]
        row |= mask_sizes(pred, a.davis)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--base", default="s2s-vgg16", choices=["s2s-vgg16", "tiny", "vgg16-tiny"])
    p.add_argument("--steps", type=int, help="default: the base recipe's")
    p.add_argument("--batch", type=int, help="default: the base recipe's")
    p.add_argument("--davis", type=Path, default=DAVIS, help="a DAVIS root (evaluation only)")
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), help="a subset of the variants")
    p.add_argument("--json", type=Path, help="also write the table here")
    p.add_argument("--keep", type=Path, help="write checkpoints and predictions here, not to a "
                   "temporary folder")  # fmt: skip
    a = p.parse_args()
    recipe = load_config(a.base)
    a.steps, a.batch = a.steps or recipe.steps, a.batch or recipe.batch_size
    set_threads()
    root = ensure_default(progress=False)
    if not (a.davis / "JPEGImages").is_dir():
        print(f"no DAVIS root at {a.davis}: real-video column left out")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        rows[COPY] = copy_row(a, root, a.keep or Path(tmp))
        print(COPY, json.dumps(rows[COPY]), flush=True)
        for name in a.only or VARIANTS:
            rows[name] = run(name, *VARIANTS[name], a, root, a.keep or Path(tmp))
            print(name, json.dumps(rows[name]), flush=True)
    print(f"\n{a.base}: {a.steps} steps at batch {a.batch}, seed 0, no online learning")
    keys = ("overall", "J_seen", "J_unseen", "real_JF", "size_first", "size_last")
    print("| variant | " + " | ".join(keys) + " | train min |")
    print("|---" * (len(keys) + 2) + "|")
    for name, r in rows.items():
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in keys]
        minutes = f"{r['minutes']:.1f}" if "minutes" in r else "-"
        print(f"| {name} | {' | '.join(cells)} | {minutes} |")
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"base": a.base, "steps": a.steps, "batch": a.batch, "rows": rows}
        if a.json.exists():  # variants measured earlier with the same recipe stay in the table
            old = json.loads(a.json.read_text())
            if {k: old.get(k) for k in ("base", "steps", "batch")} == {
                k: payload[k] for k in ("base", "steps", "batch")
            }:
                payload["rows"] = {**old["rows"], **rows}
        a.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
