"""Inference throughput on CPU (and CUDA): frames x objects per second for ``tiny`` and
``paper``, the objects of a video batched together (one shared encoding) against a loop over
them one at a time, at 4 objects (goal: at least 2x), and the cost of merging and writing PNGs.

Each line times both ways side by side: ``predict_objects`` end to end (720p frames in,
probability maps out) and the network alone (frames already at the size `predict` runs it at,
`inference.predict_size`: 256x416 for 720p). Batching
shares the encoder, the matching's frame features and the frame resizing; the initializer,
the ConvLSTM and the decoder run once per object either way. So the speed-up is large where
the encoder dominates (``paper``: VGG16) and grows with the clip, as the per-object
initializer is spread over more frames.

Every figure is given for the plain model (the library ops the notebooks use) and for the
model after `vostutorial.fast.speed_up` (what ``vostutorial predict`` runs), side by side; merging
likewise with and without `fast.upsampled_argmax`.

    python benchmarks/bench_inference.py [--frames 10] [--objects 4] [--configs tiny paper]
"""

import argparse
import tempfile

import numpy as np
import torch
from common import seconds

from vostutorial.data import VideoSample
from vostutorial.fast import speed_up
from vostutorial.inference import merge, predict_objects, predict_size
from vostutorial.models import build_model
from vostutorial.predictions import write_video_masks


def video(t: int, h: int, w: int, k: int) -> VideoSample:
    """Random 720p frames and k rectangular objects, all given on frame 0."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8)
    masks = {}
    for oid in range(1, k + 1):
        m = np.zeros((h, w), bool)
        y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
        m[y : y + h // 4, x : x + w // 4] = True
        masks[oid] = (0, m)
    return VideoSample("bench", [f"{5 * i:05d}" for i in range(t)], frames, masks, {})


def one_at_a_time(sample: VideoSample) -> list[VideoSample]:
    return [
        VideoSample(sample.name, sample.frame_names, sample.frames, {oid: first}, {})
        for oid, first in sample.first_masks.items()
    ]


@torch.inference_mode()
def compare(model, sample: VideoSample, device: str) -> dict[str, tuple[float, float]]:
    """Seconds ``(batched, one at a time)`` for the whole prediction and for the network."""
    singles = one_at_a_time(sample)
    t, k = len(sample.frames), len(sample.first_masks)
    size = predict_size(sample.frames.shape[1:3], model.cfg.stride)  # as predict_objects sees it
    frames = torch.rand(1, t, 3, *size, device=device)
    masks = (torch.rand(k, 1, *size, device=device) > 0.7).float()
    return {
        "predict_objects": (
            seconds(lambda: predict_objects(model, sample, device=device), device),
            seconds(lambda: [predict_objects(model, s, device=device) for s in singles], device),
        ),
        "network": (
            seconds(lambda: model(frames, masks), device),
            seconds(lambda: [model(frames, m[None]) for m in masks], device),
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--objects", type=int, default=4)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    p.add_argument("--repeat", type=int, default=3, help="runs per figure (the best is kept)")
    a = p.parse_args()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for name, variant in [(n, v) for n in a.configs for v in ("plain", "fast")]:
            torch.manual_seed(0)
            model = build_model(name).to(device).eval()
            model = speed_up(model) if variant == "fast" else model
            repeat = a.repeat if name == "tiny" or device == "cuda" else 1  # paper: ~1 min a run
            compare(model, video(2, 720, 1280, a.objects), device)  # warm-up
            sample = video(a.frames, 720, 1280, a.objects)
            runs = [compare(model, sample, device) for _ in range(repeat)]
            fo = a.frames * a.objects
            for what in runs[0]:
                batched = min(r[what][0] for r in runs)
                single = min(r[what][1] for r in runs)
                print(
                    f"{name:5} {variant:5} {device:4} {what:15} {a.objects} objects x "
                    f"{a.frames} frames: batched {fo / batched:6.1f} frame-objects/s, one at a "
                    f"time {fo / single:6.1f}, speed-up {single / batched:.2f}x (goal >= 2x)"
                )
    merge_and_write(a.frames, a.objects)


def merge_and_write(t: int, k: int, size=(128, 224), out=(720, 1280)) -> None:
    """Merge and PNG cost per 720p frame, from smooth model-size maps of k moving discs."""
    yy, xx = np.mgrid[: size[0], : size[1]] / size[0]

    def disc(oid: int, i: int) -> np.ndarray:  # a soft-edged disc moving right
        r = np.hypot(yy - 0.2 - 0.15 * oid, xx - 0.3 * oid - 0.02 * i)
        return 1 / (1 + np.exp(40 * (r - 0.2)))

    probs = {
        oid: np.stack([disc(oid, i) for i in range(t)]).astype(np.float32)
        for oid in range(1, k + 1)
    }
    t_merge = {}
    for fast in (False, True):
        merge(probs, size=out, fast=fast)  # warm-up
        t_merge[fast] = min(
            seconds(lambda f=fast: merge(probs, size=out, fast=f)) for _ in range(3)
        )
    labels = merge(probs, size=out, fast=True)
    names = [f"{5 * i:05d}" for i in range(t)]
    with tempfile.TemporaryDirectory() as tmp:
        t_write = min(seconds(lambda: write_video_masks(tmp, "v", names, labels)) for _ in range(3))
    print(
        f"merge {1000 * t_merge[False] / t:.1f} ms/frame plain, {1000 * t_merge[True] / t:.1f} "
        f"fast; PNG writing {1000 * t_write / t:.1f} ms/frame "
        f"({size[0]}x{size[1]} maps of {k} objects to {out[0]}x{out[1]} id maps)"
    )


if __name__ == "__main__":
    main()
