"""The shipped ``tiny`` checkpoint: finding it, and training it when it is missing.

It sits above both training and inference (it may train), so that neither has to import the
other to get a model: the demo and the notebooks come here.
"""

from __future__ import annotations

from pathlib import Path

from .paths import RUNS, TINY_CHECKPOINT
from .train import export_run, train
from .train_config import load_config


def tiny_checkpoint(train_if_missing: bool = True, progress: bool = True) -> Path:
    """The reproducible ``tiny`` checkpoint of the synthetic dataset, ``checkpoints/
    tiny-synthetic.pt`` (``make train-tiny`` writes it, with its training log beside it as
    ``tiny-synthetic.log.jsonl``). When it is missing, train it first (that takes a while)."""
    if TINY_CHECKPOINT.exists():
        return TINY_CHECKPOINT
    if not train_if_missing:
        raise ValueError(f"{TINY_CHECKPOINT}: missing; run `make train-tiny`")
    run_dir = RUNS / "tiny"
    resume = (run_dir / "last.pt").exists()  # an interrupted earlier attempt goes on
    train(load_config("tiny"), run_dir, resume=resume, progress=progress)
    TINY_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    export_run(run_dir, TINY_CHECKPOINT)
    return TINY_CHECKPOINT
