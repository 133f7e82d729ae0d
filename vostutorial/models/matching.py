r"""Label propagation in feature space: each cell of a frame votes with the labels of its most
similar cells in memory frames.

.. math::

    y_t(p) = \sum_{q \in \mathrm{top}_k(p)} w_{pq}\, y(q), \qquad
    w_{pq} = \mathrm{softmax}_q\big(\cos(f_t(p), f(q)) / \tau\big)

with :math:`q` restricted to a window around :math:`p` (objects move only so far between
frames). Which cells are nearest (`nearest`, per frame with its window `WindowNeighbours`)
depends on the features alone; the labels they
carry (`vote`) can come later, which lets a recurrent model find all neighbours of a clip at
once and vote with its own predictions frame by frame. Nothing here learns. Used by the
training-free baseline (`vostutorial.propagation`) and by the ``propagation`` cue of
`models.tracking`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn


@lru_cache(maxsize=2)  # a run reuses one or two grids; callers never write the mask
def window(h: int, w: int, radius: int) -> Tensor:
    """``(h*w, h*w)`` bool: cell q is within ``radius`` cells of cell p (a square window)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    return ((yy[:, None] - yy[None]).abs() <= radius) & ((xx[:, None] - xx[None]).abs() <= radius)


def similarity(query: Tensor, keys: Tensor, allowed: Tensor) -> Tensor:
    """Cosine similarities ``(N, P, Q)`` of unit-length features ``query`` ``(N, C, P)`` and
    ``keys`` ``(N, C, Q)``; -2 (below any cosine) where ``allowed`` ``(P, Q)`` is False."""
    return torch.einsum("ncp,ncq->npq", query, keys).masked_fill(~allowed, -2.0)


def closest(sims: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Each query cell's ``k`` most similar key cells in ``sims`` ``(N, P, Q)``: their
    similarities and indices ``(N, P, k)``."""
    return sims.topk(min(k, sims.shape[-1]), dim=-1)


def closest_of_two(
    a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor], offset: int, k: int
) -> tuple[Tensor, Tensor]:
    """`closest` over two searches' finds, similarities and indices ``(N, P, k)`` each,
    ``b``'s indices shifted by ``offset`` (its keys come after ``a``'s ``offset`` ones): the
    same cells as one search over both sets of keys, since each of those is among the ``k``
    best of its own set. Equal similarities keep their order, ``a``'s first (a stable sort:
    where both searched the same frame, each cell is found twice and taken in pairs)."""
    sims, idx = torch.cat([a[0], b[0]], dim=-1), torch.cat([a[1], b[1] + offset], dim=-1)
    best, j = sims.sort(dim=-1, descending=True, stable=True)
    k = min(k, sims.shape[-1])
    return best[..., :k], idx.gather(-1, j[..., :k])


def softmax_weights(sims: Tensor, temperature: float) -> Tensor:
    """The neighbours' vote weights: softmax of their similarities over ``temperature``."""
    return torch.softmax(sims / temperature, dim=-1)


def nearest(
    query: Tensor, keys: Tensor, allowed: Tensor, k: int, temperature: float
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest allowed key cells of each query cell (`similarity`, `closest`):
    softmax weights and indices ``(N, P, k)``."""
    sims, idx = closest(similarity(query, keys, allowed), k)
    return softmax_weights(sims, temperature), idx


def vote(labels: Tensor, weights: Tensor, idx: Tensor) -> Tensor:
    """Labels ``(N, L, Q)`` of the key cells carried to the query cells: ``(N, L, P)``, each
    the weighted mean of its neighbours' (`nearest`). One set of neighbours (N = 1) can serve
    the labels of several objects (N of them)."""
    n = max(labels.shape[0], idx.shape[0])
    (p, k), q = idx.shape[1:], labels.shape[-1]
    idx, weights = idx.expand(n, p, k), weights.expand(n, p, k)
    out = [
        (torch.gather(labels[:, i, None, :].expand(n, p, q), 2, idx) * weights).sum(-1)
        for i in range(labels.shape[1])
    ]
    return torch.stack(out, dim=1)


class WindowNeighbours(nn.Module):
    """Each cell's ``k`` nearest cells (`nearest`) within ``radius`` cells of it in key frames.
    Learns nothing (no parameters: checkpoints do not change); a module so that
    `vostutorial.fast` can swap in a version that scores only the window's cells."""

    def __init__(self, radius: int, k: int, temperature: float):
        super().__init__()
        self.radius, self.k, self.temperature = radius, k, temperature

    def forward(self, query: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """One frame's features ``(C, h, w)`` and ``M`` key frames' ``(M, C, h, w)``, unit
        length -> softmax weights and indices ``(1, h*w, k)`` into the ``M*h*w`` key cells,
        frame after frame."""
        sims, idx = self.closest(query, keys)
        return softmax_weights(sims, self.temperature), idx

    def closest(self, query: Tensor, keys: Tensor) -> tuple[Tensor, Tensor]:
        """As `forward`, with the neighbours' cosine similarities in place of weights."""
        c, h, w = query.shape
        allowed = window(h, w, self.radius).to(query.device).repeat(1, keys.shape[0])
        flat = keys.transpose(0, 1).reshape(1, c, -1)  # (1, C, M*h*w), frame after frame
        return closest(similarity(query.reshape(1, c, -1), flat, allowed), self.k)
