"""Label propagation in feature space (`vostutorial.models.matching`) and the model cue built
on it (``propagation`` of `vostutorial.models.tracking`)."""

import copy

import pytest
import torch

from vostutorial.fast import TiledNeighbours, speed_up
from vostutorial.models import build_model
from vostutorial.models.config import VGG16_CONVS, VGG16_WIDTHS
from vostutorial.models.matching import (
    WindowNeighbours,
    closest_of_two,
    nearest,
    softmax_weights,
    vote,
    window,
)


def test_nearest_and_vote_equal_a_cell_by_cell_loop():
    torch.manual_seed(0)
    h, w, c, k, temp = 4, 5, 8, 3, 0.1
    q = torch.nn.functional.normalize(torch.randn(2, c, h * w), dim=1)
    keys = torch.nn.functional.normalize(torch.randn(2, c, h * w), dim=1)
    labels = torch.rand(2, 2, h * w)
    allowed = window(h, w, radius=1)
    weights, idx = nearest(q, keys, allowed, k, temp)
    got = vote(labels, weights, idx)
    for n in range(2):
        for p in range(h * w):
            py, px = divmod(p, w)
            cand = [
                (float(q[n, :, p] @ keys[n, :, j]), j)
                for j in range(h * w)
                if abs(j // w - py) <= 1 and abs(j % w - px) <= 1  # the 3x3 window
            ]
            best = sorted(cand, reverse=True)[:k]
            wts = torch.softmax(torch.tensor([s for s, _ in best]) / temp, dim=0)
            want = sum(wt * labels[n, :, j] for wt, (_, j) in zip(wts, best, strict=True))
            torch.testing.assert_close(got[n, :, p], want)


def test_one_set_of_neighbours_serves_several_objects():
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(1, 4, 12), dim=1)
    weights, idx = nearest(q, q, window(3, 4, 5), 2, 0.05)
    labels = torch.rand(3, 1, 12)  # three objects' labels on the same cells
    together = vote(labels, weights, idx)
    apart = torch.cat([vote(labels[i : i + 1], weights, idx) for i in range(3)])
    torch.testing.assert_close(together, apart)
    assert together.shape == (3, 1, 12)


def moving_square(t: int = 4, size: tuple[int, int] = (64, 96)) -> tuple[torch.Tensor, list]:
    """A red square with a texture of its own, 16 px, moving 8 px right per frame over a
    fixed green-grey textured background; returns frames ``(1, T, 3, H, W)`` and boxes."""
    torch.manual_seed(1)
    hgt, wid = size
    back = 0.4 + 0.1 * torch.rand(3, hgt, wid)
    back[1] += 0.2
    patch = torch.rand(3, 16, 16) * 0.3
    patch[0] += 0.7
    frames, boxes = [], []
    for i in range(t):
        f = back.clone()
        y, x = 24, 16 + 8 * i
        f[:, y : y + 16, x : x + 16] = patch
        frames.append(f)
        boxes.append((y, x))
    return torch.stack(frames)[None], boxes


# s2s-vgg16's trunk (to conv3_3) and the whole of VGG16's (to conv5_3 and its pool, with
# tiny's cues): the cue reads conv3_3 in both
WHOLE_VGG16 = dict(widths=VGG16_WIDTHS, convs=VGG16_CONVS, frozen_trunk=True, propagation=True)


