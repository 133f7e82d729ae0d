"""The sequence-to-sequence VOS network of Xu et al. (ECCV 2018, arXiv 1809.00461), as drawn.

::

    first frame + its object mask --Initializer (VGG16, 4 channels) + 1x1 convs--> (h0, c0)
    frame t --Encoder (VGG16 conv layers + 1x1 conv)--> x_t        (B, 512, H/32, W/32)
    (h_t, c_t) = ConvLSTM(x_t, (h_{t-1}, c_{t-1}))                 512 channels, 3x3 kernels
    h_t --Decoder (5 x [5x5 transposed conv, stride 2] + 5x5 conv)--> logits (B, 1, H, W)

Frames are RGB in [0, 1]; the model normalises them with ImageNet statistics itself, so that
pretrained VGG16 weights (`models.pretrained`: a package's file or a local one, never a silent
download) fit. With ``frozen_trunk`` the encoder is such a pretrained VGG16, never trained, and
the initializer reads its features of the first frame beside the mask. ``tiny``'s tracking cues
extend this class in `vostutorial.models.tracking`; CPU speed-ups live in `vostutorial.fast`.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

from .config import VGG16_CONVS, VGG16_WIDTHS, ModelConfig
from .convlstm import ConvLSTMCell, State
from .pretrained import IMAGENET_MEAN, IMAGENET_STD


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


def resize_mask(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """A mask ``(N, 1, H, W)`` averaged down (or repeated up) to ``size``."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    return nn.functional.adaptive_avg_pool2d(mask, size)


