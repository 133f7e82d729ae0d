"""Training-free label propagation: the plain masked dense window
(`models.matching.WindowNeighbours`) against the tiled window (`fast.TiledNeighbours`, what
``vostutorial baseline label-propagation`` runs), side by side on the same frames, alternating
per sequence; seconds per frame for each and whether the two label every pixel alike.

Reads the real DAVIS sequences beside the project (evaluation only: nothing is tuned here);
without them it says so and exits 0.

    python benchmarks/bench_propagation.py [DAVIS_ROOT] [--frames 20] [--sequences blackswan dog]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import real_davis

from vostutorial.data import DavisSequences
from vostutorial.propagation import feature_extractor, propagate_labels


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("davis", nargs="?", type=Path, default=real_davis())
    p.add_argument("--frames", type=int, default=20, help="first N frames of each sequence")
    p.add_argument("--sequences", nargs="+", default=["blackswan", "dog"])
    a = p.parse_args()
    if not (a.davis / "JPEGImages").is_dir():
        print(f"no DAVIS root at {a.davis}: nothing measured")
        return 0
    trunk, davis = feature_extractor("hed"), DavisSequences(a.davis)
    print(f"{a.davis}: first {a.frames} frames, 240x432 input, radius 12, first + 2 recent frames")
    total = {False: 0.0, True: 0.0}
    for seq in a.sequences:
        sample, _ = davis.read_sample(seq)
        frames = sample.frames[: a.frames]
        out, secs = {}, {}
        for fast in (False, True):
            t0 = time.perf_counter()
            out[fast] = propagate_labels(trunk, frames, sample.first_masks, fast=fast)
            secs[fast] = (time.perf_counter() - t0) / len(frames)
            total[fast] += secs[fast]
        same = np.mean(out[False] == out[True])
        print(
            f"{seq:12} plain {secs[False]:.3f} s/frame, tiled {secs[True]:.3f} s/frame "
            f"({secs[False] / secs[True]:.2f}x); pixels labelled alike {same:.4%}"
        )
    print(f"overall speed-up {total[False] / total[True]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
