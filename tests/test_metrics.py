"""J and F against answers derived by hand from the DAVIS toolkit's definitions."""

import numpy as np
import pytest

from vostutorial.metrics import (
    boundary_map,
    dilate_disk,
    disk_radius,
    f_measure,
    jaccard,
    statistics,
)


def _square(h, w, rows, cols):
    m = np.zeros((h, w), bool)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = True
    return m


def _ring(h, w, rows, cols):
    """The outline of the rectangle rows[0]..rows[1] x cols[0]..cols[1] (inclusive)."""
    r = _square(h, w, rows, cols)
    r[rows[0] + 1 : rows[1], cols[0] + 1 : cols[1]] = False
    return r


def test_square_boundary_is_the_ring_shifted_towards_the_origin():
    sq = _square(40, 40, (10, 19), (10, 19))
    # seg2bmap marks inner pixels on the right/bottom side and outer ones on the left/top
    assert np.array_equal(boundary_map(sq), _ring(40, 40, (9, 19), (9, 19)))
    assert boundary_map(sq).sum() == 40


def test_square_and_its_shifted_copy():
    gt = _square(40, 40, (10, 19), (10, 19))
    pred = _square(40, 40, (10, 19), (12, 21))
    assert jaccard(pred, gt) == pytest.approx(80 / 120)
    # diagonal 56.6 px -> r = ceil(0.45) = 1: a boundary pixel matches within its 4-neighbourhood.
    # Of the shifted ring's 40 pixels, 10 on top and 10 on the bottom row are matched, and 2 on
    # its left column next to the true top/bottom rows: P = R = 22 / 40.
    assert disk_radius((40, 40)) == 1
    assert f_measure(pred, gt) == pytest.approx(0.55, abs=1e-12)


def test_thin_lines_f_forgives_what_j_does_not():
    gt = np.zeros((30, 40), bool)
    gt[10, 5:25] = True
    near, far = np.roll(gt, 1, axis=0), np.roll(gt, 2, axis=0)
    # a 1-px line's boundary is two rows (the line and the row above it), 21 px each
    assert boundary_map(gt).sum() == 42
    assert jaccard(near, gt) == 0.0 and jaccard(far, gt) == 0.0
    assert f_measure(near, gt) == pytest.approx(1.0)
    assert f_measure(far, gt) == pytest.approx(0.5)  # one of two rows matched each way


def test_last_row_and_column_rule():
    m = _square(6, 6, (3, 5), (3, 5))  # touches the bottom-right corner
    expected = np.zeros((6, 6), bool)
    for y, x in [(2, 2), (2, 3), (2, 4), (3, 2), (4, 2), (5, 2), (2, 5)]:
        expected[y, x] = True
    assert np.array_equal(boundary_map(m), expected)
    assert not boundary_map(np.ones((20, 30), bool)).any()  # a full mask has no boundary


def test_masks_touching_the_border():
    top = _square(20, 20, (0, 4), (5, 9))
    b = boundary_map(top)
    assert b.sum() == 14  # the ring's top row would lie outside the image
    assert b[0:5, 4].all() and b[0:5, 9].all() and b[4, 5:9].all()
    gt = _square(20, 30, (0, 19), (0, 14))  # left half, full height
    pred = _square(20, 30, (0, 19), (0, 15))
    assert jaccard(pred, gt) == pytest.approx(15 / 16)
    assert f_measure(pred, gt) == 1.0  # boundaries one column apart, within r = 1
    assert f_measure(np.ones((20, 30), bool), np.ones((20, 30), bool)) == 1.0


def test_empty_masks():
    empty = np.zeros((24, 32), bool)
    some = _square(24, 32, (5, 9), (5, 9))
    assert jaccard(empty, empty) == 1.0 and f_measure(empty, empty) == 1.0
    assert jaccard(empty, some) == 0.0 and f_measure(empty, some) == 0.0  # P = 1, R = 0
    assert jaccard(some, empty) == 0.0 and f_measure(some, empty) == 0.0  # P = 0, R = 1


def test_digital_disk_matches_the_toolkits():
    b = np.zeros((1, 15, 15), bool)
    b[0, 7, 7] = True
    d = dilate_disk(b, 3)[0]
    yy, xx = np.mgrid[-7:8, -7:8]
    assert np.array_equal(d, yy**2 + xx**2 <= 9)
    assert d.sum() == 29  # skimage.morphology.disk(3).sum()
    assert disk_radius((480, 854)) == 8  # ceil(0.008 * 979.7)
    assert disk_radius((480, 854), bound_th=3) == 3


