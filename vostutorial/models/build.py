"""Building a model from the registry or a config, with pretrained VGG16 weights in it."""

from __future__ import annotations

import os
from dataclasses import replace

import torch

from .config import CONFIGS, ModelConfig
from .pretrained import pretrained_state
from .s2s import S2S
from .tracking import TrackingS2S


def build_model(
    config: str | ModelConfig = "tiny",
    pretrained: str | os.PathLike | None = None,
    **overrides: object,
) -> S2S:
    """A model from the registry (``"s2s-vgg16"``, ``"paper"``, ``"tiny"``) or a
    `ModelConfig`: an `S2S` when the config has no tracking cue (`ModelConfig.tracks`), else a
    `TrackingS2S`.

    ``pretrained`` is a VGG16 source (`models.pretrained_vgg16`: ``"hed"``, ``"imagenet"`` or
    a local ``vgg16-*.pth``); it initialises the encoder and the initializer. A config with a
    frozen trunk always has one (``"hed"`` unless told): random features are never used in
    silence. The source's name and SHA-256 are kept as ``model.pretrained_from`` (checkpoints store
    them, never the trunk's weights).
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown model config {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    config = replace(config, **overrides) if overrides else config
    model = TrackingS2S(config) if config.tracks else S2S(config)
    model.pretrained_from = {}
    if config.frozen_trunk and not pretrained:
        pretrained = "hed"
    if pretrained:
        load_vgg16_weights(model, pretrained)
    return model


def load_vgg16_weights(model: S2S, source: str | os.PathLike) -> None:
    """Copy pretrained VGG16 conv weights into the encoder and, where the initializer is a
    VGG16 of its own (the paper's), into it too: its fourth input channel, the mask, starts
    at zero, so that at step 0 it sees the frame exactly as ImageNet's VGG16 does and learns
    how much the mask should change that."""
    if not model.cfg.is_vgg16:
        raise ValueError(
            f"config {model.cfg.name!r}: VGG16 weights need VGG16 widths and convolutions (or "
            "their first stages): use --config paper"
        )
    state, digest = pretrained_state(source)
    own = model.encoder.state_dict()
    model.encoder.load_state_dict({k: state[k] for k in own})
    if not model.cfg.frozen_trunk:
        init = {k: state[k].clone() for k in own}
        w = init["0.weight"]  # (64, 3, 3, 3) -> (64, 4, 3, 3)
        init["0.weight"] = torch.cat([w, torch.zeros_like(w[:, :1])], dim=1)
        model.initializer.load_state_dict(init)
    model.pretrained_from = {"source": str(source), "sha256": digest}
