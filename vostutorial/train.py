"""Training the S2S model: ``vostutorial train`` or, data-parallel on N processes,
``torchrun --nproc_per_node N -m vostutorial train ...`` (gloo on CPU, NCCL on GPUs).

Every hyper-parameter lives in one TOML file (`vostutorial.train_config`), printed at start
and saved as ``RUN_DIR/config.json``. Per step, ``RUN_DIR/log.jsonl`` gets one JSON line
(step, loss, the step's learning rate, seconds, data wait); every ``val_every`` steps it also
holds ``val_J``, J on a few held-out videos scored as ``vostutorial evaluate`` scores them.
Checkpoints (model, optimizer, scheduler, step, RNG states) are written atomically to
``RUN_DIR/last.pt``; ``--resume`` continues from it and, on CPU with a fixed seed, ends
bit-identical to a run that never stopped: each batch is a function of the seed and the step
alone, whichever process or worker draws it (`data.sampler`).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import (
    export_model,
    load_checkpoint,
    load_weights,
    model_from_checkpoint,
    model_state,
    save_atomic,
)
from .data.clips import ClipDataset
from .data.sampler import SeededClips, StepSampler, collate_clips
from .data.synthetic import ensure_default
from .data.ytvos import YTVOSSplit
from .evaluate import score_video
from .fast import speed_up
from .files import require_writable_dir, write_json, write_text
from .inference import merge, predict_objects
from .losses import LOSSES
from .models import S2S, ModelConfig, build_model
from .preflight import check_batch_fits, check_data, check_run_folder, warn_slow_bf16
from .resources import gib, ignore_interrupt, require_device, usable_cpus
from .train_config import TrainConfig, check_config


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from 1 to ``min_lr``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def loss_at(cfg: TrainConfig, step: int) -> Callable[[Tensor, Tensor], Tensor]:
    """The loss of (1-based) ``step``: ``cfg.loss``, then plain BCE after ``cfg.bce_from``.

    Balanced BCE keeps early training off "all background" but inflates foreground
    probabilities; plain BCE for the last steps makes 0.5 the right threshold again."""
    return LOSSES["bce"] if cfg.bce_from and step > cfg.bce_from else LOSSES[cfg.loss]


def rng_state() -> dict:
    """Every RNG's state as tensors and plain values (checkpoints load with weights_only)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    random.setstate(state["python"])
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@torch.no_grad()
def validate(model: S2S, split: YTVOSSplit, videos: int, device: torch.device | str) -> float:
    """Mean J over the objects of the first ``videos`` videos of ``split``, scored as
    ``vostutorial evaluate`` scores them: merged predictions, every frame after the given one
    (`evaluate.score_video`)."""
    scores = []
    for video in list(split.videos)[:videos]:
        sample = split.read_video(video)
        probs = predict_objects(model, sample, device=device)
        labels = merge(probs, sample.first_masks, size=sample.frames.shape[1:3])
        given = {oid: t for oid, (t, _) in sample.first_masks.items()}
        for j, _ in score_video(labels, split.masks(video), given).values():
            if len(j):
                scores.append(j.mean())
    return float(np.mean(scores)) if scores else float("nan")


class Processes(NamedTuple):
    """Where this process trains: its rank among ``world`` processes and its device."""

    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:  # the process that logs, validates and checkpoints
        return self.rank == 0


def _distributed(device: str) -> Processes:
    """This process's place; starts the process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Processes(0, 1, torch.device(device))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
    return Processes(dist.get_rank(), world, dev)


@dataclass
class TrainState:
    """Everything a training step changes, saved together in a checkpoint: the model, Adam,
    the learning-rate schedule, the loss scaler (on only for ``amp`` on CUDA) and the number
    of steps taken. ``net`` is what the forward pass runs: the model, or on N processes the
    model wrapped in DistributedDataParallel (`train` wraps it)."""

    model: S2S
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    step: int = 0
    net: nn.Module | None = None

    def __post_init__(self) -> None:
        self.net = self.net or self.model


def make_trainer(
    cfg: TrainConfig, dev: torch.device, model_config: ModelConfig | None = None
) -> TrainState:
    """A fresh `TrainState`, the model (``model_config``, else ``CONFIGS[cfg.model]``) drawn
    from torch's current RNG state."""
    # the model remembers the size it is trained at, and inference runs it there;
    # channels-last weights and activations, as the shipped checkpoint was trained
    config = model_config or cfg.model
    model = build_model(config, cfg.pretrained or None, input_size=tuple(cfg.size))
    model = speed_up(model.to(dev))
    learnt = [p for p in model.parameters() if p.requires_grad]  # not a frozen trunk
    opt = torch.optim.Adam(learnt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and dev.type == "cuda")
    return TrainState(model, opt, sched, scaler)