def test_larger_tolerance_and_batches_agree_with_single_frames():
    rng = np.random.default_rng(0)
    gt = np.zeros((5, 60, 80), bool)
    pred = np.zeros_like(gt)
    for t in range(5):
        y, x = rng.integers(5, 30, 2)
        gt[t, y : y + 20, x : x + 30] = True
        pred[t] = np.roll(gt[t], (int(rng.integers(-4, 5)), int(rng.integers(-4, 5))), (0, 1))
    pred[3] = False  # an empty prediction among non-empty ones
    f = f_measure(pred, gt, bound_th=3)
    j = jaccard(pred, gt)
    assert f.shape == (5,) and j.shape == (5,)
    for t in range(5):
        assert f[t] == f_measure(pred[t], gt[t], bound_th=3)
        assert j[t] == jaccard(pred[t], gt[t])
    assert f[3] == 0.0
    # a 3-px shift is within r = 3 everywhere on a straight-edged box
    shifted = np.roll(gt[0], 3, axis=1)
    assert f_measure(shifted, gt[0], bound_th=3) == 1.0
    assert f_measure(shifted, gt[0], bound_th=2) < 1.0


def test_void_pixels_count_for_neither_mask():
    gt = _square(20, 20, (5, 9), (5, 9))
    pred = gt.copy()
    pred[12:15, 12:15] = True
    void = np.zeros_like(gt)
    void[11:16, 11:16] = True
    assert jaccard(pred, gt) < 1.0
    assert jaccard(pred, gt, void) == 1.0 and f_measure(pred, gt, void=void) == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="must both be"):
        jaccard(np.zeros((3, 4)), np.zeros((4, 3)))


def test_statistics_mean_recall_decay():
    v = np.array([1, 1, 1, 1, 0, 0, 0, 0], float)
    mean, recall, decay = statistics(v)
    assert (mean, recall) == (0.5, 0.5)
    # bin edges round(linspace(1, 8, 5)) - 1 = [0, 2, 4, 5, 7]: first bin v[0:3], last v[5:8]
    assert decay == 1.0
    assert statistics(np.array([0.2, 0.9, 0.6, 0.4]))[1] == 0.5


def test_decay_is_finite_from_256_frames_on():
    for n in (255, 256, 300, 1000):
        v = np.linspace(1, 0, n)
        mean, _, decay = statistics(v)
        assert np.isfinite(decay) and 0.6 < decay < 0.8
        assert mean == pytest.approx(0.5)


def _reference_f(pred, gt, r):
    """F on the full frame, straight from the definition (no cropping, one frame at a time)."""
    bp, bg = boundary_map(pred), boundary_map(gt)
    n_p, n_g = bp.sum(), bg.sum()
    if n_p == 0 or n_g == 0:
        return 1.0 if n_p == n_g == 0 else 0.0
    p = (bp & dilate_disk(bg[None], r)[0]).sum() / n_p
    rc = (bg & dilate_disk(bp[None], r)[0]).sum() / n_g
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


