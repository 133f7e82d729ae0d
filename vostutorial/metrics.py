r"""The official VOS measures: region similarity J and contour accuracy F.

Both follow the DAVIS 2017 evaluation toolkit exactly (per frame, to floating-point rounding):

* J (Jaccard) is the intersection over union of the predicted and true masks,
  :math:`J = |P \cap G| / |P \cup G|`, and 1 where both are empty.
* F is the boundary F-measure. Boundaries are one pixel wide (the toolkit's ``seg2bmap``: a pixel
  is boundary where the mask differs from its right, lower or lower-right neighbour, with its own
  rule on the last row and column). A predicted boundary pixel counts as matched when a true
  boundary pixel lies within a disk of radius :math:`r = \lceil 0.008 \cdot \text{diagonal}
  \rceil` pixels (the toolkit's digital disk :math:`dx^2 + dy^2 \le r^2`), and likewise for recall:
  :math:`P = \text{matched}_P / |\partial P|`, :math:`R = \text{matched}_G / |\partial G|`,
  :math:`F = 2PR / (P + R)`. Empty boundaries: both empty gives P = R = 1; an empty prediction
  gives P = 1, R = 0; an empty truth gives P = 0, R = 1; F = 0 where P + R = 0.

Masks are boolean arrays ``(H, W)`` (a float is returned) or ``(T, H, W)`` (a length-T array).
The dilation by the disk is done as a union of horizontal runs, one cumulative sum per run
width, inside the bounding box of the boundaries, so no OpenCV is needed and it stays fast.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None):
    pred, gt = np.asarray(pred).astype(bool), np.asarray(gt).astype(bool)
    if pred.shape != gt.shape or pred.ndim not in (2, 3):
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (H, W) or (T, H, W)")
    if void is not None:
        keep = ~np.broadcast_to(np.asarray(void, dtype=bool), pred.shape)
        pred, gt = pred & keep, gt & keep
    return pred, gt


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None):
    """Region similarity J per frame; 1 where both masks are empty.

    ``void`` (optional, same shape) marks pixels that count for neither mask, as the DAVIS
    toolkit does with label 255.
    """
    pred, gt = _pair(pred, gt, void)
    inter = (pred & gt).sum(axis=(-2, -1))
    union = (pred | gt).sum(axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of ``(..., H, W)`` bool masks, by the DAVIS toolkit's seg2bmap rule."""
    seg = np.asarray(mask, dtype=bool)
    e = np.zeros_like(seg)  # right neighbour
    s = np.zeros_like(seg)  # lower neighbour
    se = np.zeros_like(seg)  # lower-right neighbour
    e[..., :, :-1] = seg[..., :, 1:]
    s[..., :-1, :] = seg[..., 1:, :]
    se[..., :-1, :-1] = seg[..., 1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[..., -1, :] = seg[..., -1, :] ^ e[..., -1, :]
    b[..., :, -1] = seg[..., :, -1] ^ s[..., :, -1]
    b[..., -1, -1] = False
    return b


def disk_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """The tolerance in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal)."""
    return int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape)))


def _dilate(b: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of ``(T, H, W)`` by the digital disk dx^2 + dy^2 <= r^2 (zero outside)."""
    t, h, w = b.shape
    half = {dy: math.isqrt(r * r - dy * dy) for dy in range(r + 1)}  # run half-width per row
    runs = {}
    for k in sorted(set(half.values())):  # horizontal dilation by [-k, k] via a cumulative sum
        c = np.zeros((t, h, w + 2 * k + 1), np.int32)
        np.cumsum(np.pad(b, ((0, 0), (0, 0), (k, k))), axis=2, out=c[:, :, 1:])
        runs[k] = (c[:, :, 2 * k + 1 :] - c[:, :, :w]) > 0
    out = runs[half[0]].copy()
    for dy in range(1, min(r, h - 1) + 1):
        row = runs[half[dy]]
        out[:, dy:] |= row[:, :-dy]  # a run centred dy rows above
        out[:, :-dy] |= row[:, dy:]  # and dy rows below
    return out


def f_measure(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008, void: np.ndarray | None = None
):
    """Contour accuracy F per frame, as the DAVIS 2017 toolkit computes it (see module doc)."""
    pred, gt = _pair(pred, gt, void)
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    r = disk_radius(pred.shape[-2:], bound_th)
    bp, bg = boundary_map(pred), boundary_map(gt)
    n_p, n_g = bp.sum(axis=(1, 2)), bg.sum(axis=(1, 2))
    match_p = np.zeros(len(pred), np.int64)
    match_g = np.zeros(len(pred), np.int64)
    both = (n_p > 0) & (n_g > 0)
    if both.any():
        # Only boundary pixels are ever counted, and a match needs both boundaries: the
        # bounding box of all boundary pixels holds every pixel that matters.
        idx = np.flatnonzero(both)
        anyb = (bp[idx] | bg[idx]).any(axis=0)
        ys, xs = np.flatnonzero(anyb.any(1)), np.flatnonzero(anyb.any(0))
        crop = (idx, slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1))
        cp, cg = bp[crop], bg[crop]
        match_p[idx] = (cp & _dilate(cg, r)).sum(axis=(1, 2))
        match_g[idx] = (cg & _dilate(cp, r)).sum(axis=(1, 2))
    precision = np.where(n_p > 0, match_p / np.maximum(n_p, 1), 1.0)
    recall = np.where(n_g > 0, match_g / np.maximum(n_g, 1), 1.0)
    precision = np.where((n_p > 0) & (n_g == 0), 0.0, precision)
    recall = np.where((n_p == 0) & (n_g > 0), 0.0, recall)
    total = precision + recall
    f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return float(f[0]) if single else f


def statistics(values: np.ndarray, n_bins: int = 4) -> tuple[float, float, float]:
    """DAVIS statistics of one object's per-frame values: (mean, recall, decay).

    Recall is the fraction of frames above 0.5; decay is the mean of the first quarter of the
    frames minus that of the last quarter, with the DAVIS toolkit's bin edges (neighbouring
    bins share their edge frame). The toolkit stores the edges as uint8, which wraps from 256
    frames on and gives NaN; here they are plain integers.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(np.nanmean(v))
    recall = float(np.nanmean(v > 0.5))
    ids = (np.round(np.linspace(1, len(v), n_bins + 1) + 1e-10) - 1).astype(np.int64)
    bins = [v[ids[i] : ids[i + 1] + 1] for i in range(n_bins)]
    decay = float(np.nanmean(bins[0]) - np.nanmean(bins[-1]))
    return mean, recall, decay