def _save(path: Path, cfg: TrainConfig, state: TrainState, data: dict) -> None:
    """A checkpoint: ``state``, the settings and the ``data`` trained on (`YTVOSSplit.identity`)."""
    ckpt = {
        "model": model_state(state.model),
        "trunk": state.model.pretrained_from,
        "optimizer": state.opt.state_dict(),
        "scheduler": state.sched.state_dict(),
        "scaler": state.scaler.state_dict(),
        "step": state.step,
        "rng": rng_state(),
        "train_config": asdict(cfg),
        "model_config": asdict(state.model.cfg),
        "data": data,
    }
    save_atomic(ckpt, path)


def _resume(path: Path, cfg: TrainConfig, state: TrainState, data: dict | None = None) -> None:
    """Load a run's checkpoint into ``state``. Only ``steps`` may differ from the settings it
    was trained with, and the training data must be the same (``data``; runs from before
    checkpoints recorded it are taken as they are)."""
    ckpt = load_checkpoint(path)
    if data and ckpt.get("data") and ckpt["data"] != data:
        raise ValueError(
            f"{path}: was trained on other data ({ckpt['data']['split']} has changed since: "
            "meta.json or its files); give --data the data it was trained on, or --overwrite "
            "to start over"
        )
    saved = {"bf16": False}  # runs from before the setting trained in float32
    saved |= {k: v for k, v in ckpt["train_config"].items() if k != "steps"}
    now = asdict(cfg)
    changed = {
        k: (v, now.get(k)) for k, v in saved.items() if json.dumps(v) != json.dumps(now.get(k))
    }
    if changed:
        raise ValueError(
            f"{path}: was trained with other settings {changed} "
            "(saved, now); only --steps may change on --resume"
        )
    load_weights(state.model, ckpt["model"], path)
    state.opt.load_state_dict(ckpt["optimizer"])
    state.sched.load_state_dict(ckpt["scheduler"])
    state.scaler.load_state_dict(ckpt["scaler"])
    state.step = ckpt["step"]


def _loader(clips: ClipDataset, cfg: TrainConfig, start: int, procs: Processes) -> DataLoader:
    workers = min(cfg.workers, usable_cpus())  # more processes than CPUs only compete
    if workers < cfg.workers and procs.main:
        print(f"loader workers: {workers} ({cfg.workers} configured, {usable_cpus()} CPUs usable)")
    rank, world = procs.rank, procs.world
    sampler = StepSampler(len(clips), cfg.batch_size, cfg.seed, start, cfg.steps, rank, world)
    return DataLoader(
        SeededClips(clips),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=procs.device.type == "cuda",
        worker_init_fn=ignore_interrupt,
    )


def _batches(loader: DataLoader, ckpt_path: Path, resume: bool) -> Iterator[dict]:
    """The loader's iterator. Making it draws the workers' base seed from torch's RNG, so on
    resume the saved RNG state is set back after it: the steps' own draws (the feedback fade)
    then continue exactly as in a run that never stopped."""
    batches = iter(loader)
    if resume:
        set_rng_state(load_checkpoint(ckpt_path)["rng"])
    return batches


def feedback_dims(cfg: TrainConfig, clips: int, rank: int = 0, world: int = 1) -> Tensor:
    """This process's share ``(clips, 1, 1, 1)`` of the fed-back masks' dimming factors, drawn
    in [1 - fade_feedback, 1] for the whole batch over all processes: each process draws the
    same numbers (same seed) and keeps its slice, so N processes train exactly like one."""
    u = torch.rand(world * clips, 1, 1, 1)[rank * clips : (rank + 1) * clips]
    return 1 - cfg.fade_feedback * u


