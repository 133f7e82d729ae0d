"""Online learning: seconds per video and the gain it buys, settings side by side in one run.

Predicts the synthetic valid split (``data/synthetic``, generated if missing) with the shipped
checkpoint, once per setting, and scores each run as ``make demo`` does. Goal (issue:
speed): at least 2x fewer seconds per video than the first online learning of the kit (50 steps
of the whole network on 3-frame clips at lr 3e-4, no flips), at equal or better overall.

    python benchmarks/bench_online.py [--videos 24] [--settings 50:3e-4::3 30:6e-4::2]

A setting is ``STEPS:LR:FROZEN[:flip][:bf16][:CLIP]`` (FROZEN: comma-separated parts kept
fixed, or empty; ``flip``: mirrored copies too; ``bf16``: bfloat16 autocast; CLIP: frames per
training clip, default `finetune_online`'s). The model is tuned channels-last, as `predict`
tunes it. ``--checkpoint`` compares another checkpoint.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from vostutorial.checkpoint import load_checkpoint, model_from_checkpoint, training_loss
from vostutorial.data import YTVOSSplit, ensure_default
from vostutorial.evaluate import evaluate_ytvos
from vostutorial.fast import speed_up
from vostutorial.inference import predict_video
from vostutorial.predictions import write_video_masks
from vostutorial.resources import set_threads
from vostutorial.shipped import shipped_checkpoint


def run(root: Path, videos: list[str], steps: int, options: dict, out: Path, ckpt: Path) -> float:
    """Predict ``videos`` with online learning (``options``: `finetune_online` keywords) into
    ``out`` as `predict` does (`inference.predict_video`, the model sped up by
    `fast.speed_up` before it is tuned); returns seconds per video."""
    ckpt_dict = load_checkpoint(ckpt)
    model, loss = speed_up(model_from_checkpoint(ckpt_dict)), training_loss(ckpt_dict)
    valid = YTVOSSplit(root, "valid")
    t0 = time.perf_counter()
    for video in videos:
        sample = valid.read_video(video)
        labels = predict_video(model, sample, steps, loss, **options)
        write_video_masks(out, video, sample.frame_names, labels)
    return (time.perf_counter() - t0) / len(videos)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=24)
    p.add_argument("--settings", nargs="+", default=["50:3e-4::3", "30:6e-4::2", "30:6e-4::bf16:2"])
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the shipped model")
    a = p.parse_args()
    set_threads()
    root = ensure_default(progress=False)
    videos = list(YTVOSSplit(root, "valid").videos)[: a.videos]
    print(f"online learning on {len(videos)} synthetic valid videos, shipped tiny checkpoint")
    with tempfile.TemporaryDirectory() as tmp:
        for setting in a.settings:
            steps, lr, frozen, *extra = setting.split(":")
            frozen = tuple(f for f in frozen.split(",") if f)
            flip = "flip" in extra
            lengths = [int(x) for x in extra if x.isdigit()]
            options = {"lr": float(lr), "frozen": frozen, "flip": flip}
            options |= {"bf16": "bf16" in extra} | ({"clip_len": lengths[-1]} if lengths else {})
            out = Path(tmp) / setting.replace(":", "_").replace(",", "-")
            ckpt = a.checkpoint or shipped_checkpoint(train_if_missing=False)
            sec = run(root, videos, int(steps), options, out, ckpt)
            # score only the videos predicted (others would be missing)
            r = evaluate_ytvos(out, root, "valid", allow_missing=True, progress=False)
            rows = [o for o in r["objects"] if o["video"] in set(videos) and o["frames"]]
            seen = [o for o in rows if o["seen"]]
            unseen = [o for o in rows if not o["seen"]]

            def mean(xs: list, k: str) -> float:
                return sum(o[k] for o in xs) / max(1, len(xs))

            overall = (
                mean(seen, "J") + mean(unseen, "J") + mean(seen, "F") + mean(unseen, "F")
            ) / 4
            print(
                f"{steps:>3} steps, lr {lr}, frozen {list(frozen) or '-'}"
                f"{', flips' if flip else ''}"
                f"{f', {lengths[-1]}-frame clips' if lengths else ''}"
                f"{', bf16' if options['bf16'] else ''}: {sec:5.1f} s/video, "
                f"overall {overall:.3f} (J seen {mean(seen, 'J'):.3f}, J unseen "
                f"{mean(unseen, 'J'):.3f}, F seen {mean(seen, 'F'):.3f}, F unseen "
                f"{mean(unseen, 'F'):.3f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
