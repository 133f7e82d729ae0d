"""Training the S2S model: ``vostutorial train`` or, data-parallel on N processes,
``torchrun --nproc_per_node N -m vostutorial.train ...`` (gloo on CPU, NCCL on GPUs).

Every hyper-parameter lives in one TOML file (``configs/tiny.toml``, ``configs/paper.toml``),
printed at start and saved as ``RUN_DIR/config.json``. Per step, ``RUN_DIR/log.jsonl`` gets one
JSON line (step, loss, lr, seconds, data wait); every ``val_every`` steps a validation line with
J on a few held-out videos. Checkpoints (model, optimizer, scheduler, step, RNG states) are
written atomically to ``RUN_DIR/last.pt``; ``--resume`` continues from it and, on CPU with a
fixed seed, ends bit-identical to a run that never stopped: each batch is a function of the
seed and the step alone, whichever process or worker draws it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from tqdm.auto import tqdm

from .checkpoint import export_model, load_checkpoint, save_atomic
from .data.clips import ClipDataset
from .data.synthetic import ensure_default
from .data.ytvos import YTVOSSplit
from .inference import predict_objects, upsample
from .losses import LOSSES
from .metrics import jaccard
from .models import build_model

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
    if cfg.loss not in LOSSES:
        raise ValueError(f"{path}: loss must be one of {sorted(LOSSES)}, not {cfg.loss!r}")
    return cfg


def parse_override(text: str) -> tuple[str, object]:
    """``key=value`` with a TOML value (``lr=1e-3``, ``size=[64, 96]``, ``loss="bce"``)."""
    key, _, value = text.partition("=")
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
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            item = self.clips[index]
        return {k: item[k] for k in ("frames", "first_mask", "masks")}


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
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    """Drop log lines past the checkpoint: steps after it are re-run on resume."""
    if path.exists():
        lines = [
            ln
            for ln in path.read_text().splitlines()
            if ln.strip() and json.loads(ln)["step"] <= step
        ]
        path.write_text("".join(ln + "\n" for ln in lines))


def train(
    cfg: TrainConfig,
    out: str | os.PathLike,
    data: str | os.PathLike | None = None,
    resume: bool = False,
    device: str = "cpu",
    progress: bool = True,
) -> Path:
    """Train, checkpointing into ``out``; returns the path of the last checkpoint."""
    rank, world, dev = _distributed(device)
    out = Path(out)
    root = Path(data) if data else ensure_default(progress=False)
    main = rank == 0
    say = print if main else (lambda *a, **k: None)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    model = build_model(cfg.model, pretrained=cfg.pretrained or None).to(dev)
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
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        start = ckpt["step"]
        if main:
            _truncate_log(log_path, start)
        say(f"resuming {ckpt_path} at step {start}")
    elif main and log_path.exists():
        log_path.unlink()
    if main:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
    say("config: " + json.dumps(asdict(cfg)))
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model

    split = YTVOSSplit(root, cfg.split)
    clips = ClipDataset(split, cfg.clip_len, tuple(cfg.size), cfg.max_skip, augment=True)
    sampler = StepSampler(len(clips), cfg.batch_size, cfg.seed, start, cfg.steps, rank, world)
    loader = DataLoader(
        SeededClips(clips),
        batch_sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=dev.type == "cuda",
        persistent_workers=False,
    )
    val = YTVOSSplit(root, cfg.val_split) if (root / cfg.val_split / "meta.json").exists() else None

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


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    p = parser or argparse.ArgumentParser(
        prog="python -m vostutorial.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="tiny", help="tiny, paper, or a .toml file")
    p.add_argument(
        "--data", type=Path, default=None, help="dataset root (default: built-in synthetic)"
    )
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--steps", type=int, default=None, help="train up to this step")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"]
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config setting (TOML value), e.g. --set lr=1e-4",
    )
    p.add_argument(
        "--export",
        type=Path,
        default=None,
        help="also write the final weights (float16) here, for notebooks",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run(a: argparse.Namespace) -> int:
    overrides = dict(parse_override(s) for s in a.set)
    if a.steps is not None:
        overrides["steps"] = a.steps
    if a.seed is not None:
        overrides["seed"] = a.seed
    cfg = load_config(a.config, overrides)
    path = train(cfg, a.out, a.data, a.resume, a.device, progress=not a.quiet)
    if a.export and int(os.environ.get("RANK", "0")) == 0:
        ckpt = load_checkpoint(path)
        model = build_model(cfg.model)
        model.load_state_dict(ckpt["model"])
        export_model(model, a.export, {"train_config": asdict(cfg), "step": ckpt["step"]})
        log = a.export.with_suffix(".log.jsonl")  # the curves travel with the weights
        log.write_text((a.out / "log.jsonl").read_text())
        print(f"exported weights to {a.export} and the training log to {log}")
    return 0


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return run(a)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
