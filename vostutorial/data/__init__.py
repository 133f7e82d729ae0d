"""Datasets: the YouTube-VOS and DAVIS layouts, training clips, and the synthetic dataset."""

from .davis import DavisSequences
from .palette import PALETTE, davis_palette, read_image, read_mask, write_image, write_mask
from .synthetic import SEEN, UNSEEN, SynthConfig, ensure_default, generate
from .ytvos import (
    ObjectInfo,
    VideoInfo,
    VideoSample,
    YTVOSSplit,
    first_appearance_masks,
    load_meta,
    write_meta,
)

__all__ = [
    "PALETTE",
    "PAPER_SIZE",
    "SEEN",
    "UNSEEN",
    "ClipDataset",
    "DavisSequences",
    "ObjectInfo",
    "SynthConfig",
    "VideoInfo",
    "VideoSample",
    "YTVOSSplit",
    "clip_transform",
    "davis_palette",
    "ensure_default",
    "first_appearance_masks",
    "generate",
    "load_meta",
    "read_image",
    "read_mask",
    "write_image",
    "write_mask",
    "write_meta",
]


def __getattr__(name: str) -> object:
    # torch takes seconds to import: load the clip dataset only when it is asked for, so the
    # data scripts and `vostutorial check-data` start fast.
    if name in ("ClipDataset", "clip_transform", "PAPER_SIZE"):
        from . import clips

        return getattr(clips, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
