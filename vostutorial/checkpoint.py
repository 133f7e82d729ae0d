"""Checkpoints: written atomically, read with clear errors, and small exports for notebooks."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import torch

from .models.s2s import S2S, ModelConfig, build_model


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file, flushed to disk, then renamed over ``path``: a crash
    at any moment leaves either the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint, or raise a ValueError that names the file and what to do."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no checkpoint here (train first, or check the path)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # truncated zip, pickle garbage, ...: all mean "unreadable"
        raise ValueError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); it is "
            "corrupt or truncated: delete it to start over"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path}: not a vostutorial checkpoint (no model or model_config)")
    return ckpt


def export_model(
    model: S2S, path: str | os.PathLike, info: dict | None = None, half: bool = True
) -> None:
    """Write just the weights (float16 by default: half the size) and the model config."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
    }
    save_atomic({"model": state, "model_config": asdict(model.cfg), "info": info or {}}, path)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> S2S:
    """A model from a training checkpoint or an export, ready for inference."""
    return model_from_checkpoint(load_checkpoint(path), device)


def model_from_checkpoint(ckpt: dict, device: str | torch.device = "cpu") -> S2S:
    """The model of an already loaded checkpoint (`load_checkpoint`), ready for inference."""
    cfg = dict(ckpt["model_config"])
    cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    model = build_model(cfg)
    model.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    )
    return model.to(device).eval()


def training_loss(ckpt: dict) -> str:
    """The loss a loaded checkpoint (or export) was trained with; the paper's if it does not
    say."""
    cfg = ckpt.get("train_config") or ckpt.get("info", {}).get("train_config") or {}
    return cfg.get("loss", "balanced")


PROJECT = Path(__file__).resolve().parents[1]
TINY_CHECKPOINT = PROJECT / "checkpoints" / "tiny-synthetic.pt"


def tiny_checkpoint(train_if_missing: bool = True, progress: bool = True) -> Path:
    """The reproducible ``tiny`` checkpoint of the synthetic dataset, ``checkpoints/
    tiny-synthetic.pt`` (``make train-tiny`` writes it, with its training log beside it as
    ``tiny-synthetic.log.jsonl``). When it is missing, train it first (that takes a while)."""
    if TINY_CHECKPOINT.exists() or not train_if_missing:
        if not TINY_CHECKPOINT.exists():
            raise ValueError(f"{TINY_CHECKPOINT}: missing; run `make train-tiny`")
        return TINY_CHECKPOINT
    from .train import build_parser, run

    run(
        build_parser().parse_args(
            [
                "--config",
                "tiny",
                "--out",
                str(PROJECT / "runs" / "tiny"),
                "--export",
                str(TINY_CHECKPOINT),
            ]
            + ([] if progress else ["--quiet"])
        )
    )
    return TINY_CHECKPOINT
