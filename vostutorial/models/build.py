"""Building a model from the registry or a config, and loading ImageNet weights into it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from .config import CONFIGS, ModelConfig
from .s2s import S2S
from .tracking import TrackingS2S


def build_model(
    config: str | ModelConfig = "tiny", pretrained: str | os.PathLike | None = None, **overrides
) -> S2S:
    """A model from the registry (``"paper"``, ``"tiny"``) or a `ModelConfig`: an `S2S` when
    the config has none of ``tiny``'s tracking cues, else a `TrackingS2S`.

    ``pretrained`` is a local file of torchvision VGG16 ImageNet weights (``vgg16-*.pth``, a
    state dict of the whole VGG16 or of its ``features``); it initialises the encoder and the
    initializer (whose mask channel starts at zero). Nothing is ever downloaded.
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown model config {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    config = replace(config, **overrides) if overrides else config
    model = TrackingS2S(config) if config.tracks else S2S(config)
    if pretrained is not None:
        load_vgg16_weights(model, pretrained)
    return model


def load_vgg16_weights(model: S2S, path: str | os.PathLike) -> None:
    """Copy ImageNet VGG16 conv weights from a local file into encoder and initializer."""
    path = Path(path)
    if not model.cfg.is_vgg16:
        raise ValueError(
            f"{path}: VGG16 weights need VGG16 widths; config {model.cfg.name!r} "
            "has its own (use --config paper)"
        )
    if not path.exists():
        raise ValueError(
            f"{path}: pretrained weights file not found (download torchvision's "
            "vgg16 ImageNet weights yourself and point to the file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here; all mean "not a weights file"
        raise ValueError(f"{path}: not a readable torch state dict ({exc})") from None
    state = {
        k.removeprefix("features."): v
        for k, v in state.items()
        if k.startswith("features.") or k[0].isdigit()
    }
    own = model.encoder.state_dict()
    if set(own) - set(state):
        raise ValueError(f"{path}: missing VGG16 conv weights {sorted(set(own) - set(state))[:4]}")
    model.encoder.load_state_dict({k: state[k] for k in own})
    init = {k: state[k].clone() for k in own}
    w = init["0.weight"]  # (64, 3, 3, 3) -> (64, 4, 3, 3): the mask channel starts at zero
    init["0.weight"] = torch.cat([w, torch.zeros_like(w[:, :1])], dim=1)
    model.initializer.load_state_dict(init)
