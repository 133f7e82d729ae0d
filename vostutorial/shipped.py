"""The shipped checkpoint: finding it, and training it when it is missing.

It sits above both training and inference (it may train), so that neither has to import the
other to get a model: the demo and the notebooks come here.
"""

from __future__ import annotations

from pathlib import Path

from .paths import RUNS, SHIPPED_CHECKPOINT
from .train import export_run, train
from .train_config import load_config

SHIPPED_CONFIG = "tiny"  # vostutorial/configs/tiny.toml: `make train-tiny` runs it


def shipped_checkpoint(train_if_missing: bool = True, progress: bool = True) -> Path:
    """The reproducible shipped model of the synthetic dataset, `paths.SHIPPED_CHECKPOINT`
    (``make train-tiny`` writes it, with its training log beside it as ``.log.jsonl``). When it
    is missing, train it first (that takes a while)."""
    if SHIPPED_CHECKPOINT.exists():
        return SHIPPED_CHECKPOINT
    if not train_if_missing:
        raise ValueError(f"{SHIPPED_CHECKPOINT}: missing; run `make train-tiny`")
    run_dir = RUNS / SHIPPED_CONFIG
    resume = (run_dir / "last.pt").exists()  # an interrupted earlier attempt goes on
    train(load_config(SHIPPED_CONFIG), run_dir, resume=resume, progress=progress)
    SHIPPED_CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    export_run(run_dir, SHIPPED_CHECKPOINT)
    return SHIPPED_CHECKPOINT
