"""Running a trained model over whole videos."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .data.ytvos import VideoSample
from .models.s2s import S2S


def _to_tensor(frames: np.ndarray, size: tuple[int, int], device) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(1, T, 3, h, w)`` float in [0, 1] at the model's size."""
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2).float() / 255
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)[None]


@torch.inference_mode()
def predict_objects(
    model: S2S,
    sample: VideoSample,
    size: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> dict[int, np.ndarray]:
    """Foreground probability of every object on every frame, at the video's resolution.

    Each object starts at the frame where its mask is given and runs to the end; objects that
    start on the same frame go through the network together as one batch, sharing the frames'
    encoding. Returns ``{object_id: (T, H, W) float32}``, zero before the object's first frame.
    """
    model.eval()
    size = size or model.cfg.input_size
    t_all, h, w = sample.frames.shape[:3]
    frames = _to_tensor(sample.frames, size, device)
    out: dict[int, np.ndarray] = {}
    by_start: dict[int, list[int]] = {}
    for oid, (t0, _) in sample.first_masks.items():
        by_start.setdefault(t0, []).append(oid)
    for t0, oids in sorted(by_start.items()):
        masks = torch.stack([torch.from_numpy(sample.first_masks[o][1]) for o in oids])
        masks = F.interpolate(masks[:, None].float().to(device), size=size, mode="nearest")
        logits = model(frames[:, t0:], masks)  # (K, T - t0, 1, h', w')
        logits = F.interpolate(
            logits.flatten(0, 1), size=(h, w), mode="bilinear", align_corners=False
        ).view(len(oids), -1, h, w)
        probs = torch.sigmoid(logits).cpu().numpy()
        for k, oid in enumerate(oids):
            full = np.zeros((t_all, h, w), np.float32)
            full[t0:] = probs[k]
            out[oid] = full
    return out
