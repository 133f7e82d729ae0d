"""Running a trained model over whole videos."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, model_from_checkpoint, training_loss
from .data.ytvos import VideoSample, YTVOSSplit
from .fast import speed_up, upsampled_argmax
from .losses import LOSSES
from .models import S2S
from .predictions import (
    file_sha256,
    open_predictions,
    video_done,
    write_video_masks,
)
from .propagation import feature_extractor, propagate_soft
from .resources import require_device

# The model segments each video near the video's own size, not at its training crop: its
# convolutions and memory work on any size, and finer cells keep thin parts and boundaries.
# On synthetic valid (180x320 frames) the shipped model scores 0.717 at 192x320 against 0.627
# at its 128x224 training size (benchmarks/results/predict-size.json). Larger frames are scaled
# down to this shorter side, which keeps 480p video above 5 frames per second on 2 CPU cores.
PREDICT_SHORT_SIDE = 240


def predict_size(
    frame_size: tuple[int, int], stride: int, short_side: int = PREDICT_SHORT_SIDE
) -> tuple[int, int]:
    """The ``(h, w)`` a model with ``stride`` (its total downsampling, 2^pools) segments
    frames of ``frame_size`` ``(H, W)`` at: scaled down (never up) to a shorter side of at
    most ``short_side``, each side then rounded to a multiple of ``stride`` (at least one)."""
    scale = min(1.0, short_side / min(frame_size))
    return tuple(max(stride, int(s * scale / stride + 0.5) * stride) for s in frame_size)


def frames_to_tensor(
    frames: np.ndarray, size: tuple[int, int], device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``(T, H, W, 3)`` uint8 -> ``(1, T, 3, h, w)`` float in [0, 1] at the model's size.

    Resized as uint8, as the training clips are (`data.clips`): the same pixels the model
    learnt from, and on CPU some 20x faster than resizing 720p frames as floats."""
    x = torch.from_numpy(frames).to(device).permute(0, 3, 1, 2)
    return (TF.resize(x, list(size), antialias=True).float() / 255)[None]


def masks_to_tensor(
    masks: np.ndarray, size: tuple[int, int], device: str | torch.device = "cpu"
) -> torch.Tensor:
    """``(K, H, W)`` bool masks -> ``(K, 1, h, w)`` float in {0, 1} at the model's size
    (nearest neighbour: a given mask stays a mask)."""
    x = torch.from_numpy(np.asarray(masks))[:, None].float().to(device)
    return F.interpolate(x, size=size, mode="nearest")


@torch.inference_mode()
def predict_objects(
    model: S2S,
    sample: VideoSample,
    size: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
) -> dict[int, np.ndarray]:
    """Foreground probability of every object on every frame, at the model's resolution.

    Each object starts at the frame where its mask is given and runs to the end; objects that
    start on the same frame go through the network together as one batch, sharing the frames'
    encoding. Returns ``{object_id: (T, h, w) float32}`` with ``(h, w) = size`` (default
    `predict_size` of the video's frames), zero before the object's first frame. `merge` turns
    the maps into id maps at the video's resolution; `upsample` resizes one object's maps.
    """
    model.eval()
    size = size or predict_size(sample.frames.shape[1:3], model.cfg.stride)
    frames = frames_to_tensor(sample.frames, size, device)
    out: dict[int, np.ndarray] = {}
    by_start: dict[int, list[int]] = {}
    for oid, (t0, _) in sample.first_masks.items():
        by_start.setdefault(t0, []).append(oid)
    for t0, oids in sorted(by_start.items()):
        masks = masks_to_tensor(np.stack([sample.first_masks[o][1] for o in oids]), size, device)
        probs = torch.sigmoid(model(frames[:, t0:], masks))[:, :, 0]  # (K, T - t0, h, w)
        probs = F.pad(probs, (0, 0, 0, 0, t0, 0)).cpu().numpy()  # zero before the first frame
        for k, oid in enumerate(oids):
            out[oid] = probs[k]
    return out


