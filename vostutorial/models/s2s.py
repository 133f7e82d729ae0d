"""The sequence-to-sequence VOS network of Xu et al. (ECCV 2018).

::

    first frame + its object mask --Initializer (VGG16, 4 channels) + 1x1 convs--> (h0, c0)
    frame t --Encoder (VGG16 conv layers + 1x1 conv)--> x_t        (B, 512, H/32, W/32)
    (h_t, c_t) = ConvLSTM(x_t, (h_{t-1}, c_{t-1}))                 512 channels, 3x3 kernels
    h_t --Decoder (5 x [5x5 transposed conv, stride 2] + 5x5 conv)--> logits (B, 1, H, W)

Frames are RGB in [0, 1]; the model normalises them with ImageNet statistics itself, so that
ImageNet weights (an option: a local file, never a download) fit. Configurations live in
`CONFIGS`: ``paper`` is the above at 256x448, ``tiny`` keeps every part and the data flow with
narrow layers so that it trains on two CPU cores, and adds three options of `ModelConfig` that
make a small, briefly trained network track the given object rather than detect categories:
U-Net skips, mask feedback and matching to the first frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from .convlstm import ConvLSTMCell, State

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_WIDTHS = (64, 128, 256, 512, 512)
VGG16_CONVS = (2, 2, 3, 3, 3)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that shapes the network (training settings live in the trainer's config)."""

    name: str
    input_size: tuple[int, int]  # H, W the model is trained at
    widths: tuple[int, ...] = VGG16_WIDTHS  # VGG stage widths (each stage ends in a 2x pool)
    convs: tuple[int, ...] = VGG16_CONVS  # 3x3 convolutions per stage
    hidden: int = 512  # ConvLSTM channels
    lstm_kernel: int = 3
    decoder: tuple[int, ...] = (512, 256, 128, 64, 64)  # widths of the 5 upsampling stages
    decoder_kernel: int = 5
    # U-Net-style skips: each decoder stage also sees the current frame's encoder features at
    # its resolution. Not in the paper (its decoder sees only h_t); added for `tiny`, whose
    # 4x7 memory is too coarse to paint shapes alone (cf. Azimi et al. 2020, skip-memory S2S).
    skips: bool = False
    # Mask feedback: frame t's ConvLSTM input and every decoder stage also see the mask
    # predicted for frame t-1 (the given mask for t = 0), resized to their resolution, and the
    # decoder paints a correction to that mask: logits_t = decoder(...) + s * (2 m_{t-1} - 1),
    # with a learnt s and the decoder's last layer starting at zero, so that an untrained model
    # already copies the previous mask. Not in the paper either; added for `tiny` so that it
    # follows *where* the object was instead of learning category detectors, which do not
    # transfer to unseen categories (cf. MaskTrack, Perazzi et al. 2017). Costs one sequential
    # decode per frame.
    feedback: bool = False
    # Matching to the first frame (needs skips): each pixel's best cosine similarity, in a
    # learnt embedding of the 1/8 encoder features, to the object's pixels on frame 0 and to
    # the background's; the two maps join the decoder at 1/8, and their difference, upsampled
    # and scaled by a learnt factor, is added to the logits (a short path that trains the
    # embedding directly). A cue that holds for any texture, seen or not, and survives fast
    # motion (cf. FEELVOS's global matching, Voigtlaender et al. 2019). Not in the paper.
    matching: bool = False
    match_dim: int = 32

    @property
    def is_vgg16(self) -> bool:
        return self.widths == VGG16_WIDTHS and self.convs == VGG16_CONVS


CONFIGS: dict[str, ModelConfig] = {
    "paper": ModelConfig("paper", (256, 448)),
    "tiny": ModelConfig(
        "tiny",
        (128, 224),
        widths=(16, 32, 64, 96, 128),
        convs=(1, 1, 2, 2, 2),
        hidden=64,
        decoder=(64, 48, 32, 16, 16),
        skips=True,
        feedback=True,
        matching=True,
    ),
}


class OneMapConv(nn.Conv2d):
    """A ``k x k`` convolution from C channels to one map, size-preserving: the decoder's last
    layer, ``(N, C, H, W) -> (N, 1, H, W)``.

    On CPUs oneDNN runs a one-output convolution about as slowly as a 16-output one. So on the
    CPU and without autograd (inference) this one runs as a matrix product to the k² per-tap
    maps ``w_ij . x``, which are then shifted into place and summed: the same numbers, about 3x
    faster for a batch of objects. Training keeps the library convolution, whose backward pass
    is the faster one, and so do GPUs.
    """

    def __init__(self, in_channels: int, kernel_size: int):
        super().__init__(in_channels, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() or x.device.type != "cpu":
            return super().forward(x)
        n, c, h, w = x.shape
        k, p = self.kernel_size[0], self.padding[0]
        taps = torch.matmul(self.weight.reshape(c, k * k).t(), x.flatten(2)).view(n, k, k, h, w)
        out = self.bias.view(1, 1, 1).expand(n, h, w).clone()
        for i in range(k):
            for j in range(k):  # out[y, x] += taps[i, j][y + i - p, x + j - p], zero outside
                dy, dx = i - p, j - p
                out[:, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)] += taps[
                    :, i, j, max(0, dy) : h + min(0, dy), max(0, dx) : w + min(0, dx)
                ]
        return out[:, None]


