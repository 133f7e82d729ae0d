"""Training settings: `TrainConfig`, read from a TOML file, with ``--set KEY=VALUE`` overrides.

Every hyper-parameter lives in one file (``vostutorial/configs/tiny.toml``, ``paper.toml``);
the file must name every setting (no hidden defaults), and each value is checked for its type
and range, the error naming the key.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from .losses import LOSSES
from .models.config import CONFIGS
from .paths import CONFIG_DIR


@dataclass
class TrainConfig:
    """All training hyper-parameters (``vostutorial/configs/*.toml`` says what each means)."""

    model: str
    size: tuple[int, int]
    split: str
    val_split: str
    clip_len: int
    max_skip: int
    batch_size: int
    steps: int
    lr: float
    warmup: int
    min_lr: float
    weight_decay: float
    grad_clip: float
    loss: str
    bce_from: int
    score_first: bool
    fade_feedback: float
    val_every: int
    val_videos: int
    ckpt_every: int
    workers: int
    seed: int
    amp: bool
    bf16: bool
    pretrained: str


def load_config(name_or_path: str, overrides: dict | None = None) -> TrainConfig:
    """A config by name (``vostutorial/configs/<name>.toml``) or path, with ``overrides``
    (``{key: value}``, as from ``--set``) applied."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise ValueError(f"{path}: config not found (known: {known}, or give a .toml path)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    names = {f.name for f in fields(TrainConfig)}
    missing = sorted(names - set(raw))
    if missing:  # no hidden defaults: what trains is what the file says
        raise ValueError(f"{path}: missing settings {missing}; every setting must be given")
    raw |= overrides or {}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(names)}")
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    check_config(cfg, path)
    return cfg


# (type, lowest allowed value) of every number setting; the others are checked by name below
_NUMBERS = {
    "clip_len": (int, 2),
    "max_skip": (int, 1),
    "batch_size": (int, 1),
    "steps": (int, 1),
    "warmup": (int, 0),
    "bce_from": (int, 0),
    "val_every": (int, 1),
    "val_videos": (int, 0),
    "ckpt_every": (int, 1),
    "workers": (int, 0),
    "seed": (int, 0),
    "lr": (float, 0.0),
    "min_lr": (float, 0.0),
    "weight_decay": (float, 0.0),
    "grad_clip": (float, 0.0),
    "fade_feedback": (float, 0.0),
}


def check_config(cfg: TrainConfig, where: str | os.PathLike = "config") -> None:
    """Every setting of the right type and range, or a ValueError naming the key (the
    value may come from the file or from ``--set``)."""

    def bad(key: str, want: str) -> ValueError:
        return ValueError(f"{where}: {key} must be {want}, not {getattr(cfg, key)!r}")

    for key, (kind, low) in _NUMBERS.items():
        want = _number_wanted(key, getattr(cfg, key), kind, low)
        if want:
            raise bad(key, want)
    if not _is_size(cfg.size):
        raise bad("size", "[H, W], two positive multiples of 32")
    if cfg.model not in CONFIGS:
        raise bad("model", f"one of {sorted(CONFIGS)}")
    if cfg.fade_feedback > 0 and not CONFIGS[cfg.model].feedback:
        raise bad("fade_feedback", f"0 for {cfg.model!r}, a model without mask feedback")
    if cfg.loss not in LOSSES:
        raise bad("loss", f"one of {sorted(LOSSES)}")
    for key, kind in _KINDS.items():
        if not isinstance(getattr(cfg, key), kind):
            raise bad(key, "a string" if kind is str else "true or false")


def _number_wanted(key: str, v: object, kind: type, low: float) -> str | None:
    """What a numeric setting must be, if ``v`` is not that (else None)."""
    positive = key in ("lr", "grad_clip")
    ok_type = type(v) is int or (kind is float and type(v) is float)
    if not ok_type or v < low or (positive and v <= 0):
        number = "an integer" if kind is int else "a number"
        return f"{number} >= {low}" + (" and > 0" if positive else "")
    if key in ("min_lr", "fade_feedback") and v > 1:
        return "a fraction in [0, 1]"
    return None


_KINDS = {
    "split": str,
    "val_split": str,
    "pretrained": str,
    "amp": bool,
    "bf16": bool,
    "score_first": bool,
}


def _is_size(size: object) -> bool:
    """``(H, W)``, two positive multiples of 32 (the network pools five times)."""
    return (
        isinstance(size, tuple)
        and len(size) == 2
        and all(type(s) is int and s > 0 and s % 32 == 0 for s in size)
    )


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lr=1e-3``, ``size=[64, 96]``, ``loss="bce"``)."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"--set {text!r}: expected KEY=VALUE, e.g. --set lr=1e-4")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value  # a bare string