def upsample(maps: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(T, h, w)`` probability maps bilinearly resized to ``(T, *size)``."""
    x = torch.from_numpy(np.ascontiguousarray(maps, np.float32))[:, None]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)[:, 0].numpy()


# --- merging per-object maps into one instance map per frame --------------------------------
def merge(
    probs: dict[int, np.ndarray],
    given: dict[int, tuple[int, np.ndarray]] | None = None,
    method: str = "argmax",
    size: tuple[int, int] | None = None,
    fast: bool = False,
) -> np.ndarray:
    """One ``(T, H, W)`` uint8 id map from per-object probability maps ``{id: (T, h, w)}``.

    - ``argmax``: background is a class of its own with probability ``prod_k (1 - p_k)`` (no
      object there); each pixel takes the most probable of background and the objects.
    - ``threshold``: each object keeps its pixels above 0.5; where several do, the most
      probable wins (background is a class of constant score 0.5, winning ties).
    - ``soft``: soft aggregation (Oh et al., RGMP): the maps are normalised jointly, in odds,
      into one distribution over background and objects, then each pixel takes its mode. Its
      labels agree with ``argmax`` (odds preserve order); what it adds are calibrated
      probabilities, which matter when they are fed back into a network.

    The scores are formed where the maps were predicted and bilinearly resized to ``size``
    ``(H, W)`` (default: that of the ``given`` masks, else the maps' own) before the argmax;
    ``fast`` does that without building the full-size maps (`fast.upsampled_argmax`, the same
    labels). ``given`` masks (``{id: (t, mask)}``) override the prediction on their frame.
    """
    ids = sorted(probs)
    if not ids:
        raise ValueError("no objects to merge")
    p = np.stack([probs[i] for i in ids]).astype(np.float32)  # (K, T, h, w)
    if method == "threshold":
        scores = np.concatenate([np.full_like(p[:1], 0.5), p])
    elif method == "argmax":  # background: the chance that no object is there
        scores = np.concatenate([np.prod(1 - p, axis=0, keepdims=True), p])
    elif method == "soft":
        scores = soft_aggregate(p)
    else:
        raise ValueError(f"unknown merge method {method!r}; use argmax, threshold or soft")
    if size is None:
        size = next(iter(given.values()))[1].shape if given else p.shape[-2:]
    if fast:
        best = upsampled_argmax(scores, size)
    else:  # resize every class's score map, then take the most probable class per pixel
        x = torch.from_numpy(np.ascontiguousarray(scores, np.float32))
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        best = x.argmax(0).numpy()
    labels = np.concatenate([[0], ids]).astype(np.uint8)[best]
    for oid, (t, mask) in (given or {}).items():
        if mask.shape != labels.shape[1:]:
            raise ValueError(f"given mask of object {oid} is {mask.shape}, the output {size}")
        labels[t][labels[t] == oid] = 0
        labels[t][mask] = oid
    return labels


def soft_aggregate(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """``(K, ...)`` object probabilities -> ``(K + 1, ...)`` distribution, background first:
    background gets ``prod (1 - p_k)``, then all are normalised as odds ``q / (1 - q)``."""
    q = np.concatenate([np.prod(1 - p, axis=0, keepdims=True), p]).clip(eps, 1 - eps)
    odds = q / (1 - q)
    return odds / odds.sum(0, keepdims=True)


# --- the model and label propagation together ----------------------------------------------
# Label propagation's share when its vote is averaged with the model's probabilities
# (`blend_vote`), chosen on synthetic valid among 0, 0.25, 0.5, 0.75 and 1
# (benchmarks/bench_vote.py; README, Real video, has its figures). The two err differently:
# the vote, on pretrained features, holds large objects whose look persists and loses small
# fast ones; the model, which learnt to track synthetic shapes, does the opposite.
VOTE_SHARE = 0.5


def blend_vote(
    probs: dict[int, np.ndarray], vote: torch.Tensor, vote_share: float = VOTE_SHARE
) -> dict[int, np.ndarray]:
    """Each object's probability ``(T, H, W)`` at the vote's size: ``1 - vote_share`` times
    the model's ``probs`` ``{id: (T, h, w)}`` (bilinearly resized) plus ``vote_share`` times
    the object's share of label propagation's vote ``(T, K + 1, H, W)`` (background first,
    then the objects in ascending id order: `propagation.propagate_soft`). Only the objects'
    channels are blended: `merge` then takes background as ``prod_k (1 - p_k)``, so with
    several objects ``vote_share = 1`` need not give the vote's own argmax (with one it
    does: background is then ``1 - q``)."""
    if not 0 <= vote_share <= 1:
        raise ValueError(f"vote_share must be between 0 and 1, not {vote_share}")
    ids = sorted(probs)
    if vote.shape[1] != len(ids) + 1:
        raise ValueError(f"the vote has {vote.shape[1] - 1} objects, the model's maps {len(ids)}")
    size = tuple(vote.shape[-2:])
    return {
        oid: (1 - vote_share) * upsample(probs[oid], size) + vote_share * vote[:, j].numpy()
        for j, oid in enumerate(ids, 1)
    }


def with_vote(
    probs: dict[int, np.ndarray],
    frames: np.ndarray,
    given: dict[int, tuple[int, np.ndarray]],
    vote_share: float = VOTE_SHARE,
    trunk: torch.nn.Module | None = None,
    start: int = 0,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """The model's ``probs`` ``{id: (T, h, w)}`` of a video ``(T, H, W, 3)`` blended
    (`blend_vote`) with label propagation's vote on ``trunk``'s features (default: HED's VGG16
    to block 3, `propagation.feature_extractor`), run from frame ``start`` on with the
    ``given`` masks ``{id: (frame, (H, W) bool)}``: earlier frames are not its memory and get
    no vote. Returns ``{id: (T, H, W)}``."""
    given = {oid: (t - start, mask) for oid, (t, mask) in given.items()}
    trunk = feature_extractor() if trunk is None else trunk
    vote = propagate_soft(trunk, frames[start:], given, progress=progress)
    vote = F.pad(vote, (0, 0, 0, 0, 0, 0, start, 0))  # (T, K + 1, H, W), zero before start
    return blend_vote(probs, vote, vote_share)


# --- online learning ------------------------------------------------------------------------
# Online learning (the paper's OL) per video: steps, learning rate and clip length, chosen
# together on synthetic valid (README, Speed: benchmarks/bench_online.py). On that split it is
# what lifts unseen categories (README, Results).
ONLINE_STEPS = 30
ONLINE_LR = 6e-4
ONLINE_CLIP_LEN = 2  # one target copy per given mask and step


def finetune_online(
    model: S2S,
    sample: VideoSample,
    steps: int = ONLINE_STEPS,
    size: tuple[int, int] | None = None,
    lr: float = ONLINE_LR,
    clip_len: int = ONLINE_CLIP_LEN,
    seed: int = 0,
    device: str | torch.device = "cpu",
    loss: str = "bce_iou",
    frozen: tuple[str, ...] = (),
    flip: bool = False,
    bf16: bool = False,
    progress: bool = False,
) -> S2S:
    """Online learning, as in the paper: a copy of ``model`` fine-tuned for ``steps`` Adam steps
    on the masks given for this video. Each step shows every given (frame, mask) as a short
    clip of randomly shifted, scaled and rotated copies of itself, the first copy initialising
    and the others as targets. ``loss`` names one of `vostutorial.losses.LOSSES`: use the one
    the model was trained with (`checkpoint.training_loss`). The parts named in ``frozen``
    (e.g. ``("encoder",)``) keep their weights and get no gradients: faster steps, at a cost
    in gain (``benchmarks/bench_online.py``). ``flip`` also mirrors each copy left-right half
    the time, as the paper's augmentation does (off by default: README, Speed, says what it
    gains). ``bf16`` runs the forward pass in bfloat16 autocast (weights, loss and Adam stay
    float32); it is off by default, because labels would then depend on the CPU, and CPUs
    without native bfloat16 run it slower. ``model`` itself is unchanged. All objects of the
    video are tuned together, as one batch."""
    size = size or model.cfg.input_size
    tuned = copy.deepcopy(model).to(device).train()
    for name in frozen:
        getattr(tuned, name).requires_grad_(False)
    opt = torch.optim.Adam([p for p in tuned.parameters() if p.requires_grad], lr=lr)
    jitter = v2.RandomAffine(degrees=8, translate=(0.06, 0.06), scale=(0.9, 1.1))
    if flip:
        jitter = v2.Compose([v2.RandomHorizontalFlip(), jitter])
    items = []
    for t0, mask in sample.first_masks.values():
        frame = frames_to_tensor(sample.frames[t0 : t0 + 1], size)[0, 0]
        m = masks_to_tensor(mask[None], size)[0]
        items.append((frame, m))
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(2**31, (1,), generator=g)))
        for _ in tqdm(range(steps), desc="online learning", unit="step", disable=not progress):
            frames, masks = [], []
            for frame, m in items:
                pairs = [(frame, m)] + [
                    jitter(tv_tensors.Image(frame), tv_tensors.Mask(m)) for _ in range(clip_len - 1)
                ]
                frames.append(torch.stack([f.as_subclass(torch.Tensor) for f, _ in pairs]))
                masks.append(torch.stack([x.as_subclass(torch.Tensor) for _, x in pairs]))
            frames, masks = torch.stack(frames).to(device), torch.stack(masks).to(device)
            with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
                logits = tuned(frames, masks[:, 0])
            value = LOSSES[loss](logits[:, 1:].float(), masks[:, 1:])
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
    return tuned.eval()


# --- a whole video, a whole split -----------------------------------------------------------
def predict_video(
    model: S2S,
    sample: VideoSample,
    online_steps: int = 0,
    loss: str = "bce_iou",
    merge_method: str = "argmax",
    device: str | torch.device = "cpu",
    fast: bool = True,
    short_side: int = PREDICT_SHORT_SIDE,
    vote_share: float = 0.0,
    trunk: torch.nn.Module | None = None,
    **online: object,
) -> np.ndarray:
    """One video's id maps ``(T, H, W)`` uint8 at its own resolution: ``online_steps`` of
    online learning on its given masks (``online``: more `finetune_online` keywords), then
    every object predicted at `predict_size` with ``short_side`` (`predict_objects`) and the
    maps merged (`merge`). A ``vote_share`` above 0 first averages the maps with label
    propagation's vote on ``trunk``'s features (`with_vote`)."""
    probs = tuned_probs(model, sample, online_steps, loss, device, short_side=short_side, **online)
    if vote_share:
        probs = with_vote(probs, sample.frames, sample.first_masks, vote_share, trunk)
    return merge(probs, sample.first_masks, merge_method, sample.frames.shape[1:3], fast=fast)


def tuned_probs(
    model: S2S,
    sample: VideoSample,
    online_steps: int = 0,
    loss: str = "bce_iou",
    device: str | torch.device = "cpu",
    progress: bool = False,
    short_side: int = PREDICT_SHORT_SIDE,
    **online: object,
) -> dict[int, np.ndarray]:
    """`predict_objects` at `predict_size` with ``short_side``, after ``online_steps`` of
    online learning on the video's given masks (``online``: more `finetune_online` keywords;
    it trains at the model's training size), with progress bars for both when asked."""
    net = model
    if online_steps:
        net = finetune_online(
            model, sample, online_steps, device=device, loss=loss, progress=progress, **online
        )
    start = min((t for t, _ in sample.first_masks.values()), default=0)
    # one ConvLSTM step per frame (all objects in one batch): a hook counts them for the bar
    frames = len(sample.frames) - start
    with tqdm(total=frames, desc="segment", unit="frame", disable=not progress) as bar:

        def one_frame(*_: object) -> None:  # (a hook that returned a value would replace h_t)
            bar.update()

        counting = net.lstm.register_forward_hook(one_frame)
        try:
            size = predict_size(sample.frames.shape[1:3], net.cfg.stride, short_side)
            return predict_objects(net, sample, size=size, device=device)
        finally:
            counting.remove()


