"""Palette PNGs: the mask format of YouTube-VOS and DAVIS.

A mask is an ``(H, W)`` uint8 array whose pixel value is the object id (0 = background).
It is stored as a palette ("P" mode) PNG so that viewers show each id in its own colour
while the file still holds the raw ids. DAVIS 2016 instead stores one object as an 8-bit
grayscale PNG with values 0/255; `read_mask` reads both.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..files import atomic_write


def davis_palette(n: int = 256) -> np.ndarray:
    """The standard DAVIS/YouTube-VOS palette as an ``(n, 3)`` uint8 array.

    Colour ``i`` spreads the bits of ``i`` over R, G and B from the most significant bit down
    (the PASCAL VOC colour map): 0 black, 1 dark red, 2 dark green, 3 olive, ...
    """
    ids = np.arange(n)
    pal = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):  # bit b of channel c comes from bit 3*b + c of the id
        for c in range(3):
            pal[:, c] |= ((ids >> (3 * bit + c)) & 1) << (7 - bit)
    return pal.astype(np.uint8)


PALETTE = davis_palette()


def _open(path: Path) -> Image.Image:
    """Open and fully decode an image, turning PIL's errors into a ValueError naming the file."""
    try:
        img = Image.open(path)
        img.load()  # PIL decodes lazily: force it here so truncation is caught now
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(
            f"{path}: cannot decode image ({exc}); the file is corrupt or truncated, "
            "re-download or regenerate it"
        ) from None
    return img


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(H, W)`` of an image, from its header alone (no decoding)."""
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: cannot read image header ({exc})") from None


def mask_mode(path: str | os.PathLike) -> str:
    """A mask PNG's PIL mode from its header: ``"P"`` for a palette PNG of ids, ``"L"`` or
    ``"1"`` for a grayscale one."""
    with Image.open(path) as img:
        return img.mode


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a frame as an ``(H, W, 3)`` uint8 RGB array."""
    img = _open(Path(path))
    return np.array(img.convert("RGB"))


def read_mask(path: str | os.PathLike, require_palette: bool = False) -> np.ndarray:
    """Read a mask PNG as an ``(H, W)`` uint8 array of object ids.

    Palette PNGs give their indices unchanged. A grayscale PNG (DAVIS 2016) must hold only
    0 and 255 and is read as ids 0/1. With ``require_palette`` anything but a palette PNG is
    an error, since colours of an RGB mask cannot be trusted to map back to ids.
    """
    path = Path(path)
    img = _open(path)
    if img.mode == "P":
        return np.array(img)
    if require_palette:
        raise ValueError(
            f"{path}: mask is a {img.mode!r}-mode image, expected a palette ('P') PNG whose "
            "pixel values are object ids (a 0/255 grayscale mask cannot say which object); "
            "convert it with vostutorial.data.write_mask"
        )
    if img.mode in ("L", "1"):
        arr = np.asarray(img.convert("L"))
        values = np.flatnonzero(np.bincount(arr.ravel(), minlength=256))  # (no sort: fast)
        if not set(values.tolist()) <= {0, 255}:
            raise ValueError(
                f"{path}: grayscale mask holds values {values[:8].tolist()}..., expected only "
                "0 and 255 (DAVIS 2016 convention); save multi-object masks as palette PNGs"
            )
        return (arr == 255).astype(np.uint8)
    raise ValueError(
        f"{path}: mask is a {img.mode!r}-mode image; expected a palette PNG (object ids) or a "
        "0/255 grayscale PNG"
    )


def mask_ids(mask: np.ndarray) -> list[int]:
    """The non-zero ids present in a uint8 mask (a histogram: much faster than np.unique)."""
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=256)
    return (np.flatnonzero(counts[1:]) + 1).tolist()


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> None:
    """Write an ``(H, W)`` array of object ids (0..255) as a palette PNG with the DAVIS palette.

    The file is written to a temporary name and renamed, so a crash never leaves half a PNG.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{path}: mask must be 2-D (H, W), got shape {mask.shape}")
    if mask.size and (mask.min() < 0 or mask.max() > 255):
        raise ValueError(f"{path}: object ids must lie in 0..255")
    img = Image.fromarray(mask.astype(np.uint8))  # "L"; putpalette turns it into "P"
    img.putpalette(PALETTE.tobytes())
    with atomic_write(path) as f:
        img.save(f, format="PNG")


def write_image(path: str | os.PathLike, image: np.ndarray, quality: int = 90) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB frame as JPEG (atomically)."""
    with atomic_write(path) as f:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(f, format="JPEG", quality=quality)
