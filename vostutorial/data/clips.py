"""Training clips for the sequence-to-sequence model, and their joint augmentation.

A clip is T consecutive stored frames of one video starting at a random frame where the
object is annotated, optionally skipping frames at random (stride 1..``max_skip``), with the
first frame's mask of that object as the initializer's input and its binary masks on the
following frames as targets.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .ytvos import YTVOSSplit

PAPER_SIZE = (256, 448)  # H, W of the paper's training crops


def clip_transform(size: tuple[int, int], augment: bool) -> v2.Transform:
    """Resize (with random scale crop and flip when ``augment``) applied jointly to a clip.

    Called as ``frames, masks = t(tv_tensors.Video(frames), tv_tensors.Mask(masks))`` with
    frames ``(T, 3, H, W)`` uint8 and masks ``(T, H, W)``: one set of random parameters for
    every frame and mask of the clip, so they stay aligned. Colour jitter touches frames only.
    """
    if not augment:
        return v2.Resize(size, antialias=True)
    return v2.Compose(
        [
            v2.RandomResizedCrop(size, scale=(0.5, 1.0), ratio=(1.4, 2.1), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(brightness=0.25, contrast=0.25, saturation=0.25, hue=0.03),
        ]
    )


class ClipDataset(Dataset):
    """Clips of (video, object) pairs from a fully annotated split (train).

    Each item is a dict:
      - ``frames``: ``(T, 3, H, W)`` float32 in [0, 1]
      - ``first_mask``: ``(1, H, W)`` float32, the object's mask on frame 0 (the input)
      - ``masks``: ``(T, 1, H, W)`` float32, its masks on every frame (targets: 1..T-1)
      - ``video`` (str), ``object`` (int), ``frame_names`` (list of T str)

    One epoch visits every (video, object) pair ``repeats`` times; the start frame and skip
    are drawn from ``torch``'s RNG so DataLoader workers and seeds behave as usual.
    """

    def __init__(
        self,
        split: YTVOSSplit,
        clip_len: int = 5,
        size: tuple[int, int] = PAPER_SIZE,
        max_skip: int = 1,
        augment: bool = True,
        repeats: int = 1,
    ):
        if clip_len < 2:
            raise ValueError("clip_len must be at least 2 (one input frame, one target)")
        self.split, self.clip_len, self.size = split, clip_len, tuple(size)
        self.max_skip, self.repeats = max_skip, repeats
        self.transform = clip_transform(self.size, augment)
        for video in split.videos:
            split.require_frames(video)
        self.pairs = [
            (v, oid)
            for v, info in split.videos.items()
            for oid, obj in info.objects.items()
            if self._starts(info.frames, obj.frames, 1)
        ]
        if not self.pairs:
            raise ValueError(
                f"{split.dir}: no object is annotated on a frame followed by {clip_len - 1} "
                "more frames; use a shorter clip_len or a fully annotated split (train)"
            )

    def _starts(self, frames: list[str], obj_frames: list[str], skip: int) -> list[int]:
        """Indices where a clip of ``clip_len`` frames with stride ``skip`` can start."""
        present = set(obj_frames)
        last = len(frames) - (self.clip_len - 1) * skip
        return [i for i in range(max(0, last)) if frames[i] in present]

    def __len__(self) -> int:
        return len(self.pairs) * self.repeats

    def __getitem__(self, index: int) -> dict:
        video, oid = self.pairs[index % len(self.pairs)]
        info = self.split.videos[video]
        skip = int(torch.randint(1, self.max_skip + 1, ()).item())
        starts = self._starts(info.frames, info.objects[oid].frames, skip)
        if not starts:  # this object's frames do not fit a clip this sparse: fall back
            skip, starts = 1, self._starts(info.frames, info.objects[oid].frames, 1)
        start = starts[int(torch.randint(len(starts), ()).item())]
        names = info.frames[start : start + (self.clip_len - 1) * skip + 1 : skip]
        imgs = [self.split.frame(video, f) for f in names]
        masks = [
            self.split.ground_truth(video, f, imgs[i].shape) == oid for i, f in enumerate(names)
        ]
        frames = tv_tensors.Video(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2))
        mask_t = tv_tensors.Mask(torch.from_numpy(np.stack(masks)).to(torch.uint8))
        for _ in range(5):  # a crop may cut the object out of frame 0: draw again
            f_out, m_out = self.transform(frames, mask_t)
            if m_out[0].any():
                break
        else:
            f_out, m_out = v2.Resize(self.size, antialias=True)(frames, mask_t)
        m = m_out.as_subclass(torch.Tensor).float().unsqueeze(1)
        return {
            "frames": f_out.as_subclass(torch.Tensor).float() / 255.0,
            "first_mask": m[0],
            "masks": m,
            "video": video,
            "object": oid,
            "frame_names": names,
        }
