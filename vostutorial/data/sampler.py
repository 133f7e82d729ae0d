"""Which clips a training step sees: a pure function of the seed and the step.

`StepSampler` draws step s's clip indices and augmentation seeds from a generator seeded by
(seed, s); `SeededClips` draws each clip with its own seed. So a batch does not depend on
which process or loader worker computes it, and a resumed run sees exactly the batches an
uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler, default_collate

from .clips import ClipDataset


class StepSampler(Sampler):
    """Batches as a pure function of (seed, step): step s draws ``batch_size`` clip indices
    from its own generator, and every clip gets its own augmentation seed. Process ``rank``
    of ``world`` takes its consecutive share, so N processes see exactly the batch one would."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
    ):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} must divide evenly over {world} processes")
        self.n, self.batch, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        per = self.batch // self.world
        for step in range(self.start, self.stop):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            idx = torch.randint(self.n, (self.batch,), generator=g).tolist()
            seeds = torch.randint(2**62, (self.batch,), generator=g).tolist()
            lo = self.rank * per
            yield list(zip(idx[lo : lo + per], seeds[lo : lo + per], strict=True))

    def __len__(self) -> int:
        return self.stop - self.start


class SeededClips(Dataset):
    """`ClipDataset` items drawn with a given seed: ``ds[(index, seed)]``. The seed goes into
    a forked RNG, so neither the caller's RNG nor the worker a clip lands on matters."""

    def __init__(self, clips: ClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                item = self.clips[index]
        except (ValueError, OSError) as exc:
            # Travels to the main process as data (`collate_clips`), where it is raised as
            # one line naming the file, not as a worker's 30-line traceback.
            return {"error": str(exc)}
        return {k: item[k] for k in ("frames", "first_mask", "masks")}


def collate_clips(items: list[dict]) -> dict:
    """``default_collate``, or ``{"error": message}`` if a clip could not be read."""
    errors = [it["error"] for it in items if "error" in it]
    return {"error": errors[0]} if errors else default_collate(items)
