"""The DAVIS layout: ``<root>/JPEGImages/480p/<seq>/*.jpg`` and ``Annotations/480p/<seq>/*.png``.

DAVIS 2016 masks are 8-bit grayscale 0/255 (one object, read as id 1); DAVIS 2017 masks are
palette PNGs with ids 1..K and 255 for "void" pixels on some frames.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..files import check_name
from .palette import mask_mode, read_image, read_mask
from .ytvos import VideoSample, sort_frames


class DavisSequences:
    """The sequences of a DAVIS folder at one resolution (``480p`` or ``Full-Resolution``)."""

    def __init__(self, root: str | os.PathLike, resolution: str = "480p"):
        self.root = Path(root)
        check_name(resolution, "resolution", "--resolution")
        self.frame_dir = self.root / "JPEGImages" / resolution
        self.mask_dir = self.root / "Annotations" / resolution
        for d in (self.frame_dir, self.mask_dir):
            if not d.is_dir():
                raise ValueError(
                    f"{d}: not found; expected a DAVIS folder with JPEGImages/{resolution} and "
                    f"Annotations/{resolution}"
                )
        self.sequences = sorted(p.name for p in self.frame_dir.iterdir() if p.is_dir())
        self._formats: dict[str, tuple[str, Path]] = {}  # sequence -> (its masks' kind, first)

    def frames(self, seq: str) -> list[str]:
        """Frame names (stems) of a sequence, in order."""
        folder = self.frame_dir / seq
        return sort_frames((p.stem for p in folder.glob("*.jpg")), folder)

    def masks(self, seq: str) -> list[str]:
        """Names of the annotated frames of a sequence, in order."""
        folder = self.mask_dir / seq
        return sort_frames((p.stem for p in folder.glob("*.png")), folder)

    def read_frame(self, seq: str, frame: str) -> np.ndarray:
        """``(H, W, 3)`` uint8."""
        return read_image(self.frame_dir / seq / f"{frame}.jpg")

    def read_mask(self, seq: str, frame: str) -> np.ndarray:
        """``(H, W)`` uint8 object ids (255 = void in DAVIS 2017)."""
        path = self.mask_dir / seq / f"{frame}.png"
        if not path.exists():
            raise ValueError(f"{path}: missing annotation of sequence {seq!r}")
        mask = read_mask(path)
        # DAVIS 2016 masks are 0/255 grayscale (one object), DAVIS 2017's palette PNGs (ids): a
        # sequence mixing them would read its grayscale frames as object 1, whoever is there
        kind = "palette" if mask_mode(path) == "P" else "grayscale 0/255"
        first_kind, first = self._formats.setdefault(seq, (kind, path))
        if kind != first_kind:
            raise ValueError(
                f"{path}: a {kind} mask in a sequence whose masks are {first_kind} PNGs "
                f"(e.g. {first.name}); save every mask of {seq!r} the same way"
            )
        return mask

    def read_sequence(self, seq: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Frame names, frames ``(T, H, W, 3)`` uint8 and masks ``(T, H, W)`` uint8."""
        names = self.frames(seq)
        if not names:
            raise ValueError(f"{self.frame_dir / seq}: sequence has no frames")
        frames = np.stack([self.read_frame(seq, f) for f in names])
        masks = np.stack([self.read_mask(seq, f) for f in names])
        if masks.shape[1:] != frames.shape[1:3]:
            raise ValueError(
                f"{self.mask_dir / seq}: masks are {masks.shape[1:]} but frames {frames.shape[1:3]}"
            )
        return names, frames, masks

    def read_sample(self, seq: str) -> tuple[VideoSample, np.ndarray]:
        """A sequence as inference takes it, every object given on the frame where it first
        appears (DAVIS: frame 0), and its full masks ``(T, H, W)`` for scoring. DAVIS 2017's
        void label (255) is not an object."""
        names, frames, masks = self.read_sequence(seq)
        first = {}
        for oid in sorted(set(np.unique(masks).tolist()) - {0, 255}):
            t = int(np.argmax((masks == oid).any(axis=(1, 2))))
            first[oid] = (t, masks[t] == oid)
        return VideoSample(seq, names, frames, first, dict.fromkeys(first, "object")), masks
