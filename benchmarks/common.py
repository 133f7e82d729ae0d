"""What the benchmark scripts share: timing that waits for the device, and where the shipped
checkpoint and the real sequences are (`vostutorial.paths` knows)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from vostutorial.paths import SHIPPED_CHECKPOINT, real_davis

__all__ = ["SHIPPED_CHECKPOINT", "best_of", "real_davis", "seconds", "sync"]


def sync(device: str | torch.device) -> None:
    """Wait until the device has finished what was queued (CUDA runs asynchronously)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def seconds(fn: Callable[[], object], device: str | torch.device = "cpu") -> float:
    """Wall-clock seconds of one call of ``fn``, its device work included."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def best_of(fn: Callable[[], object], repeats: int, device: str | torch.device = "cpu") -> float:
    """The fastest of ``repeats`` calls, the least disturbed by the rest of the machine, after
    one unmeasured call (oneDNN picks its kernels on the first)."""
    fn()
    return min(seconds(fn, device) for _ in range(repeats))
