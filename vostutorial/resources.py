"""What this process may use: CPUs (for torch's threads and loader workers) and memory.

On a shared machine (a course server with several kernels) the CPUs a process may use are
fewer than the machine has: its affinity mask and its cgroup's CPU quota say how many.
`usable_cpus` reads both, and `set_threads` gives torch that many threads unless the user
chose (``--threads`` or ``OMP_NUM_THREADS``). `peak_memory` measures what a piece of work
needs so that a batch that cannot fit is refused before it is killed without a word.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.pool
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only where a function needs it: commands start fast
    import torch


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = _cgroup_cpu_quota()
    return max(1, min(n, math.ceil(quota)) if quota else n)


def _cgroup_cpu_quota() -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max`` or v1 ``cfs_quota_us``), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        base = Path("/sys/fs/cgroup/cpu")
        quota = int((base / "cpu.cfs_quota_us").read_text())
        period = int((base / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def ignore_interrupt(*_: object) -> None:
    """In a worker process (a pool's initializer, a DataLoader's ``worker_init_fn``): leave
    Ctrl-C to the main process, which stops the workers and says so in one line (each worker
    would otherwise print a traceback of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def worker_pool(workers: int) -> multiprocessing.pool.Pool:
    """A pool of ``workers`` processes that leave Ctrl-C to this one (fork where there is one:
    the workers start without importing anything again)."""
    method = "fork" if os.name == "posix" else "spawn"
    return multiprocessing.get_context(method).Pool(workers, ignore_interrupt)


def set_threads(threads: int | None = None) -> int:
    """Give torch ``threads`` intra-op threads; by default ``OMP_NUM_THREADS`` when set, else
    `usable_cpus`. Returns the number chosen."""
    import torch

    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else usable_cpus()
    elif threads > usable_cpus():  # more threads than CPUs only wait for each other
        print(
            f"note: --threads {threads} lowered to {usable_cpus()}, the CPUs this process may use",
            file=sys.stderr,
        )
        threads = usable_cpus()
    torch.set_num_threads(threads)
    return threads


def require_device(device: str | torch.device) -> None:
    """Raise a one-line ValueError when ``device`` is CUDA and torch sees no GPU."""
    import torch

    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX or AVX512-BF16), where a bf16
    convolution is faster than a float32 one; elsewhere it is emulated, and slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a private probe: absent from some builds
        return False


# --- memory ---------------------------------------------------------------------------------
def _rss() -> int:
    """Resident memory of this process in bytes (Linux ``/proc``; 0 elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def available_memory() -> int | None:
    """Bytes this process could still allocate: the kernel's ``MemAvailable``, capped by the
    cgroup's memory limit. None where neither can be read."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if limit != "max":
            room = int(limit) - used
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def peak_memory(fn: Callable[[], object], device: str | torch.device | None = None) -> int:
    """Bytes that ``fn()`` needs at its peak beyond what was in use before it ran.

    On CUDA the allocator's own peak; on the CPU the process's resident memory, sampled every
    millisecond while ``fn`` runs (freed memory the allocator keeps is counted once, as the
    next step will reuse it)."""
    import torch

    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    before = peak = _rss()
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss())
            time.sleep(0.001)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        fn()
    finally:
        done.set()
        watcher.join()
    return max(0, max(peak, _rss()) - before)


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"
