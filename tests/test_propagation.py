"""Training-free label propagation (`vostutorial.propagation`)."""

import numpy as np
import pytest
import torch

from vostutorial.fast import nearest_in_window
from vostutorial.metrics import jaccard
from vostutorial.models.matching import WindowNeighbours, nearest, similarity, window
from vostutorial.predictions import baseline_predictions
from vostutorial.propagation import propagate_labels, propagate_soft, propagate_step


def colour_trunk() -> torch.nn.Module:
    """A stand-in for VGG16 whose features are a pixel's colour, pooled to 1/4: enough to tell
    objects of different colours apart."""
    return torch.nn.AvgPool2d(4)


def two_squares(t: int = 8, h: int = 64, w: int = 96):
    """A red square moving right and, from frame 3, a green one moving left, on grey."""
    frames = np.full((t, h, w, 3), 90, np.uint8)
    ids = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        ids[i, 8:28, 8 + 4 * i : 28 + 4 * i] = 1
        if i >= 3:
            ids[i, 36:56, 70 - 3 * i : 90 - 3 * i] = 2
    frames[ids == 1] = (220, 30, 30)
    frames[ids == 2] = (30, 200, 40)
    return frames, ids


def test_each_pixel_takes_the_labels_of_its_most_similar_memory_cells():
    feats = torch.nn.functional.normalize(torch.randn(8, 3, 4), dim=0)  # (C, h, w)
    labels = torch.eye(3)[torch.randint(0, 3, (12,))].T  # (L, P) one-hot
    everywhere = WindowNeighbours(radius=5, k=1, temperature=0.05)  # every cell in reach
    out = propagate_step(feats, [(feats, labels)], everywhere)
    torch.testing.assert_close(out, labels)  # its own cell is the most similar one
    # a second memory frame: indices past its first P cells carry the second frame's labels
    shuffled = labels[:, torch.randperm(12)]
    out = propagate_step(feats, [(-feats, labels), (feats, shuffled)], everywhere)
    torch.testing.assert_close(out, shuffled)
    far = window(3, 4, radius=0)  # only the cell itself in reach
    assert far.sum() == 12 and far.diagonal().all()


def test_soft_labels_share_each_pixel_and_their_argmax_is_the_label():
    frames, ids = two_squares()
    given = {1: (0, ids[0] == 1), 2: (3, ids[3] == 2)}
    soft = propagate_soft(colour_trunk(), frames, given, size=(64, 96), radius=3)
    assert soft.shape == (8, 3, 64, 96)  # background, then objects 1 and 2
    torch.testing.assert_close(soft.sum(1), torch.ones(8, 64, 96))  # a share of one vote
    assert soft[:3, 2].max() == 0  # object 2 has no share before its frame
    labels = propagate_labels(colour_trunk(), frames, given, size=(64, 96), radius=3)
    given_pixels = np.zeros(ids.shape, bool)
    given_pixels[0], given_pixels[3] = ids[0] == 1, ids[3] == 2
    best = soft.argmax(1).numpy().astype(np.uint8)  # channel j is object id j here
    assert (best == labels)[~given_pixels].all()
    # on its given frame an object is exactly its mask, even a hole in it that the vote's
    # cells (4x4 pixels here, 15 of 16 of it object) fill
    mask = ids[0] == 1
    mask[17, 17] = False
    labels = propagate_labels(colour_trunk(), frames, {1: (0, mask)}, size=(64, 96), radius=3)
    assert (labels[0] == np.where(mask, 1, 0)).all()
    assert (soft[4:, 1] > 0.5).numpy().sum() > 0.75 * (ids[4:] == 1).sum()


def test_objects_are_followed_and_a_late_object_joins_on_its_frame():
    frames, ids = two_squares()
    given = {1: (0, ids[0] == 1), 2: (3, ids[3] == 2)}
    out = propagate_labels(colour_trunk(), frames, given, size=(64, 96), radius=3)
    assert out.shape == ids.shape and out.dtype == np.uint8
    assert (out[:3] == 2).sum() == 0  # not before it is given
    for oid in (1, 2):
        j = jaccard(out[4:] == oid, ids[4:] == oid)
        assert j.min() > 0.75, (oid, j)
    # a window too small for the motion loses the fast square
    lost = propagate_labels(colour_trunk(), frames, given, size=(64, 96), radius=0, recent=1)
    assert jaccard(lost[-1] == 1, ids[-1] == 1) < 0.5


