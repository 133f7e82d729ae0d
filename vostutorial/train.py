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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
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
from .models import S2S, build_model
from .preflight import check_batch_fits, check_data, check_run_folder, warn_slow_bf16
from .resources import gib, require_device, usable_cpus
from .train_config import TrainConfig, check_config


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay from 1 to ``min_lr``."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def loss_at(cfg: TrainConfig, step: int):
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
def validate(model: S2S, split: YTVOSSplit, videos: int, device) -> float:
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


def _distributed(device: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, torch.device(device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "cuda":
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device == "cuda" else "gloo")
    dev = torch.device("cuda", local) if device == "cuda" else torch.device("cpu")
    return dist.get_rank(), world, dev


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


def _resume(path: Path, cfg: TrainConfig, model: S2S, opt, sched, scaler) -> int:
    """Load a run's checkpoint into the training objects; returns its step. Only ``steps``
    may differ from the settings it was trained with."""
    ckpt = load_checkpoint(path)
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
    load_weights(model, ckpt["model"], path)
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    scaler.load_state_dict(ckpt["scaler"])
    return ckpt["step"]


def _save(path: Path, cfg: TrainConfig, model: S2S, opt, sched, scaler, step: int) -> None:
    state = {
        "model": model_state(model),
        "trunk": model.pretrained_from,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "rng": rng_state(),
        "train_config": asdict(cfg),
        "model_config": asdict(model.cfg),
    }
    save_atomic(state, path)


def _loader(clips: ClipDataset, cfg: TrainConfig, start: int, rank: int, world: int, dev, say):
    workers = min(cfg.workers, usable_cpus())  # more processes than CPUs only compete
    if workers < cfg.workers:
        say(f"loader workers: {workers} ({cfg.workers} configured, {usable_cpus()} CPUs usable)")
    sampler = StepSampler(len(clips), cfg.batch_size, cfg.seed, start, cfg.steps, rank, world)
    return DataLoader(
        SeededClips(clips),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=dev.type == "cuda",
    )


def _batches(loader: DataLoader, ckpt_path: Path, resume: bool):
    """The loader's iterator. Making it draws the workers' base seed from torch's RNG, so on
    resume the saved RNG state is set back after it: the steps' own draws (the feedback fade)
    then continue exactly as in a run that never stopped."""
    batches = iter(loader)
    if resume:
        set_rng_state(load_checkpoint(ckpt_path)["rng"])
    return batches


def feedback_dims(cfg: TrainConfig, clips: int, rank: int = 0, world: int = 1):
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
    net, batch: dict, opt, sched, scaler, loss_fn, cfg: TrainConfig, dev, rank=0, world=1
) -> tuple:
    """One optimizer step on a batch of clips; returns (loss, learning rate it used).

    The first frame's mask is the model's input: frames 1..T-1 are scored, and frame 0 too
    with ``cfg.score_first`` (for a model with feedback, "keep the mask you were given")."""
    if "error" in batch:  # a clip's file could not be read (`collate_clips`)
        raise ValueError(batch["error"])
    frames, first, masks = (
        batch[k].to(dev, non_blocking=True) for k in ("frames", "first_mask", "masks")
    )
    net.train()
    with mixed_precision(cfg, dev):
        if cfg.fade_feedback > 0:  # only `TrackingS2S` with feedback takes it (check_config)
            dims = feedback_dims(cfg, frames.shape[0], rank, world).to(dev)
            logits = net(frames, first, feedback_dim=dims)  # (B, T, 1, H, W)
        else:
            logits = net(frames, first)
    t0 = 0 if cfg.score_first else 1
    loss = loss_fn(logits[:, t0:].float(), masks[:, t0:])
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
    lr = opt.param_groups[0]["lr"]  # this step's, before the scheduler moves on
    scaler.step(opt)
    scaler.update()
    sched.step()
    return loss.detach(), lr


