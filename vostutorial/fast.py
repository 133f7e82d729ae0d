"""Code that exists only for speed on a CPU, kept apart from the model it speeds up.

The paper's model (`models.s2s`), ``tiny``'s cues (`models.tracking`), `inference.merge` and
label propagation (`propagation`) use the plain library ops, and the notebooks teach with
them. `speed_up` swaps three of a model's modules for versions that compute the same numbers
faster (visible in ``print(model)``), `upsampled_argmax` replaces
``F.interpolate(scores, size).argmax(0)``, and `TiledNeighbours` replaces the window's
neighbour search of `models.matching.WindowNeighbours` (in the tracking model and in
`propagation.propagate_labels`). `train.train`, ``vostutorial predict``
(``fast=True``, the default of `inference.predict_split`) and ``vostutorial baseline
label-propagation`` run them; tests prove each equal to the plain version.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .models import S2S
from .models.matching import WindowNeighbours
from .models.s2s import Normalise
from .models.tracking import Concat


def speed_up(model: S2S) -> S2S:
    """The same network, for CPU speed: weights and activations channels-last (oneDNN's
    fastest layout, ~1.5x), maps joined without a layout copy, and the propagation cue's
    neighbour search tile by tile (`TiledNeighbours`). Changes ``model`` in place (same
    parameters, same state dict) and returns it."""
    model.to(memory_format=torch.channels_last)
    model.normalise = NormaliseChannelsLast().to(model.normalise.mean.device)
    if isinstance(getattr(model, "join", None), Concat):
        model.join = ConcatChannelsLast()
    if type(getattr(model, "neighbours", None)) is WindowNeighbours:
        plain = model.neighbours
        model.neighbours = TiledNeighbours(plain.radius, plain.k, plain.temperature)
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


def nearest_in_window(
    query: Tensor, keys: Tensor, radius: int, k: int, tile: int = 12
) -> tuple[Tensor, Tensor]:
    """`models.matching.WindowNeighbours.closest`: the ``k`` nearest cells of one frame's
    features ``query`` ``(C, h, w)`` among ``M`` memory frames ``keys`` ``(M, C, h, w)`` (all
    unit length), each key frame limited to the square window ``window(h, w, radius)``: cosine
    similarities and indices ``(1, h*w, k)`` into the ``M*h*w`` key cells, frame after frame,
    as the plain call returns them.

    The plain call scores every query cell against every key cell and then masks all but
    the window, ``(h*w)² M`` products for ``(2 radius + 1)² M`` useful ones per cell. Here
    each ``tile x tile`` block of query cells meets only the key cells within ``radius`` of
    the block, ``(tile + 2 radius)²`` per frame (at 240x432 input: 25 M similarities per
    frame instead of 126 M; ``benchmarks/bench_propagation.py`` times both).
    """
    c, h, w = query.shape
    m, r, t = keys.shape[0], radius, tile
    ny, nx = -(-h // t), -(-w // t)  # tiles down and across; the last ones padded
    span = t + 2 * r  # key cells around a tile, per side
    pad = (r, nx * t - w + r, r, ny * t - h + r)

    def blocks(x: Tensor, size: int, pad: tuple[int, ...], value: float = 0.0) -> Tensor:
        """``(N, C, H, W)`` -> ``(L, N, size², C)``: the ``size x size`` cells read by each
        tile, channels last (one copy: the channels of a cell sit together for the product)."""
        x = F.pad(x, pad, value=value).permute(0, 2, 3, 1).contiguous()  # (N, H', W', C)
        x = x.unfold(1, size, t).unfold(2, size, t)  # (N, ny, nx, C, size, size), a view
        return x.permute(1, 2, 0, 4, 5, 3).reshape(ny * nx, x.shape[0], size * size, -1)

    kb = blocks(keys, span, pad).view(ny * nx, m * span * span, c)  # (L, M span², C)
    cells = torch.arange(h * w, dtype=torch.float64).view(1, 1, h, w)
    kidx = blocks(cells, span, pad, value=-1)[:, 0, :, 0].long()  # (L, span²), -1 outside
    qblocks = blocks(query[None], t, (0, nx * t - w, 0, ny * t - h))[:, 0]  # (L, t², C)
    sims = torch.bmm(qblocks, kb.transpose(1, 2)).view(-1, t * t, m, span * span)
    # allowed: inside the frame, and within `radius` of the query cell in y and in x: in block
    # coordinates, (key y - radius) - query y in [-radius, radius], and the same across
    d = torch.arange(span)[None] - torch.arange(t)[:, None]  # (t, span)
    near_1d = (d >= 0) & (d <= 2 * r)
    near = (near_1d[:, None, :, None] & near_1d[None, :, None, :]).reshape(t * t, span * span)
    allowed = near[None] & (kidx >= 0)[:, None]  # (L, t², span²)
    sims = sims.masked_fill(~allowed[:, :, None], -2.0).view(-1, t * t, m * span * span)
    best, j = sims.topk(min(k, sims.shape[-1]), dim=-1)  # (L, t², k)
    frame, cell = j // (span * span), j % (span * span)
    # a cell outside the frame is picked only where the window holds fewer than k cells (its
    # weight then ~0, as the plain call's masked picks): any valid index serves
    idx = frame * (h * w) + torch.gather(kidx[:, None].expand(-1, t * t, -1), 2, cell).clamp(min=0)

    # tiles back to rows of cells: (ny, nx, t, t, k) -> (ny t, nx t, k), the padding cut off
    def cells_of(x: Tensor) -> Tensor:
        x = x.view(ny, nx, t, t, -1).permute(0, 2, 1, 3, 4).reshape(ny * t, nx * t, -1)
        return x[:h, :w].reshape(1, h * w, -1)

    return cells_of(best), cells_of(idx)


class TiledNeighbours(WindowNeighbours):
    """`WindowNeighbours` tile by tile (`nearest_in_window`): the same neighbours, scoring only
    the window's cells; the tracking model's propagation cue and label propagation at 240p and
    more need it (a whole frame's similarities at 64x104 cells are 44 M per key frame)."""

    def closest(self, query: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        return nearest_in_window(query, keys, self.radius, self.k)