def segment_clip(
    model: S2S,
    frames: np.ndarray,
    mask: np.ndarray,
    mask_frame: int = 0,
    online_steps: int = 0,
    loss: str = "bce_iou",
    before: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    return_probs: bool = False,
    progress: bool = False,
    vote_share: float = 0.0,
    trunk: torch.nn.Module | None = None,
) -> np.ndarray | tuple[np.ndarray, dict[int, np.ndarray]]:
    """Every frame's id map ``(T, H, W)`` uint8 of a clip ``(T, H, W, 3)`` whose objects are
    given by ``mask`` ``(H, W)`` ids on frame ``mask_frame``. The model starts there: for S2S
    the initializer builds the memory's first state from that frame and its mask, so a
    corrected mask on a later frame is a fresh start from the correction. Frames before
    ``mask_frame`` keep ``before`` (the earlier run's labels) or stay empty. With
    ``return_probs`` also each object's probability maps ``{id: (T, h, w)}`` at the model's
    size (`predict_objects`), from which `video.object_curves` reads the model's confidence.
    A ``vote_share`` above 0 averages them with label propagation's vote from ``mask_frame``
    on (`with_vote`; the maps are then at the clip's size)."""
    t = len(frames)
    if not 0 <= mask_frame < t:
        raise ValueError(f"mask frame {mask_frame} is outside the clip's {t} frames")
    if mask.shape != frames.shape[1:3]:
        raise ValueError(f"mask is {mask.shape}, the frames {frames.shape[1:3]}")
    ids = [int(i) for i in np.unique(mask) if i]
    sample = VideoSample(
        "clip",
        [f"{i:05d}" for i in range(t)],
        frames,
        {oid: (mask_frame, mask == oid) for oid in ids},
        dict.fromkeys(ids, "object"),
    )
    probs = tuned_probs(model, sample, online_steps, loss, device, progress)
    if vote_share:  # propagation starts where the mask is
        probs = with_vote(
            probs, frames, sample.first_masks, vote_share, trunk, mask_frame, progress
        )
    labels = merge(probs, sample.first_masks, fast=True)
    if before is not None:
        labels[:mask_frame] = before[:mask_frame]
    return (labels, probs) if return_probs else labels