class Decoder(nn.Module):
    """Upsampling stages, each a ``kernel x kernel`` transposed convolution of stride 2 + ReLU
    that doubles the resolution, then a ``kernel x kernel`` convolution to one map: ``(N, C,
    h, w) -> (N, 1, 2^S h, 2^S w)``. ``joins[i]`` more channels enter the stage after stage
    i (the maps that `TrackingS2S.decode` concatenates there: U-Net skips, the previous mask,
    cues); the paper's decoder sees only ``h_t`` (all 0) and runs as ``decoder(h)``."""

    def __init__(
        self, in_channels: int, widths: tuple[int, ...], kernel: int, joins: tuple[int, ...]
    ):
        super().__init__()
        self.stages = nn.ModuleList()
        c = in_channels
        for width, extra in zip(widths, joins, strict=True):
            up = nn.ConvTranspose2d(
                c, width, kernel, stride=2, padding=kernel // 2, output_padding=1
            )
            self.stages.append(nn.Sequential(up, nn.ReLU(inplace=True)))
            c = width + extra
        self.out = nn.Conv2d(c, 1, kernel, padding=kernel // 2)

    def forward(self, h: Tensor) -> Tensor:
        for stage in self.stages:
            h = stage(h)
        return self.out(h)


class Normalise(nn.Module):
    """RGB in [0, 1] ``(N, 3, H, W)`` -> ImageNet-normalised, as VGG16 was trained."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


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
        self.normalise = Normalise()
        # Encoder: x_t = ReLU(conv1x1(VGG16(frame_t)))                  (N, C, H/32, W/32)
        # (with learnt_stages, a frozen VGG16's first stages and then learnt ones: encoder_top)
        n = cfg.vgg_stages
        self.encoder = vgg_features(cfg.widths[:n], cfg.convs[:n], 3)
        self.encoder_top = vgg_features(cfg.widths[n:], cfg.convs[n:], cfg.widths[n - 1])
        self.encoder_out = nn.Sequential(nn.Conv2d(feat, cfg.hidden, 1), nn.ReLU(inplace=True))
        # Initializer: h0 = conv1x1(VGG16'(frame_0, mask_0)), c0 alike  (K, C, H/32, W/32)
        # A frozen trunk is shared instead: h0 = conv1x1(ReLU(conv3x3([VGG16(frame_0), mask_0])))
        # unless the config gives the initializer stages of its own (init_widths)
        if cfg.frozen_trunk:
            self.encoder.requires_grad_(False)
        if self.shares_trunk:
            self.initializer = nn.Sequential(
                nn.Conv2d(feat + 1, 2 * cfg.hidden, 3, padding=1), nn.ReLU(inplace=True)
            )
            init_width = 2 * cfg.hidden
        else:  # the paper's, or on a frozen trunk one of its own (init_widths)
            widths, convs = (
                (cfg.init_widths, cfg.init_convs) if cfg.init_widths else (cfg.widths, cfg.convs)
            )
            self.initializer = vgg_features(widths, convs, 4)
            init_width = widths[-1]
        self.init_h = nn.Conv2d(init_width, cfg.hidden, 1)
        self.init_c = nn.Conv2d(init_width, cfg.hidden, 1)
        # Memory: (h_t, c_t) = ConvLSTM(x_t, (h_{t-1}, c_{t-1}))
        self.lstm = ConvLSTMCell(self.lstm_inputs(), cfg.hidden, cfg.lstm_kernel)
        # Decoder: logits_t = D(h_t)                                    (N, 1, H, W)
        self.build_cues()  # (before the decoder, as the shipped run's weights were drawn)
        self.decoder = self.build_decoder()
        self._init_weights()

    @property
    def shares_trunk(self) -> bool:
        """True when the initializer reads the frozen trunk's map of the first frame (beside
        its mask) instead of running a network of its own on the frame."""
        return self.cfg.frozen_trunk and not self.cfg.init_widths

    def lstm_inputs(self) -> int:
        """Channels of the ConvLSTM's input: the encoder's features."""
        return self.cfg.hidden

    def build_cues(self) -> None:
        """Layers of inputs beyond the paper's (`TrackingS2S`); the paper has none."""

    def build_decoder(self) -> Decoder:
        """The paper's decoder sees only ``h_t``."""
        cfg = self.cfg
        return Decoder(cfg.hidden, cfg.decoder, cfg.decoder_kernel, (0,) * len(cfg.decoder))

    def _init_weights(self) -> None:
        # He initialisation for the ReLU stacks, as torchvision's VGG does: PyTorch's default
        # shrinks the signal layer by layer, and from scratch the masks would barely reach the
        # output. The ConvLSTM keeps its default and its open forget gate.
        parts = [self.encoder_out, self.initializer, self.decoder, self.encoder_top]
        if not self.cfg.frozen_trunk:  # a frozen trunk gets pretrained weights (build_model)
            parts.append(self.encoder)
        for part in parts:
            for m in part.modules():
                if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> S2S:
        super().train(mode)
        if self.cfg.frozen_trunk:
            self.encoder.eval()  # a frozen trunk is always in inference mode
        return self

    def trunk(self, frames: Tensor) -> Tensor:
        """Frames ``(N, 3, H, W)`` -> the encoder's VGG features ``(N, C, H/2^S, W/2^S)``,
        ``S`` stages: a frozen trunk's through `tap` and without gradients (nothing there
        learns), then any learnt stages above it."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.frozen_trunk):
            x = self.tap(self.encoder(self.normalise(frames)))
        return self.encoder_top(x)

    def tap(self, x: Tensor) -> Tensor:
        """A frozen trunk's map ``(N, C, h, w)`` as the learnt layers read it: standardised per
        map (zero mean, unit variance over C, h, w), since VGG's raw activations are large and
        their scale differs from stage to stage. Trained encoders' maps pass as they are."""
        return nn.functional.group_norm(x, 1) if self.cfg.frozen_trunk else x

    def encode(self, frames: Tensor) -> Tensor:
        """``(B, T, 3, H, W)`` -> features ``x_t`` ``(B, T, C, H/2^S, W/2^S)``."""
        b, t = frames.shape[:2]
        x = self.encoder_out(self.trunk(frames.flatten(0, 1)))
        return x.view(b, t, *x.shape[1:])

    def initial_state(self, frame: Tensor, mask: Tensor, trunk: Tensor | None = None) -> State:
        """``(h0, c0)`` from a frame ``(K, 3, H, W)`` and the object's mask ``(K, 1, H, W)``,
        each ``(K, C, H/2^S, W/2^S)``. A frozen trunk's map of the frame, if already computed,
        can be given as ``trunk`` ``(K, C_vgg, H/2^S, W/2^S)``."""
        if self.shares_trunk:
            feat = self.trunk(frame) if trunk is None else trunk
            x = self.initializer(torch.cat([feat, resize_mask(mask, feat.shape[-2:])], dim=1))
        else:
            x = self.initializer(torch.cat([self.normalise(frame), mask], dim=1))
        return self.init_h(x), self.init_c(x)

    def recur(self, feats: Tensor, state: State) -> Tensor:
        """The memory carries the object through time: features ``(K, T, C, h, w)`` and the
        initial state -> hidden states ``h_t`` ``(K, T, C, h, w)``."""
        hs = []
        for i in range(feats.shape[1]):
            state = self.lstm(feats[:, i], state)
            hs.append(state[0])
        return torch.stack(hs, dim=1)

    def check_inputs(self, frames: Tensor, first_mask: Tensor) -> None:
        b, _, _, hgt, wid = frames.shape
        k = first_mask.shape[0]
        n = self.cfg.stride
        if hgt % n or wid % n:
            pools = len(self.cfg.widths)
            raise ValueError(f"frame size {hgt}x{wid} must be a multiple of {n} ({pools} 2x pools)")
        if b != k and b != 1:
            raise ValueError(f"{b} clips but {k} masks: give one mask per clip, or one clip")

    def forward(
        self, frames: Tensor, first_mask: Tensor, return_hidden: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        self.check_inputs(frames, first_mask)
        k, t = first_mask.shape[0], frames.shape[1]
        feats = self.encode(frames)  # (B, T, C, h, w)
        if feats.shape[0] != k:  # K objects of one video: its frames encoded once, shared
            feats = feats.expand(k, *feats.shape[1:])
        state = self.initial_state(frames[:, 0].expand(k, *frames.shape[2:]), first_mask)
        hs = self.recur(feats, state)  # (K, T, C, h, w)
        logits = self.decoder(hs.flatten(0, 1))  # every frame decoded from h_t alone
        logits = logits.view(k, t, *logits.shape[1:])
        return (logits, hs) if return_hidden else logits
