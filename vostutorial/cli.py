"""The ``vostutorial`` command: one sub-command per job, each a thin wrapper over the package."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .paths import SHIPPED_CHECKPOINT


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 180x320, not {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError(f"size must be at least 16x16, not {text!r}")
    return h, w


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``, refused at parse time with the flag's name."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, not {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _share(text: str) -> float:
    """An argparse type: a number between 0 and 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, not {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


count = _int_at_least(0)  # video counts, online-learning steps
positive = _int_at_least(1)  # steps, workers, threads

QUIET = argparse.ArgumentParser(add_help=False)  # the slow commands' one option, declared once
QUIET.add_argument("--quiet", action="store_true", help="no progress bars")
DEVICE = argparse.ArgumentParser(add_help=False)  # the commands that run a model
DEVICE.add_argument("--device", default="cpu", choices=["cpu", "cuda"])


def add_threads(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=positive,
        default=None,
        help="torch threads (default: OMP_NUM_THREADS, else the CPUs this process may use)",
    )


def add_propagation(p: argparse.ArgumentParser) -> None:
    """--propagation [SHARE], for the commands that run a model on videos."""
    p.add_argument(
        "--propagation",
        type=_share,
        nargs="?",
        const=None,  # the flag alone: the kit's share (`vote_share`)
        default=0.0,
        metavar="SHARE",
        help="average the model's maps with label propagation on HED's VGG16, which takes "
        "SHARE of the vote (the flag alone: the kit's share, chosen on synthetic valid); "
        "better on real video, several times slower",
    )


def vote_share(a: argparse.Namespace) -> float:
    """The share --propagation asked for: none, the kit's (the flag alone) or the one given."""
    from .inference import VOTE_SHARE

    return VOTE_SHARE if a.propagation is None else a.propagation


def synth_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Arguments of `vostutorial synth` (shared with data_scripts/make_synthetic_vos.py)."""
    from .data.synthetic import SynthConfig

    d = SynthConfig()
    p.add_argument("--out", required=True, type=Path, help="dataset root to write")
    p.add_argument("--train-videos", type=count, default=d.train_videos)
    p.add_argument("--valid-videos", type=count, default=d.valid_videos)
    p.add_argument("--seed", type=count, default=d.seed)
    p.add_argument("--size", type=_size, default=d.size, help="HxW (default %(default)s)")
    p.add_argument(
        "--frames", type=_int_at_least(2), default=d.frames, help="stored frames per video"
    )
    p.add_argument(
        "--workers", type=positive, default=2, help="processes (bytes do not depend on it)"
    )
    p.add_argument(
        "--force", action="store_true", help="regenerate a dataset this command wrote before"
    )
    return p


def cmd_synth(a: argparse.Namespace) -> int:
    from .data.synthetic import SynthConfig, generate

    cfg = SynthConfig(
        train_videos=a.train_videos,
        valid_videos=a.valid_videos,
        seed=a.seed,
        size=tuple(a.size),
        frames=a.frames,
    )
    generate(a.out, cfg, workers=a.workers, force=a.force)
    print(f"wrote {a.out}/train ({a.train_videos} videos) and {a.out}/valid ({a.valid_videos})")
    return 0


def cmd_check_data(a: argparse.Namespace) -> int:
    from .data.check import check_split

    if not a.root.is_dir():
        print(f"{a.root}: not a folder; give the dataset root that holds train/ and valid/")
        return 1
    found = [p.name for p in sorted(a.root.iterdir()) if (p / "meta.json").exists()]
    splits = [a.split] if a.split else found
    if not splits:
        print(f"{a.root}: no split folder with a meta.json (expected {a.root}/train/meta.json)")
        return 1
    bad = 0
    for split in splits:
        problems, summary = check_split(a.root, split, progress=not a.quiet)
        for line in problems:
            print(line)
        bad += len(problems)
        if not problems:
            print(
                "{split}: ok: {videos} videos, {objects} objects, {categories} categories, "
                "{frames} frames".format(**summary)
            )
    return 1 if bad else 0


def cmd_demo(a: argparse.Namespace) -> int:
    from .demo import run_demo
    from .inference import ONLINE_STEPS
    from .resources import set_threads

    set_threads(a.threads)
    if a.online_steps is None:
        a.online_steps = ONLINE_STEPS
    run_demo(a.data, a.out, progress=not a.quiet, online_steps=a.online_steps)
    return 0


def cmd_evaluate(a: argparse.Namespace) -> int:
    from . import evaluate as ev
    from .files import write_json

    if a.json:
        ev.check_report_target(a.json)  # before the long part
    common = {"allow_missing": a.allow_missing, "workers": a.workers, "progress": not a.quiet}
    if a.davis:
        davis = {"resolution": a.resolution, "ignore_void": a.ignore_void}
        report = ev.evaluate_davis(a.pred, a.data, **davis, **common)
        print(ev.format_davis(report))
    else:
        ytvos = {"split": a.split, "score_first": a.score_first}
        report = ev.evaluate_ytvos(a.pred, a.data, **ytvos, **common)
        print(ev.format_ytvos(report))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        write_json(a.json, report)
        print(f"wrote {a.json}")
    return 0


def cmd_baseline(a: argparse.Namespace) -> int:
    from .predictions import baseline_predictions

    baseline_predictions(
        a.data, a.split, a.out, method=a.method, progress=not a.quiet, overwrite=a.overwrite
    )
    print(f"wrote {a.method} predictions for {a.data}/{a.split} to {a.out}")
    return 0


def cmd_predict(a: argparse.Namespace) -> int:
    from .inference import PREDICT_SHORT_SIDE, predict_split
    from .predictions import check_zip_target, zip_path_for, zip_predictions
    from .resources import set_threads

    set_threads(a.threads)
    if a.zip:  # before the long part
        check_zip_target(a.out, zip_path_for(a.out))
    out = predict_split(
        a.data,
        a.split,
        a.checkpoint,
        a.out,
        online_steps=a.online_steps,
        merge_method=a.merge,
        device=a.device,
        progress=not a.quiet,
        overwrite=a.overwrite,
        all_frames=a.all_frames,
        short_side=a.short_side or PREDICT_SHORT_SIDE,
        vote_share=vote_share(a),
    )
    print(f"wrote predictions for {a.data}/{a.split} to {out}")
    if a.zip:
        zip_predictions(out, zip_path_for(out))
        print(f"wrote {zip_path_for(out)}")
    return 0


def cmd_segment(a: argparse.Namespace) -> int:
    from .checkpoint import load_checkpoint, model_from_checkpoint, training_loss
    from .data.palette import write_mask
    from .fast import speed_up
    from .files import claim_files, require_writable_dir
    from .inference import segment_clip
    from .resources import set_threads
    from .video import overlay, read_clip, read_first_mask, write_gif, write_mp4

    set_threads(a.threads)
    clip = read_clip(a.video, a.stride, a.start, a.stop, a.size_cap)
    frame = f"{a.mask_frame if a.mask_frame is not None else a.start:05d}"
    if frame not in clip.names:
        raise ValueError(
            f"--mask-frame {int(frame)}: not among the frames read ({clip.names[0]}, "
            f"{clip.names[1] if len(clip.names) > 1 else ''} ...); --start and --stride pick them"
        )
    mask = read_first_mask(a.mask, clip.frames.shape[1:3], dict(a.colour) or None)
    out = require_writable_dir(a.out)
    extras = ["overlay.gif"] * a.gif + ["overlay.mp4"] * a.mp4
    claim_files(out, [f"{n}.png" for n in clip.names] + extras)  # a user's file stops it here
    ckpt = load_checkpoint(a.checkpoint)
    model = speed_up(model_from_checkpoint(ckpt, a.device, a.checkpoint))
    print(f"{a.video}: {len(clip.names)} frames at {clip.frames.shape[2]}x{clip.frames.shape[1]}")
    start, loss = clip.names.index(frame), training_loss(ckpt)
    labels = segment_clip(
        model, clip.frames, mask, start, a.online_steps, loss, device=a.device,
        progress=not a.quiet, vote_share=vote_share(a),
    )  # fmt: skip
    for name, ids in zip(clip.names, labels, strict=True):
        write_mask(out / f"{name}.png", ids)
    shown = overlay(clip.frames, labels)
    if a.gif:
        write_gif(out / "overlay.gif", shown, clip.fps)
    if a.mp4:
        write_mp4(out / "overlay.mp4", shown, clip.fps)
    print(f"wrote {len(labels)} masks{' and the overlay' if extras else ''} to {out}")
    return 0


def _colour(text: str) -> tuple[tuple[int, int, int], int]:
    """``R,G,B=ID`` -> ((R, G, B), ID), for --colour."""
    try:
        rgb, oid = text.split("=")
        r, g, b = (int(v) for v in rgb.split(","))
        return (r, g, b), int(oid)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected R,G,B=ID, e.g. 255,0,0=1, not {text!r}"
        ) from None


def cmd_train(a: argparse.Namespace) -> int:
    from .checkpoint import check_export_target
    from .resources import set_threads
    from .train import export_run, train
    from .train_config import load_config, parse_override

    overrides = dict(parse_override(s) for s in a.set)
    if a.steps is not None:
        overrides["steps"] = a.steps
    if a.seed is not None:
        overrides["seed"] = a.seed
    cfg = load_config(a.config, overrides)
    if a.export:
        check_export_target(a.export)
    set_threads(a.threads)
    train(
        cfg,
        a.out,
        data=a.data,
        resume=a.resume,
        device=a.device,
        progress=not a.quiet,
        overwrite=a.overwrite,
    )
    if a.export and int(os.environ.get("RANK", "0")) == 0:
        log = export_run(a.out, a.export)
        print(f"exported weights to {a.export} and the training log to {log}")
    return 0


def cmd_convert_davis(a: argparse.Namespace) -> int:
    from .data.convert import davis_to_ytvos

    out = davis_to_ytvos(
        a.davis,
        a.out,
        split=a.split,
        resolution=a.resolution,
        category=a.category,
        heldout=a.heldout,
        progress=not a.quiet,
    )
    print(f"wrote {out}")
    return 0


def cmd_convert_heldout(a: argparse.Namespace) -> int:
    from .data.check import check_split
    from .data.convert import carve_heldout

    if a.verify:
        problems, summary = check_split(a.root, "train")
        if problems:
            print("\n".join(problems), file=sys.stderr)
            print(f"{len(problems)} problem(s) in {a.root}/train; fix them first", file=sys.stderr)
            return 1
        print("train ok: {videos} videos, {objects} objects, {frames} frames".format(**summary))
    info = carve_heldout(
        a.root,
        a.out,
        heldout_videos=a.heldout_videos,
        unseen_categories=a.unseen_categories,
        seed=a.seed,
        height=a.height,
        link=a.link,
        heldout_name=a.heldout_name,
    )
    print(
        f"wrote {a.out}/train ({info['train_videos']} videos) and {a.out}/{a.heldout_name} "
        f"({info['heldout_videos']} videos, {info['heldout_seen_videos']} of seen categories only)"
    )
    print(f"unseen categories: {', '.join(info['unseen_categories']) or '(none)'}")
    return 0


def convert_parser(sub: argparse._SubParsersAction) -> None:
    """``vostutorial convert davis|heldout``: real datasets into the kit's layout."""
    conv = sub.add_parser("convert", help="bring DAVIS or YouTube-VOS into the kit's layout")
    kinds = conv.add_subparsers(dest="kind", required=True)
    p = kinds.add_parser(
        "davis",
        parents=[QUIET],
        help="DAVIS 2016/2017 to the YouTube-VOS layout (as a train split, or --heldout: first "
        "appearances in Annotations, every mask in GroundTruth)",
    )
    p.add_argument("--davis", type=Path, required=True, help="DAVIS root holding JPEGImages/")
    p.add_argument("--out", type=Path, required=True, help="dataset root to write <split>/ into")
    p.add_argument("--split", default="train")
    p.add_argument("--resolution", default="480p")
    p.add_argument("--category", default="object", help="category given to every object")
    p.add_argument("--heldout", action="store_true", help="first appearances + GroundTruth")
    p.set_defaults(func=cmd_convert_davis)
    p = kinds.add_parser(
        "heldout",
        help="carve a local held-out split (seen and unseen categories) out of YouTube-VOS train",
    )
    p.add_argument("--root", type=Path, required=True, help="YouTube-VOS root holding train/")
    p.add_argument("--out", type=Path, required=True, help="where to write train/ and the split")
    p.add_argument(
        "--heldout-videos", type=count, default=200, help="seen-category videos held out"
    )
    p.add_argument("--unseen-categories", type=count, default=10, help="categories held out")
    p.add_argument("--heldout-name", default="heldout")
    p.add_argument("--seed", type=count, default=0)
    p.add_argument("--height", type=positive, default=None, help="resize to this height")
    p.add_argument("--link", action="store_true", help="hard-link frames instead of copying them")
    p.add_argument("--verify", action="store_true", help="decode and check train first")
    p.set_defaults(func=cmd_convert_heldout)


def cmd_student(a: argparse.Namespace) -> int:
    from .student import write_student_notebooks

    for path in write_student_notebooks(a.notebooks):
        print(f"wrote {path}")
    return 0


def cmd_model_summary(a: argparse.Namespace) -> int:
    from .models import build_model
    from .models.summary import summary

    print(summary(build_model(a.config)))
    return 0


def check_data_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-data", parents=[QUIET], help="check a dataset in the YouTube-VOS layout"
    )
    p.add_argument("root", type=Path)
    p.add_argument("--split", help="one split (default: every folder with a meta.json)")
    p.set_defaults(func=cmd_check_data)


def evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", parents=[QUIET], help="score predictions with J and F")
    p.add_argument("--pred", required=True, type=Path, help="PRED_DIR/<video>/<frame>.png")
    p.add_argument(
        "--data", required=True, type=Path, help="dataset root (DAVIS root with --davis)"
    )
    p.add_argument("--split", default="valid")
    p.add_argument("--json", type=Path, help="also write the report as JSON here")
    p.add_argument("--davis", action="store_true", help="DAVIS layout and protocol")
    p.add_argument("--resolution", default="480p", help="DAVIS resolution folder")
    p.add_argument(
        "--ignore-void",
        action="store_true",
        help="DAVIS: leave label-255 pixels out (default: count them as background)",
    )
    p.add_argument(
        "--score-first",
        action="store_true",
        help="YouTube-VOS: also score each object's given first frame",
    )
    p.add_argument("--allow-missing", action="store_true", help="score missing frames as empty")
    p.add_argument("--workers", type=positive, default=2, help="processes")
    p.set_defaults(func=cmd_evaluate)


def baseline_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("baseline", parents=[QUIET], help="write a baseline's predictions")
    p.add_argument(
        "method",
        choices=["copy-first", "label-propagation"],
        help="label-propagation: training-free, on a pretrained VGG16",
    )
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="valid")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--overwrite", action="store_true", help="replace predictions of another run")
    p.set_defaults(func=cmd_baseline)