def predict_split(
    root: str | os.PathLike,
    split: str,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    online_steps: int = 0,
    merge_method: str = "argmax",
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    fast: bool = True,
    all_frames: bool = False,
    short_side: int = PREDICT_SHORT_SIDE,
    vote_share: float = 0.0,
) -> Path:
    """Predict every video of ``root/split`` into ``out`` in the submission layout.

    With ``all_frames`` the network runs on every original frame of ``<split>_all_frames``
    (the official download has them) and only the split's stored frames are written: steps of
    one frame instead of five are easier to follow.

    ``out`` records what produced it (checkpoint hash, online steps, merge rule, split): a
    re-run with the same settings skips the videos an earlier, maybe interrupted, run
    finished; other settings are refused unless ``overwrite`` (`predictions.open_predictions`).
    Every file is written atomically. ``fast`` runs the CPU speed-ups of `vostutorial.fast`
    (the same labels). The model segments each video at `predict_size` with ``short_side``.
    A ``vote_share`` above 0 averages its maps with label propagation's vote on HED's VGG16
    (`blend_vote`; `VOTE_SHARE` is the kit's choice). Returns ``out``.
    """
    if online_steps < 0:
        raise ValueError(f"online_steps must be 0 or more, not {online_steps}")
    if not 0 <= vote_share <= 1:
        raise ValueError(f"vote_share must be between 0 and 1, not {vote_share}")
    if merge_method not in ("argmax", "threshold", "soft"):
        raise ValueError(f"unknown merge method {merge_method!r}; use argmax, threshold or soft")
    require_device(device)
    ds = YTVOSSplit(root, split)
    if all_frames and not ds.all_frames_dir.is_dir():
        raise ValueError(
            f"{ds.all_frames_dir}: not found; --all-frames needs the {split}_all_frames download "
            f"(e.g. valid_all_frames.zip) unpacked into {ds.root}"
        )
    ckpt = load_checkpoint(checkpoint)
    model, loss = model_from_checkpoint(ckpt, device, checkpoint), training_loss(ckpt)
    if fast:
        model = speed_up(model)
    trunk = feature_extractor() if vote_share else None  # before the long part: may fail
    out = Path(out)
    producer = {
        "method": "s2s",
        "checkpoint_sha256": file_sha256(checkpoint),
        "online_steps": online_steps,
        "merge": merge_method,
        "short_side": short_side,
        **({"all_frames": True} if all_frames else {}),  # older folders keep their tag
        **({"vote_share": vote_share} if vote_share else {}),
        **ds.identity(),
    }
    with open_predictions(out, producer, overwrite) as tag:
        todo = [v for v in ds.videos if overwrite or not video_done(out, v, tag)]
        for video in tqdm(todo, desc="predict", unit="video", disable=not progress):
            sample = ds.read_video_all_frames(video) if all_frames else ds.read_video(video)
            labels = predict_video(
                model, sample, online_steps, loss, merge_method, device, fast, short_side,
                vote_share, trunk,
            )  # fmt: skip
            names = sample.frame_names
            if all_frames:  # the network saw every frame; the stored ones are written
                stored = set(ds.videos[video].frames)
                rows = [i for i, n in enumerate(names) if n in stored]
                labels, names = labels[rows], [names[i] for i in rows]
            write_video_masks(out, video, names, labels, tag)
    return out
