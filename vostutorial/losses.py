r"""Losses for mask prediction.

Objects usually cover a few percent of the frame, so plain binary cross-entropy is dominated by
easy background pixels and a network can score well by predicting nothing. The paper balances
the two classes by their frequency in each clip: with :math:`N_+` foreground and :math:`N_-`
background pixels out of :math:`N`,

.. math::

    L = -\frac{1}{N}\sum_p \Big[\frac{N_-}{N}\, y_p \log \sigma(z_p)
        + \frac{N_+}{N}\,(1 - y_p) \log\big(1 - \sigma(z_p)\big)\Big]

so that both classes weigh the same in total.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F


def balanced_bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Class-balanced BCE, weights from each clip's own foreground fraction.

    ``logits`` and ``targets`` are ``(B, T, 1, H, W)``; the loss of each clip is balanced over
    all its frames, then clips are averaged.
    """
    dims = tuple(range(1, targets.dim()))
    # N+ / N per clip; kept off 0 and 1 so that a clip without the object still teaches
    # "predict nothing here" instead of weighing its background by zero
    fg = targets.mean(dim=dims, keepdim=True).clamp(0.01, 0.99)
    weights = torch.where(targets > 0.5, 1 - fg, fg)
    per_pixel = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return (weights * per_pixel).mean(dim=dims).mean() * 2  # x2: equal to BCE at fg = 1/2


def bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Plain binary cross-entropy, averaged over pixels."""
    return F.binary_cross_entropy_with_logits(logits, targets)


LOSSES = {"balanced": balanced_bce, "bce": bce}