def train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", parents=[QUIET, DEVICE], help="train the S2S model")
    p.add_argument(
        "--config", default="tiny", help="tiny, paper, s2s-vgg16, vgg16-tiny, or a .toml file"
    )
    p.add_argument(
        "--data", type=Path, default=None, help="dataset root (default: built-in synthetic)"
    )
    p.add_argument("--out", type=Path, required=True, help="run directory")
    p.add_argument("--steps", type=positive, default=None, help="train up to this step")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument(
        "--overwrite", action="store_true", help="start over in a RUN_DIR that holds a run"
    )
    p.add_argument("--seed", type=count, default=None)
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
    add_threads(p)
    p.set_defaults(func=cmd_train)


def predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", parents=[QUIET, DEVICE], help="segment every object of every video of a split"
    )
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--split", default="valid")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=SHIPPED_CHECKPOINT,
        help="training checkpoint or export (default: the shipped model)",
    )
    p.add_argument("--out", required=True, type=Path, help="PRED_DIR (submission layout)")
    p.add_argument("--online-steps", type=count, default=0, help="online learning steps per video")
    p.add_argument("--merge", default="argmax", choices=["argmax", "threshold", "soft"])
    p.add_argument("--zip", action="store_true", help="also write PRED_DIR.zip for the server")
    p.add_argument(
        "--all-frames",
        action="store_true",
        help="run on every frame of <split>_all_frames, write the stored ones",
    )
    p.add_argument(
        "--short-side",
        type=positive,
        default=None,
        help="segment each video scaled down to this shorter side (default: the kit's, which "
        "keeps 480p above 5 frames per second on 2 cores; larger is finer and slower)",
    )
    add_propagation(p)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="predict every video again, replacing predictions made with other settings",
    )
    add_threads(p)
    p.set_defaults(func=cmd_predict)


