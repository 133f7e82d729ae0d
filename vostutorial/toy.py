"""A toy problem for the ConvLSTM: follow a moving blob through an occlusion.

Each sequence shows one disc moving in a straight line, bouncing off the borders. For a few
frames in the middle the input goes blank (the blob is occluded), but the target still is where
the blob really is. A network that sees one frame at a time cannot know; one with memory can
carry the blob's position and velocity through the gap.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .models.convlstm import ConvLSTMCell


def moving_blobs(
    n: int,
    frames: int = 12,
    size: int = 24,
    radius: float = 3.0,
    occluded: tuple[int, int] = (5, 7),
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """``n`` sequences: inputs and targets, both ``(n, T, 1, size, size)`` float in {0, 1}.

    Frames ``occluded[0] .. occluded[1] - 1`` of the input are blank; targets never are.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    pos = rng.uniform(radius, size - radius, (n, 2))
    angle = rng.uniform(0, 2 * np.pi, n)
    vel = rng.uniform(1.0, 2.0, (n, 1)) * np.stack([np.cos(angle), np.sin(angle)], 1)
    masks = np.zeros((n, frames, 1, size, size), np.float32)
    for t in range(frames):
        masks[:, t, 0] = (yy[None] - pos[:, :1, None]) ** 2 + (
            xx[None] - pos[:, 1:, None]
        ) ** 2 <= radius**2
        pos = pos + vel
        for k in range(2):  # bounce off the walls
            low, high = pos[:, k] < radius, pos[:, k] > size - 1 - radius
            vel[low | high, k] *= -1
            pos[:, k] = np.clip(pos[:, k], radius, size - 1 - radius)
    inputs = masks.copy()
    inputs[:, occluded[0] : occluded[1]] = 0
    return torch.from_numpy(inputs), torch.from_numpy(masks)


class BlobTracker(nn.Module):
    """conv -> ConvLSTM -> 1x1 conv, mapping ``(B, T, 1, H, W)`` inputs to logits of the same
    shape. With ``memory=False`` the ConvLSTM's state is reset to zero at every frame: the same
    layers and parameters, but no recurrence."""

    def __init__(self, hidden: int = 16, kernel_size: int = 5, memory: bool = True):
        super().__init__()
        self.memory = memory
        self.embed = nn.Sequential(nn.Conv2d(1, hidden, 3, padding=1), nn.ReLU())
        self.cell = ConvLSTMCell(hidden, hidden, kernel_size)
        self.head = nn.Conv2d(hidden, 1, 1)

    def forward(
        self, x: Tensor, return_gates: bool = False
    ) -> Tensor | tuple[Tensor, list[dict[str, Tensor]]]:
        state, outs, gates = None, [], []
        for t in range(x.shape[1]):
            e = self.embed(x[:, t])
            if state is None or not self.memory:
                state = self.cell.zero_state(e)
            if return_gates:
                gates.append({k: v.detach() for k, v in self.cell.gate_values(e, state).items()})
            state = self.cell(e, state)
            outs.append(self.head(state[0]))
        logits = torch.stack(outs, dim=1)
        return (logits, gates) if return_gates else logits


def train_toy(
    model: nn.Module,
    inputs: Tensor,
    targets: Tensor,
    steps: int = 300,
    batch: int = 32,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Adam on binary cross-entropy over random mini-batches; returns the loss per step."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        idx = torch.randint(len(inputs), (batch,), generator=g)
        loss = nn.functional.binary_cross_entropy_with_logits(model(inputs[idx]), targets[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def iou_per_frame(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean IoU over sequences at each frame: ``(T,)`` from ``(B, T, 1, H, W)``."""
    pred, gt = logits > 0, targets > 0.5
    inter = (pred & gt).sum(dim=(2, 3, 4)).float()
    union = (pred | gt).sum(dim=(2, 3, 4)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean(0)
