r"""Losses for mask prediction.

Objects usually cover a few percent of the frame, so plain binary cross-entropy is dominated by
easy background pixels and a network can score well by predicting nothing. The paper balances
the two classes by their frequency in each clip: with :math:`N_+` foreground and :math:`N_-`
background pixels out of :math:`N`,

.. math::

    L = -\frac{1}{N}\sum_p \Big[\frac{N_-}{N}\, y_p \log \sigma(z_p)
        + \frac{N_+}{N}\,(1 - y_p) \log\big(1 - \sigma(z_p)\big)\Big]

so that both classes weigh the same in total. That weighting has a cost in multi-object videos:
a background pixel weighs only :math:`N_+/N` (a few percent), so painting *another* object of
the same size costs ~20x less than missing the target, and the network learns "segment every
object" instead of "segment this one". ``bce_iou`` adds a soft Jaccard term per frame instead,

.. math::

    L = \mathrm{BCE} + 1 - \frac{\sum_p \sigma(z_p)\, y_p + 1}
        {\sum_p \big(\sigma(z_p) + y_p - \sigma(z_p)\, y_p\big) + 1}

which, like the J measure itself, counts a false positive as much as a miss, yet never lets
"all background" pay off (its IoU term would be 1).

The soft Jaccard scores probabilities, J scores the mask thresholded at 0.5: a model can lower
the first by hedging near the object (p around 0.5) while the second gets worse. ``bce_lovasz``
replaces it with the Lovasz hinge (Berman et al., CVPR 2018), the convex extension of the
Jaccard loss of the *thresholded* mask: with margins :math:`e_p = 1 - z_p (2 y_p - 1)` sorted
in decreasing order, :math:`\pi`,

.. math::

    L = \sum_i \max(e_{\pi_i}, 0)\, g_i, \qquad
    g_i = \Delta J(\{\pi_1..\pi_i\}) - \Delta J(\{\pi_1..\pi_{i-1}\})

where :math:`\Delta J(S)` is the Jaccard loss of a prediction that gets the pixels of
:math:`S` wrong: each pixel's hinge is weighted by what misclassifying it costs J.
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


def bce_iou(logits: Tensor, targets: Tensor) -> Tensor:
    """Plain BCE plus a soft Jaccard loss, per frame then averaged; shapes as `balanced_bce`.

    The +1 in the ratio makes a frame without the object score 1 when nothing is painted."""
    p = torch.sigmoid(logits.float())
    dims = tuple(range(2, targets.dim()))  # pixels of each (clip, frame)
    inter = (p * targets).sum(dims)
    union = (p + targets - p * targets).sum(dims)
    return bce(logits, targets) + (1 - (inter + 1) / (union + 1)).mean()


def jaccard_steps(gt_sorted: Tensor) -> Tensor:
    """``(N, P)`` targets in the order of decreasing margin -> ``(N, P)`` the Jaccard loss
    added by getting each next pixel wrong (the Lovasz extension's weights ``g``)."""
    total = gt_sorted.sum(1, keepdim=True)
    inter = total - gt_sorted.cumsum(1)
    union = total + (1 - gt_sorted).cumsum(1)
    loss = 1 - inter / union  # Jaccard loss with the first i pixels wrong
    return torch.cat([loss[:, :1], loss[:, 1:] - loss[:, :-1]], dim=1)


def lovasz_hinge(logits: Tensor, targets: Tensor) -> Tensor:
    """The Lovasz hinge per frame, then averaged; shapes as `balanced_bce`. On a frame without
    the object any false positive makes J 0: the worst pixel's hinge is the loss."""
    z = logits.float().flatten(0, -4).flatten(1)  # (frames, pixels)
    y = targets.float().flatten(0, -4).flatten(1)
    margins = 1 - z * (2 * y - 1)
    margins, order = margins.sort(dim=1, descending=True)
    steps = jaccard_steps(torch.gather(y, 1, order))
    return (F.relu(margins) * steps).sum(1).mean()


def bce_lovasz(logits: Tensor, targets: Tensor) -> Tensor:
    """Plain BCE plus the Lovasz hinge; shapes as `balanced_bce`."""
    return bce(logits, targets) + lovasz_hinge(logits, targets)


LOSSES = {"balanced": balanced_bce, "bce": bce, "bce_iou": bce_iou, "bce_lovasz": bce_lovasz}
