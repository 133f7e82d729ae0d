"""Inference throughput: frames x objects per second for ``tiny`` and ``paper`` on CPU (and
CUDA), the objects of a video batched together (one shared encoding) against a loop over them
one at a time, at 4 objects (goal: at least 2x), and the cost of merging and writing the PNGs.

    python benchmarks/bench_inference.py [--frames 10] [--configs tiny paper]
"""

import argparse
import tempfile
import time

import numpy as np
import torch

from vostutorial.data import VideoSample
from vostutorial.inference import merge, predict_objects
from vostutorial.models import build_model
from vostutorial.predictions import write_video_masks


def video(t: int, h: int, w: int, k: int) -> VideoSample:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    masks = {}
    for oid in range(1, k + 1):
        m = np.zeros((h, w), bool)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        m[y : y + h // 4, x : x + w // 4] = True
        masks[oid] = (0, m)
    return VideoSample("bench", [f"{5 * i:05d}" for i in range(t)], frames, masks, {})


def best_of(fn, n=2):
    fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--objects", type=int, default=4)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    a = p.parse_args()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for name in a.configs:
            model = build_model(name).to(device).eval()
            t = a.frames if name == "tiny" or device == "cuda" else 3
            sample = video(t, 720, 1280, a.objects)  # YouTube-VOS frames are 720p
            batched = best_of(lambda m=model, s=sample, d=device: predict_objects(m, s, device=d))

            def loop(model=model, sample=sample, device=device):
                for oid, first in sample.first_masks.items():
                    predict_objects(
                        model,
                        VideoSample(
                            sample.name, sample.frame_names, sample.frames, {oid: first}, {}
                        ),
                        device=device,
                    )

            single = best_of(loop)
            fo = t * a.objects
            print(
                f"{name:6} {device:4} {a.objects} objects x {t} frames (720p in, "
                f"{model.cfg.input_size[0]}x{model.cfg.input_size[1]} model): batched "
                f"{fo / batched:6.1f} frame-objects/s, one at a time {fo / single:6.1f}, "
                f"speed-up {single / batched:.2f}x (goal >= 2x)"
            )
    sample = video(a.frames, 720, 1280, a.objects)
    probs = {
        k: np.random.default_rng(k).uniform(0, 1, sample.frames.shape[:3]).astype(np.float32)
        for k in sample.first_masks
    }
    t_merge = best_of(lambda: merge(probs, sample.first_masks)) / a.frames
    labels = merge(probs, sample.first_masks)
    with tempfile.TemporaryDirectory() as tmp:
        t_write = (
            best_of(lambda: write_video_masks(tmp, "v", sample.frame_names, labels)) / a.frames
        )
    print(
        f"merge {1000 * t_merge:.1f} ms/frame, PNG writing {1000 * t_write:.1f} ms/frame "
        f"(720x1280, {a.objects} objects)"
    )


if __name__ == "__main__":
    main()