def segment_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "segment",
        parents=[QUIET, DEVICE],
        help="segment your own video (a file or a folder of frames) from one painted mask",
    )
    p.add_argument("video", type=Path, help="a .mp4/.mov/.webm/.avi file or a folder of frames")
    p.add_argument("--mask", type=Path, required=True, help="palette PNG of object ids")
    p.add_argument(
        "--mask-frame", type=count, default=None, help="frame the mask is for (default: first)"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for DIR/<frame>.png masks")
    p.add_argument("--online-steps", type=count, default=0, help="online learning steps")
    add_propagation(p)
    p.add_argument("--gif", action="store_true", help="also write DIR/overlay.gif")
    p.add_argument("--mp4", action="store_true", help="also write DIR/overlay.mp4")
    p.add_argument(
        "--size-cap", type=positive, default=480, help="scale frames down to this shorter side"
    )
    p.add_argument("--stride", type=positive, default=1, help="keep every N-th frame")
    p.add_argument("--start", type=count, default=0, help="first frame to read")
    p.add_argument("--stop", type=positive, default=None, help="frame to stop before")
    p.add_argument(
        "--colour",
        type=_colour,
        action="append",
        default=[],
        metavar="R,G,B=ID",
        help="read an RGB mask: this colour is object ID (repeat per object; black is background)",
    )
    p.add_argument(
        "--checkpoint", type=Path, default=SHIPPED_CHECKPOINT, help="default: the shipped model"
    )
    add_threads(p)
    p.set_defaults(func=cmd_segment)


def demo_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", parents=[QUIET], help="the main job on the built-in synthetic dataset"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="where the synthetic dataset lives or is generated: a new or empty folder, or one "
        "the kit generated (default: built-in)",
    )
    p.add_argument("--out", type=Path, default=None, help="report folder (default: results/demo)")
    add_threads(p)
    p.add_argument(
        "--online-steps",
        type=count,
        default=None,
        help="fine-tuning steps per video for the online-learning run (0: skip it; "
        "default: vostutorial.inference.ONLINE_STEPS)",
    )
    p.set_defaults(func=cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    """The command and its sub-commands, each with its arguments' parser above."""
    parser = argparse.ArgumentParser(prog="vostutorial", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = synth_parser(sub.add_parser("synth", help="generate the synthetic YouTube-VOS dataset"))
    p.set_defaults(func=cmd_synth)
    check_data_parser(sub)
    evaluate_parser(sub)
    convert_parser(sub)
    baseline_parser(sub)
    train_parser(sub)
    predict_parser(sub)
    segment_parser(sub)
    demo_parser(sub)
    p = sub.add_parser("student", help="write the student notebooks (solutions become TODOs)")
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    p.set_defaults(func=cmd_student)

    p = sub.add_parser("model-summary", help="parameters and multiply-adds of a model config")
    p.add_argument("--config", default="tiny", help="tiny, paper, s2s-vgg16 or vgg16-tiny")
    p.set_defaults(func=cmd_model_summary)

    return parser


RERUN = "nothing half-written is kept; run the same command again"
OUT_OF_MEMORY = (
    "nothing half-written is kept: close other programs, or ask for less (train: a smaller "
    "--set batch_size or size; evaluate and synth: fewer --workers), and run it again"
)
AFTER_INTERRUPT = {
    "train": "the run keeps its last checkpoint; add --resume to the same command to go on",
    "predict": "finished videos are kept; run the same command again to predict the others",
}


def main(argv: list[str] | None = None) -> int:
    # OpenMP threads that spin while they wait collapse when another process takes a core (a
    # course server): measured 2.6x slower beside one busy process, against 1.6x when they
    # sleep, for 4% alone (benchmarks/bench_load.py). Read when torch loads, so set it here,
    # before any command imports torch; a value the user set is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: one line, the shell's code for it, and how to go on
        print(f"interrupted: {AFTER_INTERRUPT.get(args.command, RERUN)}", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:  # torch's "can't allocate memory" is a RuntimeError
        if not isinstance(exc, MemoryError) and "allocate" not in str(exc):
            raise
        print(
            f"error: out of memory in `vostutorial {args.command}`; {OUT_OF_MEMORY}",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:  # our data errors name the file and the fix: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder, ...: the file and the reason
        where = exc.filename or "a file"
        print(
            f"error: {where}: {exc.strerror or exc}; nothing half-written is left", file=sys.stderr
        )
        return 2


if __name__ == "__main__":
    sys.exit(main())
