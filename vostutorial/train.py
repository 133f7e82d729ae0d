"""Training the S2S model: ``vostutorial train`` or, data-parallel on N processes,
``torchrun --nproc_per_node N -m vostutorial train ...`` (gloo on CPU, NCCL on GPUs).

Every hyper-parameter lives in one TOML file (``configs/tiny.toml``, ``configs/paper.toml``),
printed at start and saved as ``RUN_DIR/config.json``. Per step, ``RUN_DIR/log.jsonl`` gets one
JSON line (step, loss, lr, seconds, data wait); every ``val_every`` steps a validation line with
J on a few held-out videos. Checkpoints (model, optimizer, scheduler, step, RNG states) are
written atomically to ``RUN_DIR/last.pt``; ``--resume`` continues from it and, on CPU with a
fixed seed, ends bit-identical to a run that never stopped: each batch is a function of the
seed and the step alone, whichever process or worker draws it.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler, default_collate
from tqdm.auto import tqdm

from .checkpoint import (
    export_model,
    load_checkpoint,
    load_weights,
    model_from_checkpoint,
    save_atomic,
)
from .data.clips import ClipDataset
from .data.synthetic import ensure_default
from .data.ytvos import YTVOSSplit
from .fast import speed_up
from .files import is_empty_dir, require_writable_dir, write_json, write_text
from .inference import predict_objects, upsample
from .losses import LOSSES
from .metrics import jaccard
from .models import CONFIGS, build_model
from .resources import available_memory, gib, peak_memory, require_device, usable_cpus

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class TrainConfig:
    """All training hyper-parameters (see configs/*.toml for what each means)."""

    model: str = "tiny"
    size: tuple[int, int] = (128, 224)
    split: str = "train"
    val_split: str = "valid"
    clip_len: int = 5
    max_skip: int = 2
    batch_size: int = 8
    steps: int = 900
    lr: float = 2e-3
    warmup: int = 50
    min_lr: float = 0.05
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    loss: str = "balanced"
    bce_from: int = 0
    val_every: int = 150
    val_videos: int = 8
    ckpt_every: int = 100
    workers: int = 2
    seed: int = 0
    amp: bool = True
    pretrained: str = ""


def load_config(name_or_path: str, overrides: dict | None = None) -> TrainConfig:
    """A config by name (``configs/<name>.toml``) or path, with ``overrides`` applied."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
        raise ValueError(f"{path}: config not found (known: {known}, or give a .toml path)")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML ({exc})") from None
    raw |= overrides or {}
    names = {f.name: f for f in fields(TrainConfig)}
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ValueError(f"{path}: unknown settings {unknown}; known: {sorted(names)}")
    cfg = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    check_config(cfg, path)
    return cfg


# (type, lowest allowed value) of every number setting; the others are checked by name below
_NUMBERS = {
    "clip_len": (int, 2), "max_skip": (int, 1), "batch_size": (int, 1), "steps": (int, 1),
    "warmup": (int, 0), "bce_from": (int, 0), "val_every": (int, 1), "val_videos": (int, 0),
    "ckpt_every": (int, 1), "workers": (int, 0), "seed": (int, 0),
    "lr": (float, 0.0), "min_lr": (float, 0.0), "weight_decay": (float, 0.0),
    "grad_clip": (float, 0.0),
}  # fmt: skip


def check_config(cfg: TrainConfig, where: str | os.PathLike = "config") -> None:
    """Every setting of the right type and range, or a ValueError naming the key (the
    value may come from the file or from ``--set``)."""

    def bad(key: str, want: str) -> ValueError:
        return ValueError(f"{where}: {key} must be {want}, not {getattr(cfg, key)!r}")

    for key, (kind, low) in _NUMBERS.items():
        v = getattr(cfg, key)
        ok_type = type(v) is int or (kind is float and type(v) is float)
        if not ok_type or v < low or (kind is float and key in ("lr", "grad_clip") and v <= 0):
            raise bad(key, f"{'an integer' if kind is int else 'a number'} >= {low}"
                      + (" and > 0" if key in ("lr", "grad_clip") else ""))  # fmt: skip
    if cfg.min_lr > 1:
        raise bad("min_lr", "a fraction of lr in [0, 1]")
    size = cfg.size
    if not (isinstance(size, tuple) and len(size) == 2
            and all(type(s) is int and s > 0 and s % 32 == 0 for s in size)):  # fmt: skip
        raise bad("size", "[H, W], two positive multiples of 32")
    if cfg.model not in CONFIGS:
        raise bad("model", f"one of {sorted(CONFIGS)}")
    if cfg.loss not in LOSSES:
        raise bad("loss", f"one of {sorted(LOSSES)}")
    for key in ("split", "val_split", "pretrained"):
        if not isinstance(getattr(cfg, key), str):
            raise bad(key, "a string")
    if not isinstance(cfg.amp, bool):
        raise bad("amp", "true or false")


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lr=1e-3``, ``size=[64, 96]``, ``loss="bce"``)."""
    key, eq, value = text.partition("=")
    if not eq or not key.strip():
        raise ValueError(f"--set {text!r}: expected KEY=VALUE, e.g. --set lr=1e-4")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value  # a bare string


class StepSampler(Sampler):
    """Batches as a pure function of (seed, step): step s draws ``batch_size`` clip indices
    from its own generator, and every clip gets its own augmentation seed. Process ``rank``
    of ``world`` takes its consecutive share, so N processes see exactly the batch one would."""

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
    ):
        if batch_size % world:
            raise ValueError(f"batch_size {batch_size} must divide evenly over {world} processes")
        self.n, self.batch, self.seed = n, batch_size, seed
        self.start, self.stop, self.rank, self.world = start, stop, rank, world

    def __iter__(self):
        per = self.batch // self.world
        for step in range(self.start, self.stop):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            idx = torch.randint(self.n, (self.batch,), generator=g).tolist()
            seeds = torch.randint(2**62, (self.batch,), generator=g).tolist()
            lo = self.rank * per
            yield list(zip(idx[lo : lo + per], seeds[lo : lo + per], strict=True))

    def __len__(self) -> int:
        return self.stop - self.start


class SeededClips(torch.utils.data.Dataset):
    """`ClipDataset` items drawn with a given seed: ``ds[(index, seed)]``. The seed goes into
    a forked RNG, so neither the caller's RNG nor the worker a clip lands on matters."""

    def __init__(self, clips: ClipDataset):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        index, seed = key
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                item = self.clips[index]
        except (ValueError, OSError) as exc:
            # Travels to the main process as data (`collate_clips`), where it is raised as
            # one line naming the file, not as a worker's 30-line traceback.
            return {"error": str(exc)}
        return {k: item[k] for k in ("frames", "first_mask", "masks")}


def collate_clips(items: list[dict]) -> dict:
    """``default_collate``, or ``{"error": message}`` if a clip could not be read."""
    errors = [it["error"] for it in items if "error" in it]
    return {"error": errors[0]} if errors else default_collate(items)


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
def validate(model, split: YTVOSSplit, videos: int, size, device) -> float:
    """Mean J over the objects of the first ``videos`` videos (every frame after the given one)."""
    scores = []
    for video in list(split.videos)[:videos]:
        sample = split.read_video(video)
        probs = predict_objects(model, sample, size, device)
        gt = split.masks(video)
        for oid, (t0, _) in sample.first_masks.items():
            if t0 + 1 < len(gt):
                p = upsample(probs[oid][t0 + 1 :], gt.shape[1:])
                scores.append(jaccard(p > 0.5, gt[t0 + 1 :] == oid).mean())
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


RUN_FILES = ("last.pt", "log.jsonl", "config.json")  # what marks a folder as a run of ours


def check_run_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything is written, an ``--out`` that would lose data: a run without
    ``--resume``/``--overwrite``, a folder that is not a run, a file, a read-only place."""
    if resume:
        if not (out / "last.pt").exists():
            raise ValueError(f"{out / 'last.pt'}: no checkpoint to --resume; drop --resume")
        return
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: --out is a file, not a folder; name a folder for the run")
    ours = [f for f in RUN_FILES if (out / f).exists()]
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


def check_batch_fits(model, cfg: TrainConfig, dev: torch.device, world: int) -> int:
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
    out = Path(out)
    main = rank == 0
    say = print if main else (lambda *a, **k: None)
    check_run_folder(out, resume, overwrite)
    root = Path(data) if data else ensure_default(progress=False)
    clips, val = check_data(root, cfg)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    # the model remembers the size it is trained at: inference runs it there
    model = build_model(cfg.model, cfg.pretrained or None, input_size=tuple(cfg.size))
    # channels-last weights and activations, as the shipped checkpoint was trained
    model = speed_up(model.to(dev))
    per_clip = check_batch_fits(model, cfg, dev, world)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    use_amp = cfg.amp and dev.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    start = 0
    ckpt_path, log_path = out / "last.pt", out / "log.jsonl"
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        saved = {k: v for k, v in ckpt["train_config"].items() if k != "steps"}
        changed = {
            k: (v, getattr(cfg, k))
            for k, v in saved.items()
            if json.dumps(v) != json.dumps(getattr(cfg, k))
        }
        if changed:
            raise ValueError(
                f"{ckpt_path}: was trained with other settings {changed} "
                "(saved, now); only --steps may change on --resume"
            )
        load_weights(model, ckpt["model"], ckpt_path)
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start = ckpt["step"]
        if main:
            _truncate_log(log_path, start)
        say(f"resuming {ckpt_path} at step {start}")
    if main:
        require_writable_dir(out)
        if not resume:
            log_path.unlink(missing_ok=True)  # --overwrite: a run of ours starts over
        write_json(out / "config.json", asdict(cfg))
    say("config: " + json.dumps(asdict(cfg)))
    say(f"memory: about {gib(per_clip)} per clip in a training step on {dev.type}")
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    workers = min(cfg.workers, usable_cpus())  # more processes than CPUs only compete
    if workers < cfg.workers:
        say(f"loader workers: {workers} ({cfg.workers} configured, {usable_cpus()} CPUs usable)")
    sampler = StepSampler(len(clips), cfg.batch_size, cfg.seed, start, cfg.steps, rank, world)
    loader = DataLoader(
        SeededClips(clips),
        batch_sampler=sampler,
        num_workers=workers,
        collate_fn=collate_clips,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    if val is None:
        say(f"no {root / cfg.val_split}: training without validation")

    def checkpoint(step: int) -> None:
        save_atomic(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(),
                "step": step,
                "rng": rng_state(),
                "train_config": asdict(cfg),
                "model_config": asdict(model.cfg),
            },
            ckpt_path,
        )

    bar = tqdm(
        total=cfg.steps, initial=start, desc="train", unit="step", disable=not (main and progress)
    )
    t_prev = time.perf_counter()
    step = start
    try:
        for step, batch in enumerate(loader, start=start + 1):
            if "error" in batch:  # a clip's file could not be read (`collate_clips`)
                raise ValueError(batch["error"])
            t_data = time.perf_counter()
            frames = batch["frames"].to(dev, non_blocking=True)
            first = batch["first_mask"].to(dev, non_blocking=True)
            masks = batch["masks"].to(dev, non_blocking=True)
            net.train()
            with torch.autocast(dev.type, enabled=use_amp):
                logits = net(frames, first)
            loss = loss_at(cfg, step)(logits[:, 1:].float(), masks[:, 1:])  # frame 0 is given
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            scaler.step(opt)
            scaler.update()
            sched.step()
            value = loss.detach()
            if world > 1:
                dist.all_reduce(value)
                value /= world
            t_end = time.perf_counter()
            rec = {
                "step": step,
                "loss": round(value.item(), 6),
                "lr": opt.param_groups[0]["lr"],
                "seconds": round(t_end - t_prev, 4),
                "data_wait": round(t_data - t_prev, 4),
            }
            t_prev = t_end
            if step % cfg.val_every == 0 or step == cfg.steps:
                if main and val is not None:
                    rec["val_J"] = round(
                        validate(model, val, cfg.val_videos, tuple(cfg.size), dev), 4
                    )
                if world > 1:
                    dist.barrier()
                t_prev = time.perf_counter()  # validation is not training time
            if main:
                with open(log_path, "a") as log:  # a line per step, on disk before the next
                    log.write(json.dumps(rec) + "\n")
                bar.update()
                bar.set_postfix(
                    loss=f"{rec['loss']:.4f}", **({"val_J": rec["val_J"]} if "val_J" in rec else {})
                )
            if main and (step % cfg.ckpt_every == 0 or step == cfg.steps):
                checkpoint(step)
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