@pytest.mark.parametrize(
    ("h", "w", "frames", "radius", "k", "tile"),
    [(13, 21, 3, 3, 5, 4), (10, 10, 1, 2, 4, 8), (7, 9, 2, 1, 3, 3), (17, 19, 3, 5, 10, 8)],
)
def test_the_tiled_window_finds_the_same_neighbours_as_the_masked_dense_one(
    h, w, frames, radius, k, tile
):
    # sizes that are no multiple of the tile, windows cut by every edge, one to three frames
    torch.manual_seed(h * w)
    unit = torch.nn.functional.normalize
    query, keys = unit(torch.randn(16, h, w), dim=0), unit(torch.randn(frames, 16, h, w), dim=1)
    flat_keys = keys.permute(1, 0, 2, 3).reshape(16, -1)  # (C, M*h*w), frame after frame
    near = window(h, w, radius).repeat(1, frames)
    weights, _ = nearest(query.flatten(1)[None], flat_keys[None], near, k, 0.05)
    fast_sims, fast_idx = nearest_in_window(query, keys, radius, k, tile=tile)
    fast_weights = torch.softmax(fast_sims / 0.05, dim=-1)
    # the cells found are inside the window (-2 outside) and as similar as the best k there;
    # values, not indices: random features have near-equal cells that another float kernel's
    # rounding may order otherwise (two at 1e-7 apart, even equal, at some seeds of this test)
    sims = similarity(query.flatten(1)[None], flat_keys[None], near)  # (1, h*w, M*h*w)
    torch.testing.assert_close(sims.gather(2, fast_idx), sims.topk(k, dim=2).values)
    torch.testing.assert_close(fast_weights, weights)


def test_fast_propagation_labels_the_video_as_the_plain_one():
    frames, ids = two_squares()
    noise = np.random.default_rng(0).integers(-4, 5, frames.shape)  # no exact ties to break
    frames = (frames + noise).astype(np.uint8)
    given = {1: (0, ids[0] == 1), 2: (3, ids[3] == 2)}
    runs = [
        propagate_labels(colour_trunk(), frames, given, size=(64, 96), radius=3, fast=fast)
        for fast in (False, True)
    ]
    assert np.array_equal(*runs)


def test_an_unknown_baseline_is_named(synth_root, tmp_path):
    with pytest.raises(ValueError, match="label-propagation"):
        baseline_predictions(synth_root, "valid", tmp_path / "p", method="nearest")


def test_a_long_clip_keeps_only_the_remembered_frames_features():
    import gc
    import weakref

    from vostutorial import propagation

    frames, ids = two_squares(t=12)
    made, alive = [], []  # a weak reference to every frame's features, how many live per call
    extract = propagation.frame_features

    def counting(trunk, x, size):
        gc.collect()
        alive.append(sum(r() is not None for r in made))
        feats = extract(trunk, x, size)[0]  # the (C, h, w) map that propagate_soft keeps
        made.append(weakref.ref(feats))
        return [feats]  # indexed [0] as the real one is

    mp = pytest.MonkeyPatch()
    mp.setattr(propagation, "frame_features", counting)
    try:
        soft = propagate_soft(colour_trunk(), frames, {1: (0, ids[0] == 1)}, recent=2)
    finally:
        mp.undo()
    assert len(made) == 12  # one per frame, each computed once
    # when a frame's features are made, at most frame 0, the 2 before it and the one that just
    # left the memory are held (all 11 earlier ones if none were dropped)
    assert max(alive) == 1 + 2 + 1, alive
    torch.testing.assert_close(soft, propagate_soft(colour_trunk(), frames, {1: (0, ids[0] == 1)}))
