"""What `train` checks before step 1, so that a run never fails late or loses data: the run
folder, the data, and the memory one batch needs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from .data.clips import ClipDataset
from .data.ytvos import YTVOSSplit
from .files import is_empty_dir
from .losses import LOSSES
from .models import S2S
from .resources import available_memory, gib, native_bf16, peak_memory
from .train_config import TrainConfig

RUN_FILES = ("last.pt", "log.jsonl", "config.json")  # what marks a folder as a run of ours


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, an ``--out`` that would lose data: a run without
    ``--resume``/``--overwrite``, a folder that is not a run, a file, a read-only place."""
    ours = [f for f in RUN_FILES if (out / f).exists()]
    started = ours and "last.pt" not in ours  # stopped before its first checkpoint
    if resume:
        if started:
            raise ValueError(
                f"{out}: the run there stopped before its first checkpoint, so there is nothing "
                "to resume: pass --overwrite instead of --resume to start it over"
            )
        if not ours:
            raise ValueError(f"{out / 'last.pt'}: no checkpoint to --resume; drop --resume")
        return
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: --out is a file, not a folder; name a folder for the run")
    if started and not overwrite:
        raise ValueError(
            f"{out}: holds a run that stopped before its first checkpoint; pass --overwrite to "
            "start it over, or choose another --out"
        )
    if ours and not overwrite:
        raise ValueError(
            f"{out}: holds a run ({', '.join(ours)}); pass --resume to continue it, "
            "--overwrite to start it over, or choose another --out"
        )
    if not ours and not is_empty_dir(out):
        raise ValueError(
            f"{out}: not a run folder and not empty; refusing to write into it: "
            "choose a new or empty --out"
        )
    if out.exists() and not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"{out}: --out is not writable; choose a folder you can write to")


def check_data(root: Path, cfg: TrainConfig) -> tuple[ClipDataset, YTVOSSplit | None]:
    """The training clips and the validation split, checked before step 1: every frame file
    that meta.json promises exists, and the validation videos decode (a bad file there would
    otherwise surface only at the first validation, hundreds of steps in)."""
    split = YTVOSSplit(root, cfg.split)
    clips = ClipDataset(split, cfg.clip_len, tuple(cfg.size), cfg.max_skip, augment=True)
    if not (root / cfg.val_split / "meta.json").exists():
        return clips, None
    val = YTVOSSplit(root, cfg.val_split)
    for video in list(val.videos)[: cfg.val_videos]:
        val.read_video(video)
        val.masks(video)
    return clips, val


def check_batch_fits(model: S2S, cfg: TrainConfig, dev: torch.device, world: int) -> int:
    """Measure one clip's training step and refuse a batch that cannot fit in memory, with the
    largest that does. Returns the bytes one clip needs. The probe draws no random numbers and
    leaves no gradients, so training is unchanged by it."""
    h, w = cfg.size
    frames = torch.linspace(0, 1, cfg.clip_len * 3 * h * w, device=dev)
    frames = frames.reshape(1, cfg.clip_len, 3, h, w)
    first = torch.zeros(1, 1, h, w, device=dev)
    first[..., h // 4 : h // 2, w // 4 : w // 2] = 1

    def one_clip() -> None:
        model.train()
        logits = model(frames, first)
        LOSSES[cfg.loss](logits[:, 1:].float(), frames[:, 1:, :1]).backward()

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        per_clip = peak_memory(one_clip, dev)
    model.zero_grad(set_to_none=True)
    avail = torch.cuda.mem_get_info(dev)[0] if dev.type == "cuda" else available_memory()
    per_process = cfg.batch_size // world
    if avail is None or per_clip * per_process <= 0.9 * avail:
        return per_clip
    fits = int(0.9 * avail // max(per_clip, 1)) * world
    raise ValueError(
        f"batch_size {cfg.batch_size}: one training step needs about "
        f"{gib(per_clip * per_process)} ({gib(per_clip)} per clip of {cfg.clip_len} frames at "
        f"{h}x{w} on {dev.type}), but {gib(avail)} is available; the largest batch that fits is "
        + (f"--set batch_size={fits}" if fits else "none: use --set size=[...] smaller frames")
    )


def warn_slow_bf16(cfg: TrainConfig, dev: torch.device, say: Callable[[str], None] = print) -> None:
    """Say so when ``bf16`` would emulate bfloat16 on this CPU, slower than float32."""
    if cfg.bf16 and dev.type == "cpu" and not native_bf16():
        say(
            "bf16: this CPU has no native bfloat16 (AMX / AVX512-BF16), so steps run slower than "
            "in float32; --set bf16=false trains faster (other numbers than the shipped run)"
        )
