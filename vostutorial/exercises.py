"""Checks for the notebooks' exercises: fixed cases with answers worked out by hand.

A check never calls the library function that its exercise asks for: it feeds the student's
function small inputs whose answers are written here, plus the edge cases where answers go
wrong (an empty prediction, the clamp in the balanced loss, an object that appears late), and
its assert messages say what is wrong. An unfinished exercise (its stub raises
``NotImplementedError``) is reported, not raised, so *Run All* goes on past it.

    check_jaccard(my_jaccard)   # prints "my_jaccard: 5 cases pass" or raises AssertionError
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps

import numpy as np
import torch


def exercise(check: Callable) -> Callable:
    """Wrap a check: a stub is reported as not done (returns False), a pass says so (True)."""

    @wraps(check)
    def run(fn: Callable) -> bool:
        name = getattr(fn, "__name__", "your function")
        try:
            cases = check(fn)
        except NotImplementedError:
            print(f"{name}: not done yet (its cell raises NotImplementedError); skipped")
            return False
        print(f"{name}: {cases} cases pass")
        return True

    return run


def _close(got: object, want: object, what: str, tol: float = 1e-5) -> None:
    got = np.asarray(got.detach() if isinstance(got, torch.Tensor) else got, dtype=float)
    want = np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    assert np.allclose(got, want, atol=tol), f"{what}: got {got.round(4)}, expected {want.round(4)}"


def _sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# --- 01 -------------------------------------------------------------------------------------
@exercise
def check_first_appearances(fn: Callable) -> int:
    """``fn(ids (T, H, W)) -> {object id: index of the first frame it is on}``."""
    ids = np.zeros((4, 3, 3), np.uint8)
    ids[0, 0, 0] = 1
    ids[2, 1, 1] = 2  # appears late
    ids[3, 2, 2] = 1
    got = fn(ids)
    assert 0 not in got, "background (id 0) is not an object"
    assert got == {1: 0, 2: 2}, f"got {got}; object 2 first shows on frame 2 (counting from 0)"
    assert fn(np.zeros((3, 2, 2), np.uint8)) == {}, "a video without objects has none"
    return 2


# --- 02 -------------------------------------------------------------------------------------
def _bias_only_conv(c_in: int, c_h: int, bias: list[float]) -> torch.nn.Conv2d:
    """A gate convolution with zero weights: each gate is its bias, everywhere."""
    conv = torch.nn.Conv2d(c_in + c_h, 4 * c_h, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.copy_(torch.tensor(bias).repeat_interleave(c_h))
    return conv


@exercise
def check_convlstm_step(fn: Callable) -> int:
    """``fn(gates, x, h, c) -> (h_new, c_new)`` with ``gates`` the cell's one convolution over
    ``[x, h]`` giving ``i, f, g, o`` in that order."""
    x, h, c = torch.ones(1, 2, 4, 4), torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    zi, zf, zg, zo = 1.0, 2.0, -0.5, 0.3
    h_new, c_new = fn(_bias_only_conv(2, 3, [zi, zf, zg, zo]), x, h, c)
    want_c = _sig(zf) * 0.5 + _sig(zi) * math.tanh(zg)
    _close(c_new, torch.full((1, 3, 4, 4), want_c), "c_new = f*c + i*g (gate order i, f, g, o)")
    _close(h_new, torch.full((1, 3, 4, 4), _sig(zo) * math.tanh(want_c)), "h_new = o*tanh(c_new)")
    # a closed forget gate and input gate: the memory is wiped, whatever it held
    h_new, c_new = fn(_bias_only_conv(2, 3, [-50, -50, 1, 0]), x, h, c)
    _close(c_new, torch.zeros(1, 3, 4, 4), "with f = i = 0 the new cell state")
    return 2


@exercise
def check_unroll(fn: Callable) -> int:
    """``fn(step, xs (T, ...), state) -> (T, ...) outputs h_t`` where ``step(x, state)`` returns
    the new state ``(h, c)``: the state carries over from one step to the next."""

    # a counter: c accumulates the inputs, h shows c
    def step(x: torch.Tensor, state: tuple) -> tuple:
        h, c = state
        return c + x, c + x

    xs = torch.tensor([1.0, 2.0, 3.0])
    out = fn(step, xs, (torch.tensor(0.0), torch.tensor(10.0)))
    assert len(out) == 3, f"one output per time step: got {len(out)} for 3 inputs"
    _close(
        torch.stack(list(out)),
        [11.0, 13.0, 16.0],
        "outputs of a running sum started at 10: is the state carried over?",
    )
    _close(
        torch.stack(list(fn(step, xs[:1], (torch.tensor(0.0), torch.tensor(0.0))))),
        [1.0],
        "a single step",
    )
    return 2


# --- 03 -------------------------------------------------------------------------------------
@exercise
def check_receptive_field(fn: Callable) -> int:
    """``fn([(kernel, stride), ...]) -> receptive field in input pixels``."""
    assert fn([]) == 1, "no layer: a pixel sees itself (1)"
    assert fn([(3, 1)]) == 3, "one 3x3 convolution sees 3 pixels"
    assert fn([(3, 1), (3, 1)]) == 5, "two 3x3 convolutions see 5"
    got = fn([(3, 1), (2, 2), (3, 1)])
    assert got == 8, (
        f"3x3, 2x2 pool (stride 2), 3x3: got {got}; after a stride-2 layer each "
        "further tap spans 2 input pixels, so the last 3x3 adds 2 * 2"
    )
    return 4


# --- 04 -------------------------------------------------------------------------------------
@exercise
def check_balanced_bce(fn: Callable) -> int:
    """``fn(z, y) -> scalar``, z and y ``(B, T, 1, H, W)``."""
    z = torch.zeros(1, 1, 1, 2, 2)  # p = 0.5 everywhere: BCE = log 2 per pixel
    y = torch.tensor([1.0, 0, 0, 0]).view(1, 1, 1, 2, 2)  # rho = 1/4
    # weights 3/4 (the one foreground pixel) and 1/4 (three background): mean 3/8, times 2
    _close(fn(z, y), 2 * (0.75 + 3 * 0.25) / 4 * math.log(2), "rho = 1/4, all logits 0")
    empty = torch.zeros(1, 1, 1, 2, 2)  # no foreground: rho clamps to 0.01, not 0
    _close(
        fn(z, empty),
        2 * 0.01 * math.log(2),
        "a clip without the object: rho is clamped to 0.01, so background still counts",
    )
    two = torch.cat([y, empty])  # clips are balanced each on its own, then averaged
    _close(
        fn(torch.zeros(2, 1, 1, 2, 2), two),
        (2 * 1.5 / 4 * math.log(2) + 2 * 0.01 * math.log(2)) / 2,
        "two clips: each balanced by its own rho, then averaged",
    )
    return 3


@exercise
def check_lr_factor(fn: Callable) -> int:
    """``fn(step, warmup, steps, min_lr) -> factor``: linear warm-up over steps 0..warmup-1
    reaching 1, then cosine decay from 1 at ``warmup`` to ``min_lr`` at ``steps``."""
    _close(fn(0, 10, 110, 0.1), 0.1, "step 0 of a 10-step warm-up: 1/10 (not 0)")
    _close(fn(9, 10, 110, 0.1), 1.0, "the last warm-up step reaches 1")
    _close(fn(10, 10, 110, 0.1), 1.0, "the decay starts at 1")
    _close(fn(60, 10, 110, 0.1), 0.55, "half-way through the cosine: (1 + min_lr) / 2")
    _close(fn(110, 10, 110, 0.1), 0.1, "the last step: min_lr")
    return 5


# --- 05 -------------------------------------------------------------------------------------
@exercise
def check_merge(fn: Callable) -> int:
    """``fn(p (K, T, h, w), ids) -> (T, h, w)`` ids, background ``prod (1 - p_k)``."""
    p = np.array([[[[0.4, 0.9, 0.1, 0.3]]], [[[0.4, 0.05, 0.1, 0.6]]]])  # K=2, T=1, 1x4
    got = np.asarray(fn(p, [3, 7]))
    assert got.shape == (1, 1, 4), f"shape {got.shape}, expected (T, h, w) = (1, 1, 4)"
    # pixel 0: two objects at 0.4 leave 0.36 for background: object 3 wins (ties: first)
    want = np.array([[[3, 3, 0, 7]]])
    assert np.array_equal(got, want), (
        f"got {got.ravel()}, expected {want.ravel()}: ids, not "
        "indices; background = prod(1 - p_k), a class of its own"
    )
    return 1


@exercise
def check_soft_aggregate(fn: Callable) -> int:
    """``fn(p (K, ...)) -> (K + 1, ...)``: background ``prod (1 - p_k)`` first, then all
    normalised as odds ``q / (1 - q)``."""
    got = fn(np.array([0.8]))
    # background 0.2 (odds 0.25), object 0.8 (odds 4): 0.25/4.25 and 4/4.25
    _close(got, [0.25 / 4.25, 4 / 4.25], "one object at 0.8: normalised odds, not probabilities")
    got = fn(np.array([0.5, 0.5]))  # background 0.25 (odds 1/3), objects odds 1 each
    _close(got, np.array([1 / 3, 1, 1]) / (7 / 3), "two objects at 0.5")
    _close(np.sum(fn(np.array([[0.3, 0.9], [0.2, 0.7]])), axis=0), [1, 1], "sums to 1 per pixel")
    return 3


@exercise
def check_blend(fn: Callable) -> int:
    """``fn(probs {id: (T, H, W)}, vote (T, K + 1, H, W), s) -> {id: (T, H, W)}``: each
    object's ``(1 - s) p + s q``, ``q`` its channel of the vote (background first, then the
    objects in ascending id order)."""
    vote = np.array([[[[0.3]], [[0.7]]]])  # T=1, background 0.3, the object 0.7, one pixel
    got = fn({4: np.array([[[0.2]]])}, vote, 0.25)
    assert set(got) == {4}, f"got objects {sorted(got)}, expected the model's, [4]"
    what = "p 0.2, the vote 0.7, s 0.25"
    if np.allclose(got[4], 0.575):
        raise AssertionError(f"{what}: s is the vote's share, so the model weighs 1 - s = 0.75")
    if np.allclose(got[4], 0.225):
        raise AssertionError(f"{what}: channel 0 of the vote is background; the object is 1")
    _close(got[4], [[[0.75 * 0.2 + 0.25 * 0.7]]], what)
    # two objects whose dict lists 9 before 2: channel 1 is object 2 (ascending ids)
    vote = np.array([[[[0.2]], [[0.1]], [[0.7]]]])
    got = fn({9: np.array([[[0.0]]]), 2: np.array([[[0.0]]])}, vote, 1.0)
    assert np.allclose(got[9], 0.7) and np.allclose(got[2], 0.1), (
        f"s = 1, so each object is its share of the vote: object 2 gets channel 1 (0.1), object "
        f"9 channel 2 (0.7), in ascending id order, not the dict's; got 2: {np.ravel(got[2])}, "
        f"9: {np.ravel(got[9])}"
    )
    return 2


@exercise
def check_override(fn: Callable) -> int:
    """``fn(labels (T, H, W), given {id: (t, mask)}) -> labels`` where, on its given frame,
    each object is exactly its given mask; other frames untouched."""
    labels = np.zeros((3, 2, 2), np.uint8)
    m = np.array([[True, False], [False, False]])
    out = np.asarray(fn(labels.copy(), {5: (1, m)}))
    assert out[1, 0, 0] == 5, "the given mask is painted on its frame (t = 1)"
    assert out[0].sum() == 0 and out[2].sum() == 0, "only on its own frame, not on the others"
    assert out[1].sum() == 5, "only where the mask is True"
    # predicted: object 5 on the right column of every frame, object 7 top left on frame 1
    labels[:, :, 1] = 5
    labels[1, 0, 0] = 7
    out = np.asarray(fn(labels.copy(), {5: (1, m)}))
    assert out[1, 0, 0] == 5, "inside its given mask the object wins over another one (7)"
    assert (out[1, :, 1] == 0).all(), (
        "on its given frame the object is exactly its mask: its predicted pixels outside the "
        "mask become background"
    )
    assert (out[[0, 2], :, 1] == 5).all(), "its predictions on the other frames stay"
    return 2


@exercise
def check_scored_frames(fn: Callable) -> int:
    """``fn(t_given, n_frames, score_first=False) -> list of scored frame indices``."""
    assert list(fn(0, 4)) == [1, 2, 3], "given on frame 0 of 4: frames 1, 2, 3 are scored"
    assert list(fn(2, 4)) == [3], "a late object (given on frame 2) is scored after it only"
    assert list(fn(3, 4)) == [], "given on the last frame: nothing left to score"
    assert list(fn(2, 4, score_first=True)) == [2, 3], "score_first includes the given frame"
    return 4


# --- 06 -------------------------------------------------------------------------------------
@exercise
def check_jaccard(fn: Callable) -> int:
    """``fn(pred (T, H, W) bool, gt) -> (T,)`` J per frame, 1 where both are empty."""
    gt = np.zeros((4, 2, 2), bool)
    gt[:3, 0, :] = True  # two pixels on frames 0-2
    pred = np.zeros_like(gt)
    pred[0] = gt[0]  # exact
    pred[1, 0, 0] = pred[1, 1, 0] = True  # 1 of 3 pixels in the union overlap
    got = fn(pred, gt)
    _close(
        got,
        [1.0, 1 / 3, 0.0, 1.0],
        "frames: exact, partial, empty prediction (J = 0), both empty (J = 1)",
    )
    return 4


@exercise
def check_f_measure(fn: Callable) -> int:
    """``fn(precision, recall) -> F``: their harmonic mean, 0 when both are 0."""
    _close(fn(1.0, 1.0), 1.0, "perfect boundaries")
    _close(fn(1.0, 0.5), 2 / 3, "harmonic, not arithmetic, mean: 2PR / (P + R)")
    _close(fn(0.0, 0.0), 0.0, "no boundary matched at all: F = 0 (not a division by zero)")
    return 3
