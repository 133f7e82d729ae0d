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
`dilate_disk` builds the dilation by the disk (the definition, and the pictures of notebook 06);
F itself asks only at the boundary pixels whether the other boundary is within the disk
(`count_matched`, the same counts), inside the bounding box of the masks, so no OpenCV is
needed and it stays fast.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(
    pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim not in (2, 3):
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (H, W) or (T, H, W)")
    if void is not None:
        keep = ~np.broadcast_to(np.asarray(void, dtype=bool), pred.shape)
        pred, gt = pred & keep, gt & keep
    return pred, gt


def jaccard(pred: np.ndarray, gt: np.ndarray, void: np.ndarray | None = None) -> np.ndarray | float:
    """Region similarity J per frame; 1 where both masks are empty.

    ``void`` (optional, same shape) marks pixels that count for neither mask, as the DAVIS
    toolkit does with label 255.
    """
    pred, gt = _pair(pred, gt, void)
    if pred.ndim == 2:
        inter = np.asarray(np.count_nonzero(pred & gt))
    else:  # frame by frame, in the cache
        inter = np.array([np.count_nonzero(p & g) for p, g in zip(pred, gt, strict=True)])
    n_pred, n_gt = _count(pred), _count(gt)
    union = n_pred + n_gt - inter
    j = np.where(union == 0, 1.0, inter / np.maximum(union, 1))
    return float(j) if j.ndim == 0 else j


def _count(masks: np.ndarray) -> np.ndarray:
    """True pixels per ``(H, W)`` frame; one ``np.count_nonzero`` a frame, which counts bytes
    several times faster than a summing reduction over an axis."""
    if masks.ndim == 2:
        return np.asarray(np.count_nonzero(masks))
    return np.array([np.count_nonzero(m) for m in masks], dtype=np.int64)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """One-pixel boundaries of ``(..., H, W)`` bool masks, by the DAVIS toolkit's seg2bmap rule.

    A pixel is boundary where it differs from its right, lower or lower-right neighbour. On the
    last row only the right neighbour counts, on the last column only the lower one, and the
    bottom-right pixel is never boundary.
    """
    seg = np.asarray(mask, dtype=bool)
    if seg.ndim > 2:  # frame by frame: each frame's few arrays stay in the cache (~1.6x)
        out = np.empty(seg.shape, bool)
        for i, s in enumerate(seg.reshape(-1, *seg.shape[-2:])):
            out.reshape(-1, *seg.shape[-2:])[i] = boundary_map(s)
        return out
    b = np.zeros(seg.shape, bool)
    c, inner = seg[..., :-1, :-1], b[..., :-1, :-1]
    scratch = np.empty(c.shape, bool)  # written in place: no full-size temporaries
    np.not_equal(c, seg[..., :-1, 1:], out=inner)  # right
    inner |= np.not_equal(c, seg[..., 1:, :-1], out=scratch)  # below
    inner |= np.not_equal(c, seg[..., 1:, 1:], out=scratch)  # below right
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


def count_matched(src: np.ndarray, tgt: np.ndarray, r: int) -> np.ndarray:
    """Per frame, how many True pixels of ``src`` ``(T, H, W)`` have a True pixel of ``tgt``
    within the digital disk of radius ``r``: ``(src & dilate_disk(tgt, r)).sum((1, 2))``,
    without building the dilation.

    Boundaries are sparse, so this asks about ``src``'s pixels only: for each row offset dy,
    the nearest ``tgt`` pixel in row y + dy (a binary search over ``tgt``'s pixels numbered
    row by row, rows spaced more than r apart) must lie within isqrt(r^2 - dy^2) columns.
    """
    return _count_matched(np.flatnonzero(src), np.flatnonzero(tgt), src.shape, r)


def _count_matched(ls: np.ndarray, lt: np.ndarray, shape: tuple, r: int) -> np.ndarray:
    """`count_matched` on the pixels' numbers ``(t * H + y) * W + x`` (``np.flatnonzero``)."""
    t, h, w = shape
    if not len(ls) or not len(lt):
        return np.zeros(t, np.int64)
    stride = w + r + 1  # renumber with r + 1 spare columns per row: other rows are > r away
    rows = ls // w
    keys = lt + (lt // w) * (r + 1)  # sorted, as flatnonzero is
    queries = ls + rows * (r + 1)
    ys = rows % h
    matched = np.zeros(len(ls), bool)
    todo = np.arange(len(ls))  # the pixels not matched yet
    for dy in sorted(range(-r, r + 1), key=abs):  # near rows first: most pixels stop there
        y = ys[todo] + dy
        ask = todo[(y >= 0) & (y < h)]
        q = queries[ask] + dy * stride
        pos = np.searchsorted(keys, q)
        after = keys[np.minimum(pos, len(keys) - 1)]
        before = keys[np.maximum(pos - 1, 0)]
        near = np.minimum(np.abs(after - q), np.abs(q - before))
        matched[ask[near <= math.isqrt(r * r - dy * dy)]] = True
        todo = todo[~matched[todo]]
        if not len(todo):
            break
    return np.bincount(rows[matched] // h, minlength=t)


def crop_to_masks(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``(T, H, W)`` mask pairs down to a window that keeps J and F unchanged (views).

    The window holds both masks on every frame plus a one-pixel margin (or reaches the image
    border), so boundaries and their last-row/column rule are exactly as in the full frame.
    One window for all frames: finding it costs one pass, and real objects fill most of it.
    """
    h, w = pred.shape[-2:]
    both = np.logical_or.reduce(pred, axis=0) | np.logical_or.reduce(gt, axis=0)  # (H, W)
    rows, cols = np.flatnonzero(both.any(axis=1)), np.flatnonzero(both.any(axis=0))
    if not len(rows):
        return pred[:, :1, :1], gt[:, :1, :1]
    y0, y1 = max(rows[0] - 1, 0), min(rows[-1] + 2, h)
    x0, x1 = max(cols[0] - 1, 0), min(cols[-1] + 2, w)
    return pred[:, y0:y1, x0:x1], gt[:, y0:y1, x0:x1]


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
    t, h, w = pred.shape
    if not t:
        return np.zeros(0), np.zeros(0)
    # boundary pixels numbered (t * h + y) * w + x, found frame by frame (in the cache)
    lp = np.concatenate([np.flatnonzero(boundary_map(m)) + i * h * w for i, m in enumerate(pred)])
    lg = np.concatenate([np.flatnonzero(boundary_map(m)) + i * h * w for i, m in enumerate(gt)])
    n_p, n_g = np.bincount(lp // (h * w), minlength=t), np.bincount(lg // (h * w), minlength=t)
    match_p = _count_matched(lp, lg, pred.shape, r)  # = (bp & dilate_disk(bg, r)).sum((1, 2))
    match_g = _count_matched(lg, lp, pred.shape, r)
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
) -> np.ndarray | float:
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
