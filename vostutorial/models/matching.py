r"""Label propagation in feature space: each cell of a frame votes with the labels of its most
similar cells in memory frames.

.. math::

    y_t(p) = \sum_{q \in \mathrm{top}_k(p)} w_{pq}\, y(q), \qquad
    w_{pq} = \mathrm{softmax}_q\big(\cos(f_t(p), f(q)) / \tau\big)

with :math:`q` restricted to a window around :math:`p` (objects move only so far between
frames). Which cells are nearest (`nearest`) depends on the features alone; the labels they
carry (`vote`) can come later, which lets a recurrent model find all neighbours of a clip at
once and vote with its own predictions frame by frame. Nothing here learns. Used by the
training-free baseline (`vostutorial.propagation`) and by the ``propagation`` cue of
`models.tracking`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def window(h: int, w: int, radius: int) -> Tensor:
    """``(h*w, h*w)`` bool: cell q is within ``radius`` cells of cell p (a square window)."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    yy, xx = yy.flatten(), xx.flatten()
    return ((yy[:, None] - yy[None]).abs() <= radius) & ((xx[:, None] - xx[None]).abs() <= radius)


def similarity(query: Tensor, keys: Tensor, allowed: Tensor) -> Tensor:
    """Cosine similarities ``(N, P, Q)`` of unit-length features ``query`` ``(N, C, P)`` and
    ``keys`` ``(N, C, Q)``; -2 (below any cosine) where ``allowed`` ``(P, Q)`` is False."""
    return torch.einsum("ncp,ncq->npq", query, keys).masked_fill(~allowed, -2.0)


def top(sims: Tensor, k: int, temperature: float) -> tuple[Tensor, Tensor]:
    """Each query cell's ``k`` most similar key cells in ``sims`` ``(N, P, Q)``: softmax weights
    ``(N, P, k)`` of their similarity over ``temperature``, and their indices ``(N, P, k)``."""
    best, idx = sims.topk(min(k, sims.shape[-1]), dim=-1)
    return torch.softmax(best / temperature, dim=-1), idx


def nearest(
    query: Tensor, keys: Tensor, allowed: Tensor, k: int, temperature: float
) -> tuple[Tensor, Tensor]:
    """`top` of `similarity`: the ``k`` nearest allowed key cells of each query cell."""
    return top(similarity(query, keys, allowed), k, temperature)


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
