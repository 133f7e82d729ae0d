"""Training throughput: frames/s for ``tiny`` and ``paper`` on CPU (and CUDA where present),
peak memory, and the share of step time spent waiting for data (it must stay small: the
loader, 2 workers, keeps ahead of the model).

    python benchmarks/bench_train.py [--steps 12] [--configs tiny paper]
"""

import argparse
import resource
import time

import torch
from torch.utils.data import DataLoader

from vostutorial.data import ClipDataset, YTVOSSplit, ensure_default
from vostutorial.data.sampler import SeededClips, StepSampler, collate_clips
from vostutorial.losses import balanced_bce
from vostutorial.models import build_model
from vostutorial.train_config import load_config


def bench(name: str, device: str, steps: int, batch: int | None) -> None:
    cfg = load_config(name)
    batch = batch or (
        cfg.batch_size if device == "cuda" else min(cfg.batch_size, 8 if name == "tiny" else 1)
    )
    root = ensure_default(progress=False)
    clips = ClipDataset(YTVOSSplit(root, "train"), cfg.clip_len, tuple(cfg.size), cfg.max_skip)
    loader = DataLoader(
        SeededClips(clips),
        batch_sampler=StepSampler(len(clips), batch, 0, 0, steps + 1),
        collate_fn=collate_clips,
        num_workers=2,
    )
    torch.manual_seed(0)
    model = build_model(cfg.model).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    wait = busy = 0.0
    frames = 0
    it = iter(loader)
    for i in range(steps + 1):
        t0 = time.perf_counter()
        b = next(it)
        t1 = time.perf_counter()
        with torch.autocast(device, enabled=device == "cuda"):
            logits = model(b["frames"].to(device), b["first_mask"].to(device))
        loss = balanced_bce(logits[:, 1:].float(), b["masks"][:, 1:].to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device == "cuda":
            torch.cuda.synchronize()
        t2 = time.perf_counter()
        if i:  # the first step pays for worker start-up and kernel selection
            wait, busy, frames = (
                wait + t1 - t0,
                busy + t2 - t1,
                frames + b["frames"].shape[:2].numel(),
            )
    peak = (
        torch.cuda.max_memory_allocated() / 2**20
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    total = wait + busy
    h, w = cfg.size
    print(
        f"{name:6} {device:4} batch {batch:2} x {cfg.clip_len} frames at {h}x{w}: "
        f"{frames / total:6.1f} frames/s, data wait {wait / total:5.1%} of step time, "
        f"peak memory {peak:,.0f} MiB"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--paper-steps", type=int, default=3)
    p.add_argument("--configs", nargs="+", default=["tiny", "paper"])
    p.add_argument("--batch", type=int, default=None)
    a = p.parse_args()
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for name in a.configs:
            bench(
                name,
                device,
                a.paper_steps if name == "paper" and device == "cpu" else a.steps,
                a.batch,
            )


if __name__ == "__main__":
    main()