def make_trainer(cfg: TrainConfig, dev: torch.device) -> tuple:
    """The model (from torch's current RNG state), Adam, the learning-rate schedule and the
    loss scaler (on only for ``amp`` on CUDA) that `train` steps with `train_step`."""
    # the model remembers the size it is trained at, and inference runs it there;
    # channels-last weights and activations, as the shipped checkpoint was trained
    model = build_model(cfg.model, cfg.pretrained or None, input_size=tuple(cfg.size))
    model = speed_up(model.to(dev))
    learnt = [p for p in model.parameters() if p.requires_grad]  # not a frozen trunk
    opt = torch.optim.Adam(learnt, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and dev.type == "cuda")
    return model, opt, sched, scaler


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train, checkpointing into ``out``; returns the path of the last checkpoint.

    Every argument, the data and the memory a batch needs are checked before ``out`` is
    touched; an existing run there is continued only with ``resume`` and replaced only with
    ``overwrite``."""
    check_config(cfg)
    require_device(device)
    rank, world, dev = _distributed(device)
    main, out = rank == 0, Path(out)
    say = print if main else (lambda *a, **k: None)
    check_run_folder(out, resume, overwrite)
    root = Path(data) if data else ensure_default(progress=False)
    clips, val = check_data(root, cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model, opt, sched, scaler = make_trainer(cfg, dev)
    per_clip = check_batch_fits(model, cfg, dev, world)
    ckpt_path, log_path = out / "last.pt", out / "log.jsonl"
    start = _resume(ckpt_path, cfg, model, opt, sched, scaler) if resume else 0
    if main:
        require_writable_dir(out)
        if start:
            _truncate_log(log_path, start)
        else:  # a new run (or --overwrite) starts its log over
            log_path.unlink(missing_ok=True)
        write_json(out / "config.json", asdict(cfg))
    say(("resuming " + str(ckpt_path) + f" at step {start}\n" if resume else "")
        + "config: " + json.dumps(asdict(cfg)))  # fmt: skip
    say(f"memory: about {gib(per_clip)} per clip in a training step on {dev.type}")
    warn_slow_bf16(cfg, dev, say)
    if val is None:
        say(f"no {root / cfg.val_split}: training without validation")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    loader = _loader(clips, cfg, start, rank, world, dev, say)
    bar = tqdm(total=cfg.steps, initial=start, desc="train", unit="step",
               disable=not (main and progress))  # fmt: skip
    t_prev, step = time.perf_counter(), start
    try:
        for step, batch in enumerate(_batches(loader, ckpt_path, resume), start=start + 1):
            t_data = time.perf_counter()
            loss, lr = train_step(net, batch, opt, sched, scaler, loss_at(cfg, step), cfg, dev,
                                  rank, world)  # fmt: skip
            if world > 1:  # the mean over processes, for the log
                dist.all_reduce(loss)
                loss /= world
            rec = {"step": step, "loss": round(loss.item(), 6), "lr": lr,
                   "seconds": round(time.perf_counter() - t_prev, 4),
                   "data_wait": round(t_data - t_prev, 4)}  # fmt: skip
            if step % cfg.val_every == 0 or step == cfg.steps:
                if main and val is not None:
                    rec["val_J"] = round(validate(model, val, cfg.val_videos, dev), 4)
                if world > 1:
                    dist.barrier()
            t_prev = time.perf_counter()  # validation is not training time
            if main:
                with open(log_path, "a") as log:  # a line per step, on disk before the next
                    log.write(json.dumps(rec) + "\n")
                bar.update()
                bar.set_postfix({k: rec[k] for k in ("loss", "val_J") if k in rec})
                if step % cfg.ckpt_every == 0 or step == cfg.steps:
                    _save(ckpt_path, cfg, model, opt, sched, scaler, step)
    finally:
        bar.close()
        if world > 1:
            dist.destroy_process_group()
    say(f"trained to step {step}; checkpoint {ckpt_path}")
    return ckpt_path


def export_run(run_dir: Path, path: Path) -> Path:
    """Write a run's final weights (float16) to ``path`` with its training log beside it
    (``<path stem>.log.jsonl``), for notebooks and the shipped checkpoint."""
    ckpt = load_checkpoint(run_dir / "last.pt")
    model = model_from_checkpoint(ckpt, "cpu", run_dir / "last.pt")
    export_model(model, path, {"train_config": ckpt["train_config"], "step": ckpt["step"]})
    log = path.with_suffix(".log.jsonl")  # the curves travel with the weights
    write_text(log, (run_dir / "log.jsonl").read_text())
    return log
