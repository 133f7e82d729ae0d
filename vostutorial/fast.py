"""Code that exists only for speed on a CPU, kept apart from the model it speeds up.

The paper's model (`models.s2s`), ``tiny``'s cues (`models.tracking`) and `inference.merge`
use the plain library ops, and the notebooks teach with them. `speed_up` swaps three of a
model's modules for versions that compute the same numbers faster (visible in
``print(model)``), and `upsampled_argmax` replaces ``F.interpolate(scores, size).argmax(0)``.
`train.train` and ``vostutorial predict`` (``fast=True``, the default of
`inference.predict_split`) run them; tests prove each equal to the plain version.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .models import S2S
from .models.s2s import Normalise
from .models.tracking import Concat


def speed_up(model: S2S) -> S2S:
    """The same network, for CPU speed: weights and activations channels-last (oneDNN's
    fastest layout, ~1.5x), maps joined without a layout copy, and the decoder's last,
    one-output convolution as a matrix product at inference. Changes ``model`` in place (same
    parameters, same state dict) and returns it."""
    model.to(memory_format=torch.channels_last)
    model.normalise = NormaliseChannelsLast().to(model.normalise.mean.device)
    if isinstance(getattr(model, "join", None), Concat):
        model.join = ConcatChannelsLast()
    last = model.decoder.out
    if type(last) is nn.Conv2d and last.out_channels == 1:
        fast = OneMapConv(last.in_channels, last.kernel_size[0]).to(last.weight.device)
        fast.load_state_dict(last.state_dict())
        model.decoder.out = fast.to(memory_format=torch.channels_last)
    return model


class NormaliseChannelsLast(Normalise):
    """`Normalise`, its output channels-last: the layout every convolution after it runs in."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).contiguous(memory_format=torch.channels_last)


class ConcatChannelsLast(Concat):
    """``torch.cat(parts, dim=1)`` that keeps the first map's channels-last layout: ``torch.cat``
    falls back to NCHW when a one-channel map joins, and the next convolution would then copy
    it all back."""

    def forward(self, parts: list[Tensor]) -> Tensor:
        x = parts[0]
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            return torch.cat([p.permute(0, 2, 3, 1) for p in parts], dim=3).permute(0, 3, 1, 2)
        return torch.cat(parts, dim=1)


class OneMapConv(nn.Conv2d):
    """A ``k x k`` convolution from C channels to one map, size-preserving: the decoder's last
    layer, ``(N, C, H, W) -> (N, 1, H, W)``.

    On CPUs oneDNN runs a one-output convolution about as slowly as a 16-output one. So on the
    CPU and without autograd (inference) this one runs as a matrix product to the k² per-tap
    maps ``w_ij . x``, which are then shifted into place and summed: the same numbers, about 3x
    faster for a batch of objects. Training keeps the library convolution, whose backward pass
    is the faster one, and so do GPUs.
    """

    def __init__(self, in_channels: int, kernel_size: int):
        super().__init__(in_channels, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        n, c, h, w = x.shape
        k, p = self.kernel_size[0], self.padding[0]
        taps = torch.matmul(self.weight.reshape(c, k * k).t(), x.flatten(2)).view(n, k, k, h, w)
        out = self.bias.view(1, 1, 1).expand(n, h, w).clone()
        for i in range(k):
            for j in range(k):  # out[y, x] += taps[i, j][y + i - p, x + j - p], zero outside
                dy, dx = i - p, j - p
                out[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] += taps[
                    :, i, j, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
                ]
        return out[:, None]


def upsampled_argmax(scores: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``argmax(0)`` of scores ``(C, T, h, w)`` bilinearly resized to ``size`` ``(H, W)`` (as
    ``F.interpolate(..., align_corners=False)``), without building the C resized maps.

    Each output pixel is a convex combination of its four nearest input cells. Where the four
    agree on the winning class, the combination agrees too, so that pixel just copies it; only
    pixels between cells that disagree (a few percent: the boundaries) are interpolated.
    """
    best = scores.argmax(0).astype(np.min_scalar_type(len(scores) - 1))  # (T, h, w)
    h, w = best.shape[-2:]
    if (h, w) == tuple(size):
        return best
    y0, y1, fy = _bilinear_taps(h, size[0])
    x0, x1, fx = _bilinear_taps(w, size[1])
    below, right = np.minimum(np.arange(h) + 1, h - 1), np.minimum(np.arange(w) + 1, w - 1)
    agree = (
        (best == best[:, below])
        & (best == best[:, :, right])
        & (best == best[:, below][:, :, right])
    )
    out = best[:, y0][:, :, x0]
    t, y, x = np.nonzero(~agree[:, y0][:, :, x0])
    a, b = fy[y], fx[x]
    top = (1 - b) * scores[:, t, y0[y], x0[x]] + b * scores[:, t, y0[y], x1[x]]  # (C, M)
    bottom = (1 - b) * scores[:, t, y1[y], x0[x]] + b * scores[:, t, y1[y], x1[x]]
    out[t, y, x] = ((1 - a) * top + a * bottom).argmax(0)
    return out


def _bilinear_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two input indices it interpolates and the second's weight,
    with PyTorch's ``align_corners=False`` convention (half-pixel centres, clamped edges)."""
    src = np.float32(n_in) / np.float32(n_out) * (np.arange(n_out, dtype=np.float32) + 0.5) - 0.5
    src = np.maximum(src, 0).astype(np.float32)
    i0 = np.minimum(src.astype(np.int64), n_in - 1)
    return i0, np.minimum(i0 + 1, n_in - 1), (src - i0).astype(np.float32)
