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
    for i in range(t):
        y, x = rng.integers(-5, h - 5), rng.integers(-5, w - 5)  # may run off any border
        for m in (gt[i], pred[i]):
            if rng.random() < 0.9:
                dy, dx = rng.integers(-3, 4, 2)
                ys, xs = max(0, y + dy), max(0, x + dx)
                m[ys : y + dy + rng.integers(1, 15), xs : x + dx + rng.integers(1, 20)] = True
    gt[3], pred[3] = False, False  # the last row/column rule in play
    gt[3, -4:, -5:] = True
    pred[3, -6:, -1] = True
    f = f_measure(pred, gt)
    r = disk_radius((h, w))
    for i in range(t):
        assert f[i] == pytest.approx(_reference_f(pred[i], gt[i], r), abs=1e-12)
    pc, gc = crop_to_masks(pred, gt)
    assert pc.shape[1:] != (h, w)  # it did crop
    assert np.allclose(jaccard(pc, gc), jaccard(pred, gt))
