"""``tiny``'s three tracking cues: the paper's S2S (`models.s2s`) plus what a small, briefly
trained network needs to follow *the given object* instead of learning category detectors.

At a laptop's training budget the plain S2S learns to paint every object that looks like a
training category: it fails on a second object of the same category and on unseen ones. Each
cue is a switch of `ModelConfig` (all on in ``tiny``, all off in ``paper``) and one method here:

- **U-Net skips** (`encode_with_skips`, ``skips``): each decoder stage also sees the current
  frame's encoder features at its resolution; the 4x7 memory of ``tiny`` is too coarse to
  paint shapes alone (cf. Azimi et al. 2020, skip-memory S2S).
- **Mask feedback** (`forward_feedback`, ``feedback``): frame t's ConvLSTM input and every
  decoder stage also see the mask predicted for frame t-1 (the given one for t = 0), and the
  decoder paints a *correction* to it: ``logits_t = D(...) + s (2 m_{t-1} - 1)``, with a learnt
  ``s`` and the last layer starting at zero, so an untrained model already copies the previous
  mask. It follows *where* the object was (cf. MaskTrack, Perazzi et al. 2017).
- **Matching to the first frame** (`match_first_frame`, ``matching``): each pixel's best cosine
  similarity, in a learnt embedding of the 1/8 features, to the object's pixels of frame 0 and
  to the background's; the two maps join the decoder at 1/8 and their difference is added to
  the logits (a short path that trains the embedding directly). A cue that holds for any
  texture, seen or not (cf. FEELVOS's global matching, Voigtlaender et al. 2019).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .convlstm import State
from .s2s import S2S, resize_mask, upsampling_decoder


def concat(parts: list[Tensor]) -> Tensor:
    """Maps ``(N, C_i, H, W)`` joined along channels (`vostutorial.fast` swaps in a layout-
    keeping version)."""
    return torch.cat(parts, dim=1)


class TrackingS2S(S2S):
    """S2S with ``tiny``'s cues; same inputs and outputs as `S2S`."""

    join = staticmethod(concat)

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        if cfg.feedback:
            self.prior_scale = nn.Parameter(torch.tensor(3.0))  # logit +-3: p = 0.95 / 0.05
            nn.init.zeros_(self.decoder[-1].weight)  # start as "copy the previous mask"

    @property
    def eighth(self) -> int:
        """Index of the 1/8 map among the skips, and of the decoder stage painting at 1/8."""
        return len(self.cfg.widths) - 4

    def lstm_inputs(self) -> int:
        return self.cfg.hidden + int(self.cfg.feedback)  # + the previous mask

    def build_decoder(self) -> nn.Sequential:
        cfg = self.cfg
        fb = int(cfg.feedback)  # the previous mask joins every stage
        # with skips, the encoder widths at 1/16, 1/8, 1/4, 1/2 join the stages' outputs
        joins = list(cfg.widths[-2::-1]) + [0] if cfg.skips else [0] * len(cfg.decoder)
        joins = [j + fb for j in joins]
        if cfg.matching:
            self.match_key = nn.Conv2d(cfg.widths[2], cfg.match_dim, 1)
            self.match_scale = nn.Parameter(torch.tensor(5.0))
            joins[self.eighth] += 2  # the stage painting at 1/8: the two similarity maps
        return upsampling_decoder(cfg.hidden, cfg.decoder, cfg.decoder_kernel, tuple(joins))

    # --- skips --------------------------------------------------------------------------------
    def encode_with_skips(self, frames: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        """``(B, T, 3, H, W)`` -> features ``(B, T, C, H/2^S, W/2^S)``; with skips, the
        ``(B*T, C_i, H_i, W_i)`` maps of the earlier stages, coarsest first (else an empty
        list); and the trunk's own last map ``(B, T, C_vgg, H/2^S, W/2^S)``."""
        b, t = frames.shape[:2]
        x = self.normalise(frames.flatten(0, 1))
        pooled = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.cfg.frozen_trunk):
            for layer in self.encoder:
                x = layer(x)
                if self.cfg.skips and isinstance(layer, nn.MaxPool2d):
                    pooled.append(x)
        top = x.view(b, t, *x.shape[1:])
        x = self.encoder_out(x)
        return x.view(b, t, *x.shape[1:]), pooled[-2::-1], top

    def decode(
        self, h: Tensor, skips: list[Tensor], prev: Tensor | None, match: Tensor | None
    ) -> Tensor:
        """Hidden states ``(N, C, H/32, W/32)``, skip maps, the previous mask ``(N, 1, H, W)``
        (feedback) and the matching maps ``(N, 2, H/8, W/8)`` -> logits ``(N, 1, H, W)``."""
        skips = list(skips)
        x = h
        for layer in self.decoder:
            x = layer(x)
            if isinstance(layer, nn.ReLU):  # after each upsampling stage: what joins here
                parts = [x]
                if skips:
                    parts.append(skips.pop(0))
                if prev is not None:
                    parts.append(resize_mask(prev, x.shape[-2:]))
                if match is not None and match.shape[-2:] == x.shape[-2:]:
                    parts.append(match)
                x = self.join(parts) if len(parts) > 1 else x
        return x

    # --- matching -----------------------------------------------------------------------------
    def match_first_frame(self, feat8: Tensor, first_mask: Tensor, b: int, t: int) -> Tensor:
        """Global matching: 1/8 features ``(B*T, C, h, w)`` of B clips and first masks
        ``(K, 1, H, W)`` -> ``(K, T, 2, h, w)``, each pixel's highest cosine similarity to the
        object's pixels of frame 0 (channel 0) and to its background's (channel 1)."""
        e = nn.functional.normalize(self.match_key(feat8), dim=1)
        h, w = e.shape[-2:]
        e = e.reshape(b, t, e.shape[1], h * w)
        sim = torch.einsum("btep,beq->btpq", e, e[:, 0])  # (B, T, P, Q): frame t vs frame 0
        m = resize_mask(first_mask, (h, w)).flatten(1)  # (K, Q) object fraction of each cell
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

    # --- the whole pass -----------------------------------------------------------------------
    def forward(
        self,
        frames: Tensor,
        first_mask: Tensor,
        return_hidden: bool = False,
        feedback_dim: Tensor | None = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        """As `S2S.forward`; ``feedback_dim`` ``(K, 1, 1, 1)`` (training only) multiplies each
        object's fed-back masks, so that the network learns to restore a fading object from
        the frame instead of letting feedback erase it (`train.train_step` draws it)."""
        self.check_inputs(frames, first_mask)
        b, t, _, hgt, wid = frames.shape
        k = first_mask.shape[0]
        feats, skips, top = self.encode_with_skips(frames)
        match = None
        if self.cfg.matching:
            match = self.match_first_frame(skips[self.eighth], first_mask, b, t)
        if b == 1 and k > 1:  # K objects of one video: encode once, share
            feats = feats.expand(k, *feats.shape[1:])
            skips = [s.repeat(k, 1, 1, 1) for s in skips]
        first = frames[:, 0].expand(k, *frames.shape[2:])
        state = self.initial_state(first, first_mask, top[:, 0].expand(k, *top.shape[2:]))
        if self.cfg.feedback:
            dim = 1.0 if feedback_dim is None else feedback_dim
            logits, hs = self.forward_feedback(feats, skips, state, first_mask, match, dim)
        else:
            hs = []
            for i in range(t):
                state = self.lstm(feats[:, i], state)
                hs.append(state[0])
            hs = torch.stack(hs, dim=1)
            flat = match.flatten(0, 1) if match is not None else None
            logits = self.decode(hs.flatten(0, 1), skips, None, flat)
            if flat is not None:
                logits = logits + self.match_logits(flat, (hgt, wid))
            logits = logits.view(k, t, 1, hgt, wid)
        return (logits, hs) if return_hidden else logits

    def forward_feedback(
        self,
        feats: Tensor,
        skips: list[Tensor],
        state: State,
        first_mask: Tensor,
        match: Tensor | None,
        dim: Tensor | float = 1.0,
    ) -> tuple[Tensor, Tensor]:
        """Frame by frame, each step correcting the mask it predicted for the previous frame.

        The fed-back probabilities are detached: training then sees exactly what inference
        sees (its own, imperfect masks), and no gradient runs through the chain of masks."""
        k, t = feats.shape[:2]
        skips = [s.view(k, t, *s.shape[1:]) for s in skips]
        prev, out, hs = first_mask, [], []
        for i in range(t):
            x = self.join([feats[:, i], resize_mask(prev, feats.shape[-2:])])
            state = self.lstm(x, state)
            hs.append(state[0])
            m = match[:, i] if match is not None else None
            logits = self.decode(state[0], [s[:, i] for s in skips], prev, m)
            logits = logits + self.prior_scale * (2 * prev - 1)
            if m is not None:
                logits = logits + self.match_logits(m, prev.shape[-2:])
            out.append(logits)
            prev = torch.sigmoid(logits).detach() * dim
        return torch.stack(out, dim=1), torch.stack(hs, dim=1)
