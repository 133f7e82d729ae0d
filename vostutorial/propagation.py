"""Label propagation on pretrained features: the strongest method that learns nothing.

Each pixel of frame t looks for the pixels most like it, in a pretrained VGG16's features,
among the first frame (whose labels are given) and the last few frames (whose labels it
predicted), and takes a softmax-weighted vote of their labels (`models.matching` holds the
vote and its equation). Labels are soft, over background and the K objects, ``(K + 1)`` values
per pixel. The first frame anchors the object's appearance; the recent frames follow it as it
changes. This is the core of memory networks (STM, XMem) with the learning taken out: their
keys are learnt features, their readout a learnt decoder. ``s2s-vgg16`` uses the same vote as
one of its cues (`models.tracking`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from .fast import TiledNeighbours
from .models.matching import WindowNeighbours, vote
from .models.pretrained import IMAGENET_MEAN, IMAGENET_STD, pretrained_vgg16

BLOCK3 = 16  # vgg16().features[:16]: through conv3_3 and its ReLU, 256 channels at 1/4


def feature_extractor(source: str = "hed", layers: int = BLOCK3) -> torch.nn.Sequential:
    """The first ``layers`` modules of a pretrained VGG16 (`models.pretrained_vgg16`)."""
    return pretrained_vgg16(source)[:layers].eval()


@torch.inference_mode()
def frame_features(
    trunk: torch.nn.Module, frames: np.ndarray, size: tuple[int, int]
) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> L2-normalised features ``(T, C, h, w)`` at input ``size``."""
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return F.normalize(trunk((x - mean) / std), dim=1)


def propagate_step(
    query: torch.Tensor,
    memory: list[tuple[torch.Tensor, torch.Tensor]],
    neighbours: WindowNeighbours,
) -> torch.Tensor:
    """Soft labels ``(L, h*w)`` of one frame's features ``(C, h, w)`` from memory frames
    ``[(features (C, h, w), soft labels (L, h*w))]``, each pixel voting over its nearest cells
    within the window of ``neighbours`` (`models.matching.WindowNeighbours`)."""
    keys = torch.stack([f for f, _ in memory])  # (M, C, h, w)
    labels = torch.cat([y for _, y in memory], dim=1)  # (L, M*h*w), frame after frame
    weights, idx = neighbours(query, keys)
    return vote(labels[None], weights, idx)[0]


@torch.inference_mode()
def propagate_soft(
    trunk: torch.nn.Module,
    frames: np.ndarray,
    given: dict[int, tuple[int, np.ndarray]],
    size: tuple[int, int] = (240, 432),
    k: int = 10,
    temperature: float = 0.05,
    radius: int = 12,
    recent: int = 2,
    fast: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Soft labels ``(T, K + 1, H, W)`` of a video ``(T, H, W, 3)`` from the given masks
    ``{object_id: (frame, (H, W) bool)}``: each pixel's share of the vote for background
    (channel 0) and for the K objects in ascending id order, bilinearly resized to the
    video's size; an object has none before its frame. `propagate_labels` takes their argmax;
    an object's channel is also a probability map that can be merged with a model's.

    Features of ``trunk`` at input ``size``; each frame votes from the first frame and the
    ``recent`` frames before it (`propagate_step`). An object given on a later frame joins
    there: its mask is written into that frame's labels, which then serve as memory.
    ``fast`` finds the same neighbours tile by tile (`fast.TiledNeighbours`); ``progress``
    shows a bar per frame."""
    t, hgt, wid = frames.shape[:3]
    ids = sorted(given)
    # (C, h, w) per frame, computed when its turn comes and dropped once out of the memory:
    # a long clip holds 1 + recent + 1 frames' features, not all of them
    feats = {0: frame_features(trunk, frames[:1], size)[0]}
    _, h, w = feats[0].shape
    neighbours = (TiledNeighbours if fast else WindowNeighbours)(radius, k, temperature)
    labels = torch.zeros(t, len(ids) + 1, h * w)  # soft labels per frame, background first
    for t_now in tqdm(range(t), desc="propagate", unit="frame", disable=not progress):
        if t_now == 0:
            labels[0, 0] = 1.0  # background, until a given mask says otherwise
        else:  # the first frame and the `recent` ones before this one
            feats[t_now] = frame_features(trunk, frames[t_now : t_now + 1], size)[0]
            remembered = sorted({0, *range(max(0, t_now - recent), t_now)})
            memory = [(feats[i], labels[i]) for i in remembered]
            labels[t_now] = propagate_step(feats[t_now], memory, neighbours)
            if t_now - recent > 0:  # the next frame remembers 0 and the `recent` before it
                del feats[t_now - recent]
        for j, oid in enumerate(ids, 1):  # masks given on this frame override the vote
            t0, mask = given[oid]
            if t0 == t_now:
                m = torch.from_numpy(mask.astype(np.float32))[None, None]
                m = F.adaptive_avg_pool2d(m, (h, w)).flatten()
                labels[t_now] *= 1 - m
                labels[t_now, j] += m
    return F.interpolate(labels.view(t, -1, h, w), size=(hgt, wid), mode="bilinear")


def propagate_labels(
    trunk: torch.nn.Module,
    frames: np.ndarray,
    given: dict[int, tuple[int, np.ndarray]],
    **options: object,
) -> np.ndarray:
    """Id maps ``(T, H, W)`` uint8 for a video ``(T, H, W, 3)`` from the given masks
    ``{object_id: (frame, (H, W) bool)}``: each pixel takes the most voted of background and
    the objects (`propagate_soft`; ``options`` are its keywords), and the given masks are
    kept as they are on their frames."""
    soft = propagate_soft(trunk, frames, given, **options)
    out = np.concatenate([[0], sorted(given)]).astype(np.uint8)[soft.argmax(1).numpy()]
    for oid, (t0, mask) in given.items():  # its frame shows the given mask, no more, no less
        out[t0][out[t0] == oid] = 0
        out[t0][mask] = oid
    return out
