"""Data throughput: synthetic generation frames/s, and training-clip loading frames/s
(JPEG decode + joint augmentation to 256x448, DataLoader with 2 workers).

The loader must keep ahead of training: at least 100 frames/s on 2 cores.

    python benchmarks/bench_data.py
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from vostutorial.data import ClipDataset, SynthConfig, YTVOSSplit, generate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--videos", type=int, default=40)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--workers", type=int, default=2)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SynthConfig(train_videos=a.videos, valid_videos=0)
        for workers in (1, 2):
            t0 = time.perf_counter()
            generate(Path(tmp) / f"w{workers}", cfg, workers=workers, progress=False)
            dt = time.perf_counter() - t0
            n = a.videos * cfg.frames
            print(
                f"synthetic generation ({workers} process{'es' if workers > 1 else ''}): "
                f"{n / dt:7.1f} frames/s at {cfg.size[0]}x{cfg.size[1]}"
            )
        split = YTVOSSplit(Path(tmp) / "w2", "train")
        ds = ClipDataset(split, clip_len=5, size=(256, 448), max_skip=2, repeats=100)
        for workers in (0, a.workers):
            torch.manual_seed(0)
            loader = DataLoader(
                ds, batch_size=4, shuffle=True, num_workers=workers, persistent_workers=workers > 0
            )
            it = iter(loader)
            next(it)  # start-up (worker spawn) is not throughput
            t0 = time.perf_counter()
            frames = 0
            for _ in range(a.batches):
                frames += next(it)["frames"].shape[:2].numel()
            dt = time.perf_counter() - t0
            print(f"training clips, 256x448, {workers} loader workers: {frames / dt:7.1f} frames/s")
        print("goal: >= 100 frames/s with 2 workers")


if __name__ == "__main__":
    main()
