"""Training throughput: seconds per step of `train.train_step` (what ``vostutorial train``
runs: channels-last model, the configured loss, feedback fade and gradient clipping) in
float32 and in the config's mixed precision, side by side on the same batches, with the share
of step time spent waiting for the loader (2 workers) and peak memory.

    python benchmarks/bench_train.py [--steps 12] [--configs tiny paper]

On CPU the mixed precision is ``bf16`` (bfloat16 autocast; fast where the CPU has AMX or
AVX512-BF16), on CUDA ``amp`` (float16). The two variants alternate step by step, so a busy
moment of the machine slows both alike; each starts from the same weights.
"""

import argparse
import resource
import statistics
import time
from dataclasses import replace

import torch
from common import sync
from torch.utils.data import DataLoader

from vostutorial.data import ClipDataset, YTVOSSplit, ensure_default
from vostutorial.data.sampler import SeededClips, StepSampler, collate_clips
from vostutorial.resources import native_bf16
from vostutorial.train import Processes, make_trainer, train_step
from vostutorial.train_config import load_config


def bench(name: str, device: str, steps: int, batch: int | None) -> None:
    cfg = load_config(name)
    batch = batch or (
        cfg.batch_size if device == "cuda" else min(cfg.batch_size, 8 if name == "tiny" else 1)
    )
    mixed = {"amp": True} if device == "cuda" else {"bf16": True}
    plain = {"amp": False} if device == "cuda" else {"bf16": False}
    variants = {
        "float32": replace(cfg, batch_size=batch, **plain),
        "amp float16" if device == "cuda" else "bf16": replace(cfg, batch_size=batch, **mixed),
    }
    root = ensure_default(progress=False)
    clips = ClipDataset(YTVOSSplit(root, "train"), cfg.clip_len, tuple(cfg.size), cfg.max_skip)
    loader = DataLoader(
        SeededClips(clips),
        batch_sampler=StepSampler(len(clips), batch, 0, 0, steps + 1),
        collate_fn=collate_clips,
        num_workers=2,
    )
    dev = torch.device(device)
    state = {}
    for v, c in variants.items():  # each variant starts from the same weights
        torch.manual_seed(c.seed)
        state[v] = make_trainer(c, dev)
    times: dict[str, list[float]] = {v: [] for v in variants}
    wait, frames = 0.0, 0
    t_prev = time.perf_counter()
    for i, b in enumerate(loader):
        wait += time.perf_counter() - t_prev if i else 0.0
        for v, c in variants.items():
            t0 = time.perf_counter()
            train_step(state[v], b, c, Processes(0, 1, dev))
            sync(dev)
            if i:  # the first step pays for worker start-up and kernel selection
                times[v].append(time.perf_counter() - t0)
        frames += b["frames"].shape[:2].numel() if i else 0
        t_prev = time.perf_counter()
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    h, w = cfg.size
    busy = sum(sum(t) for t in times.values())
    print(
        f"{name:6} {device:4} batch {batch:2} x {cfg.clip_len} frames at {h}x{w}, {steps} steps "
        f"each; data wait {wait / (wait + busy):5.1%} of step time; peak memory {peak:,.0f} MiB"
    )
    for v, t in times.items():
        print(
            f"  {v:11} {min(t):5.2f} s/step min, {statistics.median(t):5.2f} median, "
            f"{frames / sum(t):6.1f} frames/s"
        )
    (a, ta), (m, tm) = times.items()
    print(
        f"  {m} over {a}: {min(ta) / min(tm):.2f}x (min), "
        f"{statistics.median(ta) / statistics.median(tm):.2f}x (median)"
        + ("" if device == "cuda" or native_bf16() else "  [this CPU emulates bfloat16]")
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--paper-steps", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    p.add_argument("--batch", type=int, default=None)
    a = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for name in a.configs:
            steps = a.paper_steps if name == "paper" and device == "cpu" else a.steps
            bench(name, device, steps, a.batch)


if __name__ == "__main__":
    main()