def mixed_precision(cfg: TrainConfig, dev: torch.device) -> torch.autocast:
    """The forward pass's number format: float16 on CUDA with ``amp`` (its loss is scaled by
    the `GradScaler`), bfloat16 on CPU with ``bf16``; weights, loss and Adam stay float32."""
    if dev.type == "cuda":
        return torch.autocast("cuda", enabled=cfg.amp)
    return torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.bf16)


def train_step(
    state: TrainState, batch: dict, cfg: TrainConfig, procs: Processes | None = None
) -> tuple[Tensor, float]:
    """One optimizer step on a batch of clips (``frames`` ``(B, T, 3, H, W)``, ``first_mask``
    ``(B, 1, H, W)``, ``masks`` ``(B, T, 1, H, W)``); advances ``state`` and returns the
    loss (this process's, a tensor) and the learning rate the step used.

    The first frame's mask is the model's input: frames 1..T-1 are scored, and frame 0 too
    with ``cfg.score_first`` (for a model with feedback, "keep the mask you were given")."""
    if "error" in batch:  # a clip's file could not be read (`collate_clips`)
        raise ValueError(batch["error"])
    procs = procs or Processes(0, 1, torch.device("cpu"))
    frames, first, masks = (
        batch[k].to(procs.device, non_blocking=True) for k in ("frames", "first_mask", "masks")
    )
    state.net.train()
    with mixed_precision(cfg, procs.device):
        if cfg.fade_feedback > 0:  # only `TrackingS2S` with feedback takes it (check_config)
            dims = feedback_dims(cfg, frames.shape[0], procs.rank, procs.world)
            logits = state.net(frames, first, feedback_dim=dims.to(procs.device))
        else:
            logits = state.net(frames, first)  # (B, T, 1, H, W)
    t0 = 0 if cfg.score_first else 1
    loss = loss_at(cfg, state.step + 1)(logits[:, t0:].float(), masks[:, t0:])
    state.opt.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    state.scaler.unscale_(state.opt)
    nn.utils.clip_grad_norm_(state.net.parameters(), cfg.grad_clip)
    lr = state.opt.param_groups[0]["lr"]  # this step's, before the scheduler moves on
    state.scaler.step(state.opt)
    state.scaler.update()
    state.sched.step()
    state.step += 1
    return loss.detach(), lr


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines past the checkpoint: steps after it are re-run on resume. A torn last
    line (the run was killed while writing it) is after the checkpoint too, so it goes."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
        except ValueError:
            if i == len(lines) - 1:
                continue
            raise ValueError(
                f"{path}: line {i + 1} is not JSON (damaged log); delete the line, or the run "
                "folder to start over"
            ) from None
        if rec.get("step", 0) <= step:
            kept.append(ln)
    write_text(path, "".join(ln + "\n" for ln in kept))


