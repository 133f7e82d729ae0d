"""Parameter and multiply-add counts, behind ``vostutorial model-summary``."""

from __future__ import annotations

import torch
from torch import nn

from .s2s import S2S


def count_macs(model: nn.Module, *inputs: torch.Tensor) -> dict[str, int]:
    """Multiply-adds of every convolution in ``model(*inputs)``, summed per top-level child.

    A convolution costs ``output elements x (in_channels / groups) x kernel area``; a
    transposed one ``input elements x (out_channels / groups) x kernel area``.
    """
    totals: dict[str, int] = {}
    hooks = []
    for top, child in model.named_children():
        for m in child.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):

                def hook(mod: nn.Module, inp: tuple, out: torch.Tensor, top: str = top) -> None:
                    k = mod.kernel_size[0] * mod.kernel_size[1]
                    if isinstance(mod, nn.ConvTranspose2d):
                        macs = inp[0].numel() * mod.out_channels // mod.groups * k
                    else:
                        macs = out.numel() * mod.in_channels // mod.groups * k
                    totals[top] = totals.get(top, 0) + macs

                hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
    return totals


def summary(model: S2S, frames: int = 2) -> str:
    """Parameters per part and multiply-adds per frame at the config's input size."""
    h, w = model.cfg.input_size
    macs = count_macs(model, torch.zeros(1, frames, 3, h, w), torch.zeros(1, 1, h, w))
    once = {"initializer", "init_h", "init_c"}
    lines = [f"model {model.cfg.name!r} at {h}x{w}", f"{'part':14} {'params':>12} {'GMACs':>10}"]
    for name, child in model.named_children():
        n = sum(p.numel() for p in child.parameters())
        if not n:  # the input's normalisation, the joins of maps: nothing learnt, no MACs
            continue
        g = macs.get(name, 0) / (1 if name in once else frames) / 1e9
        lines.append(
            f"{name:14} {n:12,d} {g:10.3f}" + ("  (once per object)" if name in once else "")
        )
    total = sum(p.numel() for p in model.parameters())
    per_frame = sum(v for k, v in macs.items() if k not in once) / frames / 1e9
    lines.append(
        f"{'total':14} {total:12,d} {per_frame:10.3f}  GMACs per frame "
        f"(+{sum(v for k, v in macs.items() if k in once) / 1e9:.3f} once per object)"
    )
    return "\n".join(lines)


def trace_shapes(model: S2S, frames: torch.Tensor, mask: torch.Tensor) -> list[tuple[str, tuple]]:
    """The output shape of every stage on one forward pass, in call order (a stage called once
    per frame is listed once): VGG stages (at each pool), encoder output, initializer and its
    states, ConvLSTM, decoder stages and the logits."""
    seen: dict[str, tuple] = {}
    hooks = []

    def watch(name: str, module: nn.Module) -> None:
        def hook(mod: nn.Module, inp: tuple, out: object) -> None:
            out = out[0] if isinstance(out, tuple) else out
            seen.setdefault(name, tuple(out.shape))

        hooks.append(module.register_forward_hook(hook))

    for part in ("encoder", "initializer"):
        stage = 1
        for m in getattr(model, part):
            if isinstance(m, nn.MaxPool2d):
                watch(f"{part} stage {stage} (pool)", m)
                stage += 1
    watch("encoder_out (1x1 conv)", model.encoder_out)
    watch("init_h (1x1 conv)", model.init_h)
    watch("init_c (1x1 conv)", model.init_c)
    watch("lstm (h per step)", model.lstm)
    for i, stage in enumerate(model.decoder.stages, 1):
        watch(f"decoder up {i}", stage[0])
    watch("decoder logits (per frame)", model.decoder.out)
    try:
        with torch.no_grad():
            out = model(frames, mask)
    finally:
        for h in hooks:
            h.remove()
    return (
        [("input frames", tuple(frames.shape)), ("first mask", tuple(mask.shape))]
        + list(seen.items())
        + [("model output", tuple(out.shape))]
    )


def receptive_field(layers: nn.Sequential) -> list[tuple[str, int, int]]:
    """``(layer, receptive field in input pixels, stride so far)`` after every conv or pool:
    each k x k layer widens the field by ``(k - 1) * stride so far``."""
    rf, jump, out = 1, 1, []
    for i, m in enumerate(layers):
        if isinstance(m, nn.Conv2d | nn.MaxPool2d):
            k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
            s = m.stride if isinstance(m.stride, int) else m.stride[0]
            rf += (k - 1) * jump
            jump *= s
            out.append((f"{i}: {type(m).__name__}", rf, jump))
    return out
