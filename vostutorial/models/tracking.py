"""``tiny``'s three tracking cues: the paper's S2S (`models.s2s`) plus what a small, briefly
trained network needs to follow *the given object* instead of learning category detectors.

At a laptop's training budget the plain S2S learns to paint every object that looks like a
training category: it fails on a second object of the same category and on unseen ones. Each
cue is a switch of `ModelConfig` (all on in ``tiny``, all off in ``paper``) and one method here:

- **U-Net skips** (`encode_with_skips`, ``skips``): each decoder stage also sees the current
  frame's encoder features at its resolution; the 4x7 memory of ``tiny`` is too coarse to
  paint shapes alone (cf. Azimi et al. 2020, skip-memory S2S). They are the stages' pooled
  maps, or with ``skips_before_pool`` each stage's last convolution, down to full size.
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

On a frozen pretrained trunk a fourth cue can join them (in ``s2s-vgg16`` it replaces the learnt
matching):

- **Label propagation** (`propagation_neighbours`, ``propagation``): each cell of the trunk's
  third stage before its pool (VGG16's conv3_3, 1/4) takes the labels of its most similar cells
  (`models.matching`) among frame 0 (the given mask) and frame t-1 (the mask just predicted),
  and, as a second map, among frame 0's alone (the object as it was given, never drifting).
  Both join the decoder at 1/4; the first is also added to the logits. Nothing in it learns:
  pretrained features find the object in footage the network was never trained on (the idea
  of memory networks, STM and XMem, without their learnt keys).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .config import ModelConfig
from .convlstm import State
from .matching import WindowNeighbours, closest_of_two, softmax_weights, vote
from .s2s import S2S, Decoder, resize_mask


class Neighbours(NamedTuple):
    """Each cell's nearest cells among frame 0 and the frame before (``both``: indices below P
    are frame 0's, the others the previous frame's) and among frame 0's alone (``first``), as
    softmax weights and indices ``(B, T, P, k)`` (`models.matching.nearest`), on a ``grid`` of
    ``P = h * w`` cells."""

    both: tuple[Tensor, Tensor]
    first: tuple[Tensor, Tensor]
    grid: tuple[int, int]


class Concat(nn.Module):
    """Maps ``(N, C_i, H, W)`` joined along channels (`vostutorial.fast` swaps in a layout-
    keeping version)."""

    def forward(self, parts: list[Tensor]) -> Tensor:
        return torch.cat(parts, dim=1)


class TrackingS2S(S2S):
    """S2S with ``tiny``'s cues; same inputs and outputs as `S2S`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.join = Concat()
        if cfg.feedback:
            # logit +-3: p = 0.95 / 0.05. With propagation 0: the previous frame's vote already
            # carries its mask, moved with the object (a copy in place would hold it back).
            self.prior_scale = nn.Parameter(torch.tensor(0.0 if cfg.propagation else 3.0))
            nn.init.zeros_(self.decoder.out.weight)  # start as "copy the previous mask"
        if cfg.propagation:
            self.prop_scale = nn.Parameter(torch.tensor(3.0))
            self.neighbours = WindowNeighbours(cfg.prop_radius, cfg.prop_k, cfg.prop_temperature)

    @property
    def eighth(self) -> int:
        """Index of the 1/8 map among the skips, and of the decoder stage painting at 1/8."""
        return len(self.cfg.widths) - 4

    @property
    def quarter(self) -> int:
        """Index of the decoder stage painting at 1/4 (propagation's votes join there)."""
        return len(self.cfg.widths) - 3

    def lstm_inputs(self) -> int:
        return self.cfg.hidden + int(self.cfg.feedback)  # + the previous mask

    def build_cues(self) -> None:
        if self.cfg.matching:  # a learnt embedding of the 1/8 features, and its vote's weight
            self.match_key = nn.Conv2d(self.cfg.widths[2], self.cfg.match_dim, 1)
            self.match_scale = nn.Parameter(torch.tensor(5.0))

    def build_decoder(self) -> Decoder:
        cfg = self.cfg
        fb = int(cfg.feedback)  # the previous mask joins every stage
        # with skips, the encoder widths at 1/16, 1/8, 1/4, 1/2 join the stages' outputs
        joins = list(cfg.widths[-2::-1]) + [0] if cfg.skips else [0] * len(cfg.decoder)
        if cfg.skips_before_pool:  # stage i's last convolution: 1/2^i, widths[i], to full size
            joins = list(cfg.widths[::-1])
        joins = [j + fb for j in joins]
        if cfg.matching:
            joins[self.eighth] += 2  # the stage painting at 1/8: the two similarity maps
        if cfg.propagation:
            joins[self.quarter] += 2  # the stage painting at 1/4: the two votes
        return Decoder(cfg.hidden, cfg.decoder, cfg.decoder_kernel, tuple(joins))

    # --- skips --------------------------------------------------------------------------------
    def encode_with_skips(
        self, frames: Tensor
    ) -> tuple[Tensor, list[Tensor], Tensor, Tensor | None]:
        """``(B, T, 3, H, W)`` -> features ``(B, T, C, H/2^S, W/2^S)``; with skips, the
        ``(B*T, C_i, H_i, W_i)`` maps of the earlier stages' pools (with ``skips_before_pool``
        every stage's map before its pool), coarsest first (else an empty list); the trunk's
        own last map ``(B, T, C_vgg, H/2^S, W/2^S)``; and with propagation the third stage's
        map before its pool (conv3_3), unit length per cell ``(B*T, 256, H/4, W/4)`` (else
        None)."""
        cfg = self.cfg
        b, t = frames.shape[:2]
        x = self.normalise(frames.flatten(0, 1))
        maps, keys, pools = [], None, 0  # each stage's map, taken before or after its pool
        grad = torch.is_grad_enabled()
        for part, frozen in ((self.encoder, cfg.frozen_trunk), (self.encoder_top, False)):
            tap = self.tap if frozen else nn.Identity()  # a frozen trunk's maps standardised
            with torch.set_grad_enabled(grad and not frozen):
                for layer in part:
                    pool = isinstance(layer, nn.MaxPool2d)
                    if pool:
                        pools += 1
                        if cfg.propagation and pools == 3:  # conv3_3, at 1/4
                            keys = x
                        if cfg.skips_before_pool:
                            maps.append(tap(x))
                    x = layer(x)
                    if pool and cfg.skips and not cfg.skips_before_pool:
                        maps.append(tap(x))
                x = tap(x)
        if keys is not None:
            keys = nn.functional.normalize(keys, dim=1)
        top = x.view(b, t, *x.shape[1:])
        x = self.encoder_out(x)
        skips = maps[::-1] if cfg.skips_before_pool else maps[-2::-1]  # the last pool is x
        return x.view(b, t, *x.shape[1:]), skips, top, keys

    def decode(
        self, h: Tensor, skips: list[Tensor], prev: Tensor | None, cues: list[Tensor]
    ) -> Tensor:
        """Hidden states ``(N, C, H/2^S, W/2^S)``, skip maps, the previous mask ``(N, 1, H, W)``
        (feedback) and cue maps (matching ``(N, 2, H/8, W/8)``, propagation's votes ``(N, 2,
        H/2^(S-1), W/2^(S-1))``), each joining the stage of its resolution -> logits
        ``(N, 1, H, W)``."""
        skips = list(skips)
        x = h
        for stage in self.decoder.stages:
            x = stage(x)  # then what joins at this resolution
            parts = [x]
            if skips:
                parts.append(skips.pop(0))
            if prev is not None:
                parts.append(resize_mask(prev, x.shape[-2:]))
            parts += [c for c in cues if c.shape[-2:] == x.shape[-2:]]
            x = self.join(parts) if len(parts) > 1 else x
        return self.decoder.out(x)

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
        # (B or 1, T, P, Q) against (K, 1, 1, Q): one clip's similarities serve its K objects
        best = [torch.where(sel[:, None, None, :], sim, -1.0).amax(-1) for sel in (fg, m < 0.5)]
        return torch.stack(best, dim=2).view(k, t, 2, h, w)

    def match_logits(self, match: Tensor, size: tuple[int, int]) -> Tensor:
        """The matching maps' direct vote ``(N, 1, H, W)``: object minus background
        similarity, upsampled to ``size`` and scaled."""
        vote = (match[:, :1] - match[:, 1:]).contiguous()
        up = nn.functional.interpolate(vote, size=size, mode="bilinear", align_corners=False)
        return self.match_scale * up

    # --- propagation ---------------------------------------------------------------------------
    @torch.no_grad()
    def propagation_neighbours(self, keys: Tensor, b: int, t: int) -> Neighbours:
        """Unit-length maps ``(B*T, C, h, w)`` of B clips -> each cell's nearest cells among
        frame 0 and the frame before (frame 0 for frame 0), and among frame 0's alone
        (`Neighbours`): found once per clip, before the recurrence needs their votes; one
        frame at a time, so that memory holds one frame's similarities, not a clip's."""
        h, w = keys.shape[-2:]
        q = keys.view(b, t, -1, h, w)
        near = self.neighbours
        both, first = [], []
        for i in range(b):
            for j in range(t):
                # frame 0 and frame j-1 searched once each; their union's best are both's
                in_first = near.closest(q[i, j], q[i, :1])
                # frames 0 and 1: the frame before is frame 0, already searched
                in_prev = in_first if j <= 1 else near.closest(q[i, j], q[i, j - 1 : j])
                found = closest_of_two(in_first, in_prev, h * w, near.k)
                both.append((softmax_weights(found[0], near.temperature), found[1]))
                first.append((softmax_weights(in_first[0], near.temperature), in_first[1]))

        def stack(found: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
            weights, idx = zip(*found, strict=True)
            return torch.cat(weights).view(b, t, h * w, -1), torch.cat(idx).view(b, t, h * w, -1)

        return Neighbours(stack(both), stack(first), (h, w))

    def propagation_votes(self, near: Neighbours, i: int, first: Tensor, prev: Tensor) -> Tensor:
        """Frame i's votes ``(K, 2, h, w)``: its neighbours' labels among frame 0 (the given
        masks ``first``) and frame i-1 (``prev``, the masks just predicted), and among frame
        0's alone; masks ``(K, 1, H, W)``."""
        (wb, jb), (wf, jf), (h, w) = near
        given = resize_mask(first, (h, w)).flatten(2)  # (K, 1, P)
        both = torch.cat([given, resize_mask(prev, (h, w)).flatten(2)], dim=-1)  # (K, 1, 2P)
        votes = [vote(both, wb[:, i], jb[:, i]), vote(given, wf[:, i], jf[:, i])]
        return torch.cat(votes, dim=1).view(-1, 2, h, w)

    def propagation_logits(self, votes: Tensor, size: tuple[int, int]) -> Tensor:
        """The votes' direct say ``(N, 1, H, W)``: the first and the previous frame's vote,
        centred, upsampled and scaled."""
        up = nn.functional.interpolate(
            2 * votes[:, :1] - 1, size=size, mode="bilinear", align_corners=False
        )
        return self.prop_scale * up

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
        feats, skips, top, keys = self.encode_with_skips(frames)
        match, near = None, None
        if self.cfg.matching:
            match = self.match_first_frame(skips[self.eighth], first_mask, b, t)
        if self.cfg.propagation:
            near = self.propagation_neighbours(keys, b, t)
        if b == 1 and k > 1:  # K objects of one video: encode once, share
            feats = feats.expand(k, *feats.shape[1:])
            skips = [s.repeat(k, 1, 1, 1) for s in skips]
        first = frames[:, 0].expand(k, *frames.shape[2:])
        state = self.initial_state(first, first_mask, top[:, 0].expand(k, *top.shape[2:]))
        if self.cfg.feedback:
            dim = 1.0 if feedback_dim is None else feedback_dim
            logits, hs = self.forward_feedback(feats, skips, state, first_mask, match, dim, near)
        else:
            hs = self.recur(feats, state)
            flat = match.flatten(0, 1) if match is not None else None
            logits = self.decode(hs.flatten(0, 1), skips, None, [] if flat is None else [flat])
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
        near: Neighbours | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Frame by frame, each step correcting the mask it predicted for the previous frame.

        The fed-back probabilities (with ``hard_feedback``, the mask thresholded at 0.5) are
        detached: training then sees exactly what inference sees (its own, imperfect masks),
        and no gradient runs through the chain of masks."""
        k, t = feats.shape[:2]
        skips = [s.view(k, t, *s.shape[1:]) for s in skips]
        prev, out, hs = first_mask, [], []
        for i in range(t):
            x = self.join([feats[:, i], resize_mask(prev, feats.shape[-2:])])
            state = self.lstm(x, state)
            hs.append(state[0])
            m = match[:, i] if match is not None else None
            votes = None if near is None else self.propagation_votes(near, i, first_mask, prev)
            cues = [c for c in (m, votes) if c is not None]
            logits = self.decode(state[0], [s[:, i] for s in skips], prev, cues)
            logits = logits + self.prior_scale * (2 * prev - 1)
            if m is not None:
                logits = logits + self.match_logits(m, prev.shape[-2:])
            if votes is not None:
                logits = logits + self.propagation_logits(votes, prev.shape[-2:])
            out.append(logits)
            prev = torch.sigmoid(logits).detach()
            if self.cfg.hard_feedback:  # the mask as J sees it: no half-sure pixels to creep
                prev = (prev > 0.5).to(prev.dtype)
            prev = prev * dim
        return torch.stack(out, dim=1), torch.stack(hs, dim=1)