def vgg_features(
    widths: tuple[int, ...], convs: tuple[int, ...], in_channels: int = 3
) -> nn.Sequential:
    """VGG-style conv layers: per stage ``convs[i]`` x (3x3 conv + ReLU), then a 2x max-pool.

    With VGG16's widths and counts this is exactly torchvision's ``vgg16().features`` (same
    layers, same indices), so its ImageNet weights load as they are.
    """
    if tuple(widths) == VGG16_WIDTHS and tuple(convs) == VGG16_CONVS and in_channels == 3:
        return torchvision.models.vgg16(weights=None).features  # never downloads: weights=None
    layers: list[nn.Module] = []
    c = in_channels
    for width, n in zip(widths, convs, strict=True):
        for _ in range(n):
            layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU(inplace=True)]
            c = width
        layers.append(nn.MaxPool2d(2, 2))
    return nn.Sequential(*layers)


class S2S(nn.Module):
    """The S2S network. ``model(frames, first_mask) -> logits``:

    - ``frames``: ``(B, T, 3, H, W)`` RGB in [0, 1], H and W multiples of 32
    - ``first_mask``: ``(K, 1, H, W)`` the object's mask on frame 0; K = B, or B = 1 and K
      objects of one video, whose frames are then encoded once and shared
    - returns logits ``(K, T, 1, H, W)``, one map per frame, the first included, and with
      ``return_hidden=True`` also the memory's hidden states ``(K, T, C, H/32, W/32)``
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        feat = cfg.widths[-1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = vgg_features(cfg.widths, cfg.convs, 3)
        self.encoder_out = nn.Sequential(nn.Conv2d(feat, cfg.hidden, 1), nn.ReLU(inplace=True))
        self.initializer = vgg_features(cfg.widths, cfg.convs, 4)
        self.init_h = nn.Conv2d(feat, cfg.hidden, 1)
        self.init_c = nn.Conv2d(feat, cfg.hidden, 1)
        fb = int(cfg.feedback)  # the previous mask: one more input channel where it joins
        self.lstm = ConvLSTMCell(cfg.hidden + fb, cfg.hidden, cfg.lstm_kernel)
        layers: list[nn.Module] = []
        c, k = cfg.hidden, cfg.decoder_kernel
        # with skips, the encoder widths at 1/16, 1/8, 1/4, 1/2 join the stages' outputs
        joins = list(cfg.widths[-2::-1]) + [0] if cfg.skips else [0] * len(cfg.decoder)
        joins = [j + fb for j in joins]
        if cfg.matching:
            if not cfg.skips:
                raise ValueError("matching needs skips=True (it matches the 1/8 encoder features)")
            self.match_key = nn.Conv2d(cfg.widths[2], cfg.match_dim, 1)
            joins[1] += 2  # stage 1 paints at 1/8: object and background similarity maps
            self.match_scale = nn.Parameter(torch.tensor(5.0))
        for width, extra in zip(cfg.decoder, joins, strict=True):  # 1/32 -> 1/1, 2x a stage
            layers += [
                nn.ConvTranspose2d(c, width, k, stride=2, padding=k // 2, output_padding=1),
                nn.ReLU(inplace=True),
            ]
            c = width + extra
        layers.append(OneMapConv(c, k))
        self.decoder = nn.Sequential(*layers)
        self._init_weights()
        if cfg.feedback:
            self.prior_scale = nn.Parameter(torch.tensor(3.0))  # logit +-3: p = 0.95 / 0.05
            nn.init.zeros_(self.decoder[-1].weight)  # start as "copy the previous mask"

    def _init_weights(self) -> None:
        # He initialisation for the ReLU stacks, as torchvision's VGG does: PyTorch's default
        # shrinks the signal layer by layer, and from scratch the masks would barely reach the
        # output. The ConvLSTM keeps its default and its open forget gate.
        for part in (self.encoder, self.encoder_out, self.initializer, self.decoder):
            for m in part.modules():
                if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def _normalise(self, x: Tensor) -> Tensor:
        x = (x - self.mean) / self.std
        # follow the weights' memory layout: channels-last convolutions are ~1.5x faster on CPU
        if self.encoder[0].weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def encode(self, frames: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(B, T, 3, H, W)`` -> features ``(B, T, C, H/32, W/32)`` and, with skips, the
        ``(B*T, C_i, H_i, W_i)`` maps at 1/16, 1/8, 1/4, 1/2 (else an empty list)."""
        b, t = frames.shape[:2]
        x = self._normalise(frames.flatten(0, 1))
        pooled = []
        for layer in self.encoder:
            x = layer(x)
            if self.cfg.skips and isinstance(layer, nn.MaxPool2d):
                pooled.append(x)
        x = self.encoder_out(x)
        return x.view(b, t, *x.shape[1:]), pooled[-2::-1]

    def initial_state(self, frame: Tensor, mask: Tensor) -> State:
        """``(h0, c0)`` from a frame ``(K, 3, H, W)`` and the object's mask ``(K, 1, H, W)``."""
        x = self.initializer(torch.cat([self._normalise(frame), mask], dim=1))
        return self.init_h(x), self.init_c(x)

    def match_first_frame(self, feat8: Tensor, first_mask: Tensor, b: int, t: int) -> Tensor:
        """Global matching: 1/8 features ``(B*T, C, h, w)`` of B clips and first masks
        ``(K, 1, H, W)`` -> ``(K, T, 2, h, w)``, each pixel's highest cosine similarity to the
        object's pixels of frame 0 (channel 0) and to its background's (channel 1)."""
        e = nn.functional.normalize(self.match_key(feat8), dim=1)
        h, w = e.shape[-2:]
        e = e.reshape(b, t, e.shape[1], h * w)
        sim = torch.einsum("btep,beq->btpq", e, e[:, 0])  # (B, T, P, Q): frame t vs frame 0
        m = _resize(first_mask, (h, w)).flatten(1)  # (K, Q) object fraction of each cell
        k = m.shape[0]
        # object cells: at least half covered, or for an object smaller than a cell its best ones
        fg = (m >= m.amax(1, keepdim=True).clamp(max=0.5)) & (m > 0)
        if b == 1 and k > 1:
            sim = sim.expand(k, *sim.shape[1:])
        best = [sim.masked_fill(~sel[:, None, None, :], -1.0).amax(-1) for sel in (fg, m < 0.5)]
        return torch.stack(best, dim=2).view(k, t, 2, h, w)

    def match_logits(self, match: Tensor, size: tuple[int, int]) -> Tensor:
        """The matching maps' direct vote ``(N, 1, H, W)``: object minus background
        similarity, upsampled to ``size`` and scaled."""
        vote = (match[:, :1] - match[:, 1:]).contiguous()
        up = nn.functional.interpolate(vote, size=size, mode="bilinear", align_corners=False)
        return self.match_scale * up

    def decode(
        self,
        h: Tensor,
        skips: list[Tensor] | None = None,
        prev: Tensor | None = None,
        match: Tensor | None = None,
    ) -> Tensor:
        """Hidden states ``(N, C, H/32, W/32)`` (and skip maps, and with feedback the previous
        mask ``(N, 1, H, W)``, and with matching the maps ``(N, 2, H/8, W/8)``) -> logits
        ``(N, 1, H, W)``."""
        skips = list(skips or [])
        x = h
        for layer in self.decoder:
            x = layer(x)
            if isinstance(layer, nn.ReLU):  # after each upsampling stage
                parts = [x]
                if skips:
                    parts.append(skips.pop(0))
                if prev is not None:
                    parts.append(_resize(prev, x.shape[-2:]))
                if match is not None and match.shape[-2:] == x.shape[-2:]:
                    parts.append(match)
                x = _join(parts)
        return x

    def forward(
        self, frames: Tensor, first_mask: Tensor, return_hidden: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        b, t, _, hgt, wid = frames.shape
        k = first_mask.shape[0]
        if hgt % 32 or wid % 32:
            raise ValueError(f"frame size {hgt}x{wid} must be a multiple of 32 (five 2x pools)")
        if b != k and b != 1:
            raise ValueError(f"{b} clips but {k} masks: give one mask per clip, or one clip")
        feats, skips = self.encode(frames)
        match = self.match_first_frame(skips[1], first_mask, b, t) if self.cfg.matching else None
        if b == 1 and k > 1:  # K objects of one video: encode once, share
            feats = feats.expand(k, *feats.shape[1:])
            skips = [s.repeat(k, 1, 1, 1) for s in skips]
        first = frames[:, 0].expand(k, *frames.shape[2:]) if b == 1 else frames[:, 0]
        state = self.initial_state(first, first_mask)
        if self.cfg.feedback:
            logits, hs = self._forward_feedback(feats, skips, state, first_mask, match)
        else:
            hs = []
            for i in range(t):
                state = self.lstm(feats[:, i], state)
                hs.append(state[0])
            hs = torch.stack(hs, dim=1)
            flat = match.flatten(0, 1) if match is not None else None
            logits = self.decode(hs.flatten(0, 1), skips, match=flat)
            if flat is not None:
                logits = logits + self.match_logits(flat, (hgt, wid))
            logits = logits.view(k, t, 1, hgt, wid)
        return (logits, hs) if return_hidden else logits

    def _forward_feedback(
        self,
        feats: Tensor,
        skips: list[Tensor],
        state: State,
        first_mask: Tensor,
        match: Tensor | None,
    ) -> tuple[Tensor, Tensor]:
        """Frame by frame, each step correcting the mask it predicted for the previous frame.

        The fed-back probabilities are detached: training then sees exactly what inference
        sees (its own, imperfect masks), and no gradient runs through the chain of masks."""
        k, t = feats.shape[:2]
        skips = [s.view(k, t, *s.shape[1:]) for s in skips]
        prev, out, hs = first_mask, [], []
        for i in range(t):
            x = _join([feats[:, i], _resize(prev, feats.shape[-2:])])
            state = self.lstm(x, state)
            hs.append(state[0])
            m = match[:, i] if match is not None else None
            logits = self.decode(state[0], [s[:, i] for s in skips], prev, m)
            logits = logits + self.prior_scale * (2 * prev - 1)
            if m is not None:
                logits = logits + self.match_logits(m, prev.shape[-2:])
            out.append(logits)
            prev = torch.sigmoid(logits).detach()
        return torch.stack(out, dim=1), torch.stack(hs, dim=1)


def _join(parts: list[Tensor]) -> Tensor:
    """Concatenate ``(N, C_i, H, W)`` maps along channels, keeping the first one's channels-last
    layout: ``torch.cat`` falls back to NCHW when a one-channel map joins, and the next
    convolution would then copy it all back."""
    if len(parts) == 1:
        return parts[0]
    x = parts[0]
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.cat([p.permute(0, 2, 3, 1) for p in parts], dim=3).permute(0, 3, 1, 2)
    return torch.cat(parts, dim=1)


def _resize(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A mask ``(N, 1, H, W)`` averaged down (or repeated up) to ``size``."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return nn.functional.adaptive_avg_pool2d(mask, size)


def build_model(
    config: str | ModelConfig = "tiny",
    pretrained: str | os.PathLike | None = None,
    channels_last: bool = True,
    **overrides,
) -> S2S:
    """A model from the registry (``"paper"``, ``"tiny"``) or a `ModelConfig`.

    ``pretrained`` is a local file of torchvision VGG16 ImageNet weights (``vgg16-*.pth``, a
    state dict of the whole VGG16 or of its ``features``); it initialises the encoder and the
    initializer (whose mask channel starts at zero). Nothing is ever downloaded.
    ``channels_last`` stores the weights NHWC, which oneDNN runs fastest on CPUs and tensor
    cores on GPUs; results are the same.
    """
    if isinstance(config, str):
        if config not in CONFIGS:
            raise ValueError(f"unknown model config {config!r}; choose from {sorted(CONFIGS)}")
        config = CONFIGS[config]
    model = S2S(replace(config, **overrides) if overrides else config)
    if pretrained is not None:
        load_vgg16_weights(model, pretrained)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def load_vgg16_weights(model: S2S, path: str | os.PathLike) -> None:
    """Copy ImageNet VGG16 conv weights from a local file into encoder and initializer."""
    path = Path(path)
    if not model.cfg.is_vgg16:
        raise ValueError(
            f"{path}: VGG16 weights need VGG16 widths; config {model.cfg.name!r} "
            "has its own (use --config paper)"
        )
    if not path.exists():
        raise ValueError(
            f"{path}: pretrained weights file not found (download torchvision's "
            "vgg16 ImageNet weights yourself and point to the file)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds here; all mean "not a weights file"
        raise ValueError(f"{path}: not a readable torch state dict ({exc})") from None
    state = {
        k.removeprefix("features."): v
        for k, v in state.items()
        if k.startswith("features.") or k[0].isdigit()
    }
    own = model.encoder.state_dict()
    if set(own) - set(state):
        raise ValueError(f"{path}: missing VGG16 conv weights {sorted(set(own) - set(state))[:4]}")
    model.encoder.load_state_dict({k: state[k] for k in own})
    init = {k: state[k].clone() for k in own}
    w = init["0.weight"]  # (64, 3, 3, 3) -> (64, 4, 3, 3): the mask channel starts at zero
    init["0.weight"] = torch.cat([w, torch.zeros_like(w[:, :1])], dim=1)
    model.initializer.load_state_dict(init)
