"""Checkpoints: written atomically, read with clear errors, and small exports for notebooks."""

from __future__ import annotations

import errno
import os
import pickle
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from .files import atomic_write, interrupt_after
from .models import S2S, ModelConfig, build_model


def save_atomic(obj: dict, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file, flushed to disk, then renamed over ``path``: a crash
    at any moment leaves either the old file or the new one, never half of one."""
    try:
        with interrupt_after(), atomic_write(path, fsync=True) as f:
            torch.save(obj, f)
    except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) so
        if "writ" not in str(exc):
            raise
        first = str(exc).strip().splitlines()[0]
        raise OSError(errno.EIO, f"cannot write the checkpoint ({first})", str(path)) from None


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint, or raise a ValueError that names the file and what to do."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{path}: no checkpoint here (train first, or check the path)")
    if path.is_dir():
        hint = " (e.g. its last.pt)" if (path / "last.pt").exists() else ""
        raise ValueError(f"{path}: is a folder; give the checkpoint file{hint}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise ValueError(
            f"{path}: cannot read checkpoint: not the zip archive torch.save writes (corrupt, "
            "truncated or another kind of file); delete it to start over, or give the right file"
        )
    try:
        # weights_only: tensors and plain containers only, so a crafted file cannot run code
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ValueError(
            f"{path}: refused: it holds more than tensors and plain values ({first}); "
            "vostutorial never unpickles code, so only load checkpoints written by the kit"
        ) from None
    except Exception as exc:  # truncated zip, garbage, ...: all mean "unreadable"
        raise ValueError(
            f"{path}: cannot read checkpoint ({type(exc).__name__}: {exc}); it is "
            "corrupt or truncated: delete it to start over"
        ) from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise ValueError(f"{path}: not a vostutorial checkpoint (no model or model_config)")
    return ckpt


def model_state(model: S2S) -> dict:
    """What a checkpoint stores of ``model``: its state dict, less a frozen pretrained trunk
    (that comes from its source, named with its SHA-256 in ``model.pretrained_from``)."""
    state = model.state_dict()
    if model.cfg.frozen_trunk:
        state = {k: v for k, v in state.items() if not k.startswith("encoder.")}
    return state


def export_model(
    model: S2S, path: str | os.PathLike, info: dict | None = None, half: bool = True
) -> None:
    """Write just the weights (float16 by default: half the size) and the model config."""
    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in model_state(model).items()
    }
    saved = {"model": state, "model_config": asdict(model.cfg), "info": info or {}}
    save_atomic(saved | {"trunk": model.pretrained_from}, path)


def check_export_target(path: str | os.PathLike) -> None:
    """Raise, before training, unless ``path`` (and the log written beside it) is new or an
    export the kit wrote earlier: ``--export`` never replaces a user's file."""
    path = Path(path)
    log = path.with_suffix(".log.jsonl")
    if path.exists():
        try:
            load_checkpoint(path)
        except ValueError:
            raise ValueError(
                f"{path}: exists and is not a vostutorial export; move it away or name another "
                "--export"
            ) from None
    elif log.exists():
        raise ValueError(f"{log}: exists beside no export of the kit's; move it away")


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> S2S:
    """A model from a training checkpoint or an export, ready for inference."""
    return model_from_checkpoint(load_checkpoint(path), device, path)


def model_from_checkpoint(
    ckpt: dict, device: str | torch.device = "cpu", path: str | os.PathLike = "checkpoint"
) -> S2S:
    """The model of an already loaded checkpoint (`load_checkpoint`), ready for inference.

    A ``model_config`` that does not describe the stored weights is a ValueError naming
    ``path`` and the first disagreeing tensor."""
    try:
        cfg = dict(ckpt["model_config"])
        cfg = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()})
    except TypeError as exc:
        raise ValueError(f"{path}: its model_config is not one this kit knows ({exc})") from None
    trunk = (ckpt.get("trunk") or {}) if cfg.frozen_trunk else {}  # else the file has it all
    model = build_model(cfg, trunk.get("source"))
    now = model.pretrained_from.get("sha256", "")
    if trunk and now != trunk["sha256"]:
        raise ValueError(
            f"{path}: trained on the VGG16 of {trunk['source']!r} with SHA-256 "
            f"{trunk['sha256'][:12]}..., but that source now has {now[:12]}...; "
            "install the weights it was trained with"
        )
    load_weights(model, ckpt["model"], path)
    return model.to(device).eval()


def load_weights(model: S2S, state: dict, path: str | os.PathLike = "checkpoint") -> None:
    """``model.load_state_dict(state)`` (float16 exports widened), or a one-line ValueError
    naming ``path`` and the first missing, extra or wrongly shaped tensor. A frozen trunk is
    not in ``state``: it keeps the pretrained weights `build_model` gave it."""
    state = flat_decoder_renamed(state, len(model.decoder.stages))
    own = model_state(model)
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shaped = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or extra or shaped:
        if missing or extra:
            first = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        else:
            k = shaped[0]
            first = f"{k!r} is {tuple(state[k].shape)}, the config wants {tuple(own[k].shape)}"
        raise ValueError(
            f"{path}: its weights do not fit its model_config ({len(missing)} missing, "
            f"{len(extra)} unexpected, {len(shaped)} of another shape; first: {first})"
        )
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    model.load_state_dict(state, strict=not model.cfg.frozen_trunk)


def flat_decoder_renamed(state: dict, stages: int) -> dict:
    """``state`` with the decoder's keys of checkpoints written before it had named stages
    (one flat ``nn.Sequential``: ``decoder.0`` the first upsampling, ``decoder.1`` its ReLU,
    ..., ``decoder.{2S}`` the last convolution) renamed to `models.s2s.Decoder`'s."""
    old = {f"decoder.{2 * i}.": f"decoder.stages.{i}.0." for i in range(stages)}
    old[f"decoder.{2 * stages}."] = "decoder.out."
    out = {}
    for key, value in state.items():
        prefix = next((p for p in old if key.startswith(p)), None)
        out[old[prefix] + key[len(prefix) :] if prefix else key] = value
    return out


def training_loss(ckpt: dict) -> str:
    """The loss a loaded checkpoint (or export) was trained with; the paper's if it does not
    say."""
    cfg = ckpt.get("train_config") or ckpt.get("info", {}).get("train_config") or {}
    return cfg.get("loss", "balanced")
