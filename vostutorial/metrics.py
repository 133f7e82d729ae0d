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
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
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
    if pred.ndim == 3:
        pred, gt = crop_to_masks(pred, gt)
    inter = (pred & gt).sum(axis=(-2, -1))
    union = (pred | gt).sum(axis=(-2, -1))
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of ``(..., H, W)`` bool masks, by the DAVIS toolkit's seg2bmap rule.

    A pixel is boundary where it differs from its right, lower or lower-right neighbour. On the
    last row only the right neighbour counts, on the last column only the lower one, and the
    bottom-right pixel is never boundary.
    """
    seg = np.asarray(mask, dtype=bool)
    b = np.zeros_like(seg)
    c = seg[..., :-1, :-1]
    b[..., :-1, :-1] = (c != seg[..., :-1, 1:]) | (c != seg[..., 1:, :-1]) | (c != seg[..., 1:, 1:])
    b[..., -1, :-1] = seg[..., -1, :-1] != seg[..., -1, 1:]
    b[..., :-1, -1] = seg[..., :-1, -1] != seg[..., 1:, -1]
    return b


def disk_radius(shape: tuple[int, int], bound_th: float = 0.008) -> int:
    """The tolerance in pixels: ``bound_th`` itself if >= 1, else ceil(bound_th * diagonal)."""
    return int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*shape)))


def _hruns(b: np.ndarray, ks: set[int]) -> dict[int, np.ndarray]:
    """Horizontal dilations of ``(T, H, W)`` by ``[-k, k]`` for each k, zero outside the image.

    ``span[n][x]`` is the OR of ``n`` consecutive pixels from x (n a power of two, built by
    doubling); a window of width ``2k + 1`` is the OR of two overlapping spans of the largest
    power of two that fits. A few boolean ORs, no arithmetic.
    """
    w, kmax = b.shape[-1], max(ks)
    span = {1: np.pad(b, ((0, 0), (0, 0), (kmax, kmax)))}
    n = 1
    while 2 * n <= 2 * kmax + 1:
        nxt = span[n].copy()
        nxt[..., :-n] |= span[n][..., n:]
        span[2 * n], n = nxt, 2 * n
    out = {}
    for k in ks:
        width = 2 * k + 1
        a = 1 << (width.bit_length() - 1)  # largest power of two <= width
        s0, s1 = kmax - k, kmax - k + width - a
        out[k] = span[a][..., s0 : s0 + w] | span[a][..., s1 : s1 + w]
    return out


def dilate_disk(b: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of ``(T, H, W)`` by the digital disk dx^2 + dy^2 <= r^2 (zero outside):
    the union over rows dy of horizontal runs of half-width isqrt(r^2 - dy^2)."""
    h = b.shape[1]
    half = {dy: math.isqrt(r * r - dy * dy) for dy in range(r + 1)}
    runs = _hruns(b, set(half.values()))
    out = runs[half[0]].copy()
    for dy in range(1, min(r, h - 1) + 1):
        row = runs[half[dy]]
        out[:, dy:] |= row[:, :-dy]  # a run centred dy rows above
        out[:, :-dy] |= row[:, dy:]  # and dy rows below
    return out


def crop_to_masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(T, H, W)`` mask pairs down to one window per frame that keeps J and F unchanged.

    Each frame's window holds the bounding box of both masks plus a one-pixel margin (or
    reaches the image border), so boundaries and their last-row/column rule are exactly as in
    the full frame. All windows share one size, so the result stays one ``(T, h, w)`` array.
    """
    t, h, w = pred.shape
    both = pred | gt
    rows = both.any(axis=2)  # (T, H)
    has = rows.any(axis=1)
    if not has.any():
        return pred[:, :1, :1], gt[:, :1, :1]
    band = np.flatnonzero(rows.any(axis=0))  # columns need only the rows any frame uses
    cols = both[:, band[0] : band[-1] + 1].any(axis=1)  # (T, W)
    top = np.where(has, rows.argmax(axis=1), 0)
    bottom = np.where(has, h - 1 - rows[:, ::-1].argmax(axis=1), 0)
    left = np.where(has, cols.argmax(axis=1), 0)
    right = np.where(has, w - 1 - cols[:, ::-1].argmax(axis=1), 0)
    hw = min(h, int((bottom - top).max()) + 3)  # box + 1 pixel above and below
    ww = min(w, int((right - left).max()) + 3)
    if hw * ww > 0.6 * h * w:  # the windows would save little: skip the gather
        return pred, gt
    y0 = np.clip(top - 1, 0, h - hw)
    x0 = np.clip(left - 1, 0, w - ww)
    ty = (
        np.arange(t)[:, None, None],
        y0[:, None, None] + np.arange(hw)[None, :, None],
        x0[:, None, None] + np.arange(ww)[None, None, :],
    )
    return pred[ty], gt[ty]


def precision_recall(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008, void: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Boundary precision and recall per frame (the two halves of F; see module doc).

    Takes ``(H, W)`` or ``(T, H, W)`` masks and returns floats or length-T arrays.
    """
    pred, gt = _pair(pred, gt, void)
    single = pred.ndim == 2
    if single:
        pred, gt = pred[None], gt[None]
    r = disk_radius(pred.shape[-2:], bound_th)  # from the full frame's diagonal
    pred, gt = crop_to_masks(pred, gt)
    bp, bg = boundary_map(pred), boundary_map(gt)
    n_p, n_g = bp.sum(axis=(1, 2)), bg.sum(axis=(1, 2))
    match_p = np.zeros(len(pred), np.int64)
    match_g = np.zeros(len(pred), np.int64)
    both = (n_p > 0) & (n_g > 0)
    if both.any():
        idx = np.flatnonzero(both)
        match_p[idx] = (bp[idx] & dilate_disk(bg[idx], r)).sum(axis=(1, 2))
        match_g[idx] = (bg[idx] & dilate_disk(bp[idx], r)).sum(axis=(1, 2))
    # empty boundaries, as the toolkit defines them: both empty P = R = 1, one empty 0/1
    precision = np.where(n_p > 0, match_p / np.maximum(n_p, 1), 1.0)
    recall = np.where(n_g > 0, match_g / np.maximum(n_g, 1), 1.0)
    precision = np.where((n_p > 0) & (n_g == 0), 0.0, precision)
    recall = np.where((n_p == 0) & (n_g > 0), 0.0, recall)
    if single:
        return float(precision[0]), float(recall[0])
    return precision, recall


def f_measure(
    pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008, void: np.ndarray | None = None
):
    """Contour accuracy F per frame, as the DAVIS 2017 toolkit computes it (see module doc)."""
    precision, recall = (np.asarray(x) for x in precision_recall(pred, gt, bound_th, void))
    total = precision + recall
    f = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return float(f) if f.ndim == 0 else f


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
