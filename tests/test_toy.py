"""The toy of notebook 02: a blob hidden for two frames, followed with and without memory."""

import torch

from vostutorial.toy import BlobTracker, iou_per_frame, moving_blobs, train_toy


def test_moving_blobs_hide_the_input_but_never_the_target():
    x, y = moving_blobs(4, frames=10, size=20, occluded=(4, 6), seed=1)
    assert x.shape == y.shape == (4, 10, 1, 20, 20)
    assert x[:, 4:6].sum() == 0 and (y[:, 4:6].sum(dim=(2, 3, 4)) > 0).all()
    assert torch.equal(x[:, :4], y[:, :4]) and torch.equal(x[:, 6:], y[:, 6:])
    centre = [(y[0, t, 0].nonzero().float().mean(0)) for t in (0, 1)]
    assert (centre[1] - centre[0]).norm() > 0.5  # it moves


def test_iou_per_frame_by_hand():
    targets = torch.zeros(1, 2, 1, 4, 4)
    targets[0, :, 0, :2, :2] = 1  # 4 pixels
    logits = torch.full_like(targets, -1.0)
    logits[0, 0, 0, :2, :] = 1  # frame 0: 8 predicted, 4 right -> 0.5
    iou = iou_per_frame(logits, targets)  # frame 1: nothing predicted -> 0
    assert torch.allclose(iou, torch.tensor([0.5, 0.0]))
    assert iou_per_frame(torch.full_like(targets, -1.0), torch.zeros_like(targets))[0] == 1


def test_memory_carries_the_blob_through_the_occlusion():
    torch.manual_seed(0)
    x, y = moving_blobs(64, frames=8, size=16, occluded=(4, 6), seed=0)
    models = {m: BlobTracker(hidden=8, memory=m) for m in (True, False)}
    losses = {m: train_toy(models[m], x, y, steps=80, batch=16, lr=1e-2) for m in models}
    assert all(losses[m][-1] < losses[m][0] for m in models)
    tx, ty = moving_blobs(32, frames=8, size=16, occluded=(4, 6), seed=5)
    with torch.no_grad():
        hidden = {m: iou_per_frame(models[m](tx), ty)[4:6].mean() for m in models}
    assert hidden[False] < 0.05  # without memory a blank frame gives nothing
    assert hidden[True] > hidden[False] + 0.1
    _, gates = models[True](tx[:2], return_gates=True)
    assert len(gates) == 8 and set(gates[0]) == {"i", "f", "g", "o"}
