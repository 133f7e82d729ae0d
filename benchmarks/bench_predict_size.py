"""At what size the model segments a video: its training size against the video's own.

The model trains on 128x224 crops, but its convolutions and its ConvLSTM run on any size.
This script predicts with the shipped checkpoint at several shorter sides (``predict
--short-side``; `inference.predict_size` scales each video down to it, never up, and rounds to
the model's stride), side by side in one run, without and with online learning (which trains at
the training size either way), and prints each run's score (overall on synthetic valid, J&F
on DAVIS) and frames per second:

- synthetic valid (``data/synthetic``, 180x320 frames): short side 128 is the training size
  (128x224), 240 the video's own (192x320). The default (`inference.PREDICT_SHORT_SIDE`) is
  chosen here and by speed alone.
- the DAVIS root (default ``../shared/real-samples/davis2016``, evaluation only; skipped when
  absent), 480p: what each size costs in frames per second, and what it scores.

    python benchmarks/bench_predict_size.py [--sides 128 240] [--davis-sides 128 240 320]
                                            [--online-steps 30] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from vostutorial.data import YTVOSSplit, ensure_default
from vostutorial.data.convert import davis_to_ytvos
from vostutorial.evaluate import evaluate_davis, evaluate_ytvos
from vostutorial.inference import ONLINE_STEPS, predict_split
from vostutorial.paths import SHIPPED_CHECKPOINT, real_davis
from vostutorial.resources import set_threads


def run(root: Path, out: Path, side: int, steps: int, checkpoint: Path) -> tuple[float, int]:
    """Predict ``root``'s valid split into ``out``; returns (seconds, frames)."""
    t0 = time.perf_counter()
    predict_split(root, "valid", checkpoint, out, steps, short_side=side, progress=False)
    seconds = time.perf_counter() - t0
    split = YTVOSSplit(root, "valid")
    return seconds, sum(len(v.frames) for v in split.videos.values())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sides", nargs="+", type=int, default=[128, 240])
    p.add_argument("--davis-sides", nargs="+", type=int, default=[128, 240, 320])
    p.add_argument("--online-steps", type=int, default=ONLINE_STEPS)
    p.add_argument("--davis", type=Path, default=real_davis())
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    p.add_argument("--json", type=Path, help="also write the figures here")
    a = p.parse_args()
    set_threads()
    rows: dict[str, dict] = {}
    print(f"checkpoint {a.checkpoint.name}; online learning: {a.online_steps} steps")
    print("| data | short side | online steps | J&F (overall) | frames/s |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sets = [("synthetic valid", ensure_default(progress=False), a.sides)]
        if (a.davis / "JPEGImages").is_dir():
            davis_to_ytvos(a.davis, tmp / "davis", split="valid", heldout=True, progress=False)
            sets.append(("DAVIS (real)", tmp / "davis", a.davis_sides))
        else:
            print(f"(no DAVIS root at {a.davis}: the real rows are skipped)")
        for name, root, sides in sets:
            for steps in (0, a.online_steps):
                for side in sides:
                    out = tmp / f"{len(rows)}"
                    sec, frames = run(root, out, side, steps, a.checkpoint)
                    if name.startswith("DAVIS"):
                        score = evaluate_davis(out, a.davis, progress=False)["J&F-Mean"]
                    else:
                        score = evaluate_ytvos(out, root, "valid", progress=False)["overall"]
                    rows[f"{name}, short side {side}, {steps} online steps"] = {
                        "data": name,
                        "short_side": side,
                        "online_steps": steps,
                        "score": score,
                        "frames_per_second": frames / sec,
                        "seconds_per_video": sec / len(YTVOSSplit(root, "valid").videos),
                    }
                    print(f"| {name} | {side} | {steps} | {score:.3f} | {frames / sec:.1f} |")
                    sys.stdout.flush()
    print("(frames/s: whole videos read, segmented, merged and written, online learning included)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