def test_cropping_keeps_f_and_j_exact_on_random_masks():
    from vostutorial.metrics import crop_to_masks

    rng = np.random.default_rng(1)
    t, h, w = 12, 50, 70
    gt = np.zeros((t, h, w), bool)
    pred = np.zeros_like(gt)
    for i in range(t):  # in the lower right: they may run off the bottom or right border
        y, x = rng.integers(h // 3, h - 5), rng.integers(w // 3, w - 5)
        for m in (gt[i], pred[i]):
            if rng.random() < 0.9:
                dy, dx = rng.integers(-3, 4, 2)
                ys, xs = max(0, y + dy), max(0, x + dx)
                m[ys : y + dy + rng.integers(1, 15), xs : x + dx + rng.integers(1, 20)] = True
    gt[3], pred[3] = False, False  # the last row/column rule in play
    gt[3, -4:, -5:] = True
    pred[3, -6:, -1] = True
    r = disk_radius((h, w))
    flipped = pred[:, ::-1, ::-1].copy(), gt[:, ::-1, ::-1].copy()  # now in the upper left
    for p, g in ((pred, gt), flipped):
        f = f_measure(p, g)
        for i in range(t):
            assert f[i] == pytest.approx(_reference_f(p[i], g[i], r), abs=1e-12)
        pc, gc = crop_to_masks(p, g)
        assert pc.shape[1] < h and pc.shape[2] < w  # it did crop
        assert np.allclose(jaccard(pc, gc), jaccard(p, g))


# --- an independent oracle: the DAVIS definitions, written plainly --------------------------
def _oracle_boundary(seg: np.ndarray) -> np.ndarray:
    """DAVIS seg2bmap for a same-size map: a pixel is boundary where it differs from its right,
    lower or lower-right neighbour; the last row looks right only, the last column down
    only, the corner never."""
    seg = seg.astype(bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _oracle_j_f(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    from skimage.morphology import binary_dilation, disk  # a dilation we did not write

    inter, union = (pred & gt).sum(), (pred | gt).sum()
    j = 1.0 if union == 0 else inter / union
    r = int(np.ceil(0.008 * np.hypot(*gt.shape)))
    bp, bg = _oracle_boundary(pred), _oracle_boundary(gt)
    np_, ng = bp.sum(), bg.sum()
    if np_ == 0 and ng == 0:
        p = rec = 1.0
    elif np_ == 0:
        p, rec = 1.0, 0.0
    elif ng == 0:
        p, rec = 0.0, 1.0
    else:
        p = (bp & binary_dilation(bg, disk(r))).sum() / np_
        rec = (bg & binary_dilation(bp, disk(r))).sum() / ng
    f = 0.0 if p + rec == 0 else 2 * p * rec / (p + rec)
    return float(j), float(f)


def _blobs(rng, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    m = np.zeros((h, w), bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx, ry, rx = (
            rng.uniform(0, h),
            rng.uniform(0, w),
            rng.uniform(2, h / 2),
            rng.uniform(2, w / 2),
        )
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m


def test_j_and_f_equal_an_independent_oracle_on_random_and_edge_cases():
    rng = np.random.default_rng(0)
    cases = []
    for h, w in ((48, 64), (97, 131), (240, 427)):  # radii 1, 2, 4
        for _ in range(4):
            gt = _blobs(rng, h, w)
            cases.append((_blobs(rng, h, w), gt))  # unrelated shapes
            cases.append((np.roll(gt, rng.integers(-5, 6, 2), axis=(0, 1)), gt))  # shifted
            cases.append((gt ^ (rng.random((h, w)) < 0.02), gt))  # ragged
        full, empty = np.ones((h, w), bool), np.zeros((h, w), bool)
        dot = empty.copy()
        dot[h // 2, w // 2] = True
        edge = empty.copy()
        edge[:, -3:] = True  # touching the last column
        cases += [(empty, gt), (gt, empty), (empty, empty), (full, full), (full, gt),
                  (dot, dot), (dot, empty), (edge, gt), (edge, edge)]  # fmt: skip
    for pred, gt in cases:
        j, f = _oracle_j_f(pred, gt)
        assert jaccard(pred, gt) == pytest.approx(j, abs=1e-12)
        assert f_measure(pred, gt) == pytest.approx(f, abs=1e-12)
    preds, gts = np.stack([c[0] for c in cases[:8]]), np.stack([c[1] for c in cases[:8]])
    want = np.array([_oracle_j_f(p, g)[1] for p, g in zip(preds, gts, strict=True)])
    np.testing.assert_allclose(f_measure(preds, gts), want, atol=1e-12)  # batched (T, H, W)


def test_sparse_matching_counts_what_the_dilation_counts():
    from vostutorial.metrics import count_matched

    rng = np.random.default_rng(3)
    for r in (1, 2, 3, 5, 8):
        src = rng.random((4, 37, 53)) < 0.05
        tgt = rng.random((4, 37, 53)) < 0.03
        tgt[1] = False  # a frame without target pixels
        src[2] = False
        want = (src & dilate_disk(tgt, r)).sum(axis=(1, 2))
        np.testing.assert_array_equal(count_matched(src, tgt, r), want)
    edge = np.zeros((1, 5, 5), bool)
    edge[0, 0, 4] = True  # right edge of row 0 must not reach column 0 of row 1
    other = np.zeros_like(edge)
    other[0, 1, 0] = True
    assert count_matched(edge, other, 2).tolist() == [0]


def test_sparse_matching_finds_rows_above_and_below_the_image_edge():
    from vostutorial.metrics import count_matched

    src = np.zeros((1, 4, 6), bool)
    src[0, 0] = src[0, 3] = True  # the first and last rows: one of their offsets leaves the image
    tgt = np.zeros_like(src)
    tgt[0, 1] = tgt[0, 2] = True
    assert count_matched(src, tgt, 1).tolist() == [12]