@pytest.mark.parametrize(("config", "changes"), [("s2s-vgg16", {}), ("tiny", WHOLE_VGG16)])
def test_the_cue_finds_the_object_where_it_moved_on_the_pretrained_trunk(config, changes):
    model = build_model(config, input_size=(64, 96), **changes).eval()
    frames, boxes = moving_square()
    first = torch.zeros(1, 1, 64, 96)
    y, x = boxes[0]
    first[..., y : y + 16, x : x + 16] = 1
    with torch.no_grad():
        _, _, _, keys = model.encode_with_skips(frames)
        near = model.propagation_neighbours(keys, 1, 4)
        assert near.grid == (16, 24)  # conv3_3: 1/4
        for i in (1, 2, 3):  # the previous mask given exactly, to test the first-frame vote
            prev = torch.zeros_like(first)
            py, px = boxes[i - 1]
            prev[..., py : py + 16, px : px + 16] = 1
            votes = model.propagation_votes(near, i, first, prev)[0]  # (2, 16, 24)
            y, x = (v // 4 for v in boxes[i])
            inside = votes[:, y + 1 : y + 3, x + 1 : x + 3]  # the square's inner cells now
            outside = votes.clone()
            outside[:, max(0, y - 2) : y + 6, max(0, x - 4) : x + 6] = 0  # away from it
            assert (inside > 0.5).all(), (i, inside)
            assert outside.max() < 0.2


def test_propagation_needs_a_frozen_trunk_and_feedback():
    with pytest.raises(ValueError, match="propagation needs"):
        build_model("tiny", propagation=True)
    with pytest.raises(ValueError, match="first 3 stages"):
        build_model("s2s-vgg16", widths=VGG16_WIDTHS[:2], convs=VGG16_CONVS[:2], decoder=(8, 8))
    with pytest.raises(ValueError, match="propagation needs"):
        build_model("s2s-vgg16", feedback=False)


@pytest.mark.parametrize(("config", "changes"), [("s2s-vgg16", {}), ("tiny", WHOLE_VGG16)])
def test_the_cue_models_fast_path_equals_the_plain_one(config, changes):
    torch.manual_seed(0)
    model = build_model(config, input_size=(64, 96), **changes)
    torch.nn.init.normal_(model.decoder.out.weight, std=0.05)  # feedback starts it at zero
    frames, _ = moving_square(3)
    masks = torch.zeros(2, 1, 64, 96)
    masks[0, :, 10:30, 20:50] = 1
    masks[1, :, 35:60, 50:90] = 1
    logits = model(frames.expand(2, -1, -1, -1, -1), masks)
    logits.sum().backward()  # every learnt parameter takes part, the trunk none
    for name, p in model.named_parameters():
        assert (p.grad is not None) == p.requires_grad, name
    with torch.no_grad():
        plain = model(frames, masks)
    fast = speed_up(copy.deepcopy(model))
    with torch.inference_mode():
        quick = fast(frames, masks)
    torch.testing.assert_close(quick, plain, atol=1e-4, rtol=1e-4)


def test_the_tiled_neighbour_search_equals_the_plain_one_on_a_large_grid():
    # 30x41 cells: several tiles, the last ones cut; two key frames, frame after frame
    torch.manual_seed(1)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s), dim=-3)  # noqa: E731
    query, keys = unit(16, 30, 41), unit(2, 16, 30, 41)
    plain, tiled = WindowNeighbours(5, 6, 0.05), TiledNeighbours(5, 6, 0.05)
    (wp, ip), (wt, it) = plain(query, keys), tiled(query, keys)
    assert ip.shape == it.shape == (1, 30 * 41, 6)
    torch.testing.assert_close(wt, wp)
    # the cells found are as similar as the plain search's (indices may differ only at ties)
    flat = keys.transpose(0, 1).reshape(16, -1)
    q = query.reshape(16, -1)
    sim = lambda i: (q[:, :, None] * flat[:, i[0]]).sum(0)  # noqa: E731
    torch.testing.assert_close(sim(it), sim(ip))
    assert (it // (30 * 41) <= 1).all() and ((it == ip).float().mean() > 0.99)


def test_two_searches_joined_find_what_one_search_over_both_frames_finds():
    # how the propagation cue searches frame 0 and the previous frame: once each, then joined
    torch.manual_seed(2)
    unit = lambda *s: torch.nn.functional.normalize(torch.randn(*s), dim=-3)  # noqa: E731
    query, keys = unit(16, 9, 11), unit(2, 16, 9, 11)
    near = WindowNeighbours(3, 6, 0.05)
    sims, idx = near.closest(query, keys)
    in_first, in_second = near.closest(query, keys[:1]), near.closest(query, keys[1:])
    joined_sims, joined_idx = closest_of_two(in_first, in_second, 9 * 11, 6)
    torch.testing.assert_close(joined_sims, sims)
    assert (joined_idx >= 9 * 11).any() and (joined_idx < 9 * 11).any()  # from both frames
    assert (joined_idx == idx).float().mean() > 0.99  # the same cells (but near-ties)
    # weights as the one search's, which a search of the first frame alone does not give
    torch.testing.assert_close(softmax_weights(joined_sims, 0.05), near(query, keys)[0])
    # the same frame searched twice (frame 1's previous frame is frame 0): cells in pairs
    twice_sims, twice_idx = closest_of_two(in_first, in_first, 9 * 11, 6)
    torch.testing.assert_close(twice_sims, in_first[0].repeat_interleave(2, dim=-1)[..., :6])
    assert torch.equal(twice_idx[..., 0::2] + 9 * 11, twice_idx[..., 1::2])