def _start_log(out: Path, cfg: TrainConfig, start: int) -> Path:
    """``out/log.jsonl`` ready for step ``start + 1``, and ``out/config.json`` written."""
    require_writable_dir(out)
    log = out / "log.jsonl"
    if start:
        _truncate_log(log, start)
    else:  # a new run (or --overwrite) starts its log over
        log.unlink(missing_ok=True)
    write_json(out / "config.json", asdict(cfg))
    return log


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
    model_config: ModelConfig | None = None,
) -> Path:
    """Train, checkpointing into ``out``; returns the path of the last checkpoint.

    Every argument, the data and the memory a batch needs are checked before ``out`` is
    touched; an existing run there is continued only with ``resume`` and replaced only with
    ``overwrite``. ``model_config`` trains a model of its own (an ablation's variant) instead
    of the registry's ``cfg.model``."""
    # Check everything first: nothing is written before the run can start.
    check_config(cfg)
    require_device(device)
    procs = _distributed(device)
    say = print if procs.main else (lambda *a, **k: None)
    out, ckpt_path = Path(out), Path(out) / "last.pt"
    check_run_folder(out, resume, overwrite)
    root = Path(data) if data else ensure_default(progress=False)
    clips, val = check_data(root, cfg)
    seed_everything(cfg.seed)
    state = make_trainer(cfg, procs.device, model_config)
    per_clip = check_batch_fits(state.model, cfg, procs.device, procs.world)
    say(f"config: {json.dumps(asdict(cfg))}")
    say(f"memory: about {gib(per_clip)} per clip in a training step on {procs.device.type}")
    warn_slow_bf16(cfg, procs.device, say)
    if val is None:
        say(f"no {root / cfg.val_split}: training without validation")
    data_id = clips.split.identity()
    if resume:
        _resume(ckpt_path, cfg, state, data_id)
        say(f"resuming {ckpt_path} at step {state.step}")
    log_path = _start_log(out, cfg, state.step) if procs.main else None
    if procs.world > 1:  # gradients averaged over the processes
        state.net = nn.parallel.DistributedDataParallel(state.model)

    # The loop: a step, validation now and then, a log line, a checkpoint now and then.
    loader = _loader(clips, cfg, state.step, procs)
    quiet = not (procs.main and progress)
    bar = tqdm(total=cfg.steps, initial=state.step, desc="train", unit="step", disable=quiet)
    clock = time.perf_counter()
    try:
        for batch in _batches(loader, ckpt_path, resume):
            waited = time.perf_counter() - clock
            loss, lr = train_step(state, batch, cfg, procs)
            rec = _log_record(state.step, _mean_over_processes(loss, procs), lr, clock, waited)
            if state.step % cfg.val_every == 0 or state.step == cfg.steps:
                _validate(rec, state.model, val, cfg, procs)
            clock = time.perf_counter()  # validation is not training time
            if procs.main:
                _append_line(log_path, rec)
                bar.update()
                bar.set_postfix({k: rec[k] for k in ("loss", "val_J") if k in rec})
                if state.step % cfg.ckpt_every == 0 or state.step == cfg.steps:
                    _save(ckpt_path, cfg, state, data_id)
    finally:
        bar.close()
        if procs.world > 1:
            dist.destroy_process_group()
    say(f"trained to step {state.step}; checkpoint {ckpt_path}")
    return ckpt_path


def _mean_over_processes(loss: Tensor, procs: Processes) -> float:
    if procs.world > 1:
        dist.all_reduce(loss)
        loss /= procs.world
    return loss.item()


def _log_record(step: int, loss: float, lr: float, clock: float, waited: float) -> dict:
    """A step's log line: its loss and learning rate, its seconds since the last step ended
    and how many of them it waited for data."""
    seconds = time.perf_counter() - clock
    return {
        "step": step,
        "loss": round(loss, 6),
        "lr": lr,
        "seconds": round(seconds, 4),
        "data_wait": round(waited, 4),
    }


def _validate(
    rec: dict, model: S2S, val: YTVOSSplit | None, cfg: TrainConfig, procs: Processes
) -> None:
    """Add ``val_J`` to the step's log line (the main process scores; the others wait)."""
    if procs.main and val is not None:
        rec["val_J"] = round(validate(model, val, cfg.val_videos, procs.device), 4)
    if procs.world > 1:
        dist.barrier()


def _append_line(path: Path, rec: dict) -> None:
    with open(path, "a") as log:  # a line per step, on disk before the next
        log.write(json.dumps(rec) + "\n")


def export_run(run_dir: Path, path: Path) -> Path:
    """Write a run's final weights (float16) to ``path`` with its training log beside it
    (``<path stem>.log.jsonl``), for notebooks and the shipped checkpoint."""
    ckpt = load_checkpoint(run_dir / "last.pt")
    model = model_from_checkpoint(ckpt, "cpu", run_dir / "last.pt")
    export_model(model, path, {"train_config": ckpt["train_config"], "step": ckpt["step"]})
    log = path.with_suffix(".log.jsonl")  # the curves travel with the weights
    write_text(log, (run_dir / "log.jsonl").read_text())
    return log
