"""Real video: copy-first, training-free label propagation, the model without and with online
learning, and the model with label propagation's vote, on a DAVIS root.

Everything goes through the kit's own commands, as a student would run them:
``vostutorial convert davis --heldout`` (DAVIS into the YouTube-VOS layout, first masks
given), ``vostutorial baseline copy-first|label-propagation`` / ``vostutorial predict
[--online-steps N] [--propagation SHARE]``, and
``vostutorial evaluate --davis`` (DAVIS protocol: first and last frame not scored).

    python benchmarks/bench_real.py [DAVIS_ROOT] [--checkpoint PT] [--online-steps 25]
                                    [--only ROW ...] [--json FILE]

DAVIS_ROOT defaults to ``../shared/real-samples/davis2016`` beside the project. Without one
the script says so and exits 0. The sequences are for evaluation only: nothing here trains on
them, and everything it writes goes to a temporary folder (or ``--keep DIR``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vostutorial.inference import ONLINE_STEPS, VOTE_SHARE
from vostutorial.paths import SHIPPED_CHECKPOINT, real_davis

DEFAULT_ROOT = real_davis()


def kit(*args: str) -> float:
    """Run ``vostutorial ARGS`` in a fresh process; returns its wall-clock seconds."""
    t0 = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "vostutorial", *args, "--quiet"], capture_output=True, text=True
    )
    if run.returncode:
        sys.exit(f"vostutorial {' '.join(args)} failed:\n{run.stderr}")
    return time.perf_counter() - t0


def score(davis: Path, pred: Path, out: Path) -> dict:
    kit("evaluate", "--davis", "--data", str(davis), "--pred", str(pred), "--json", str(out))
    return json.loads(out.read_text())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("davis", nargs="?", type=Path, default=DEFAULT_ROOT, help="a DAVIS root")
    p.add_argument("--checkpoint", type=Path, default=SHIPPED_CHECKPOINT)
    p.add_argument("--online-steps", type=int, default=ONLINE_STEPS)
    p.add_argument("--keep", type=Path, help="write predictions here instead of a temp folder")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--only", nargs="+", type=int, metavar="ROW",
                   help="run only these rows (1-6, in the table's order); with --json the "
                        "other rows of an earlier run stay in the file")  # fmt: skip
    a = p.parse_args()
    if not (a.davis / "JPEGImages").is_dir():
        print(f"no DAVIS root at {a.davis}: nothing to measure (give a DAVIS root as argument)")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = a.keep or Path(tmp)
        data = work / "data"
        if not (data / "valid" / "meta.json").exists():
            kit("convert", "davis", "--davis", str(a.davis), "--out", str(data),
                "--split", "valid", "--heldout")  # fmt: skip
        videos = list((data / "valid" / "JPEGImages").iterdir())
        n_videos, n_frames = len(videos), sum(len(list(d.glob("*.jpg"))) for d in videos)
        runs = {
            "copy first mask": ["baseline", "copy-first"],
            "label propagation (training-free)": ["baseline", "label-propagation"],
            "model, no online learning": ["predict", "--checkpoint", str(a.checkpoint)],
            f"model + {a.online_steps} online steps": [
                "predict", "--checkpoint", str(a.checkpoint),
                "--online-steps", str(a.online_steps),
            ],
            f"model + label propagation ({VOTE_SHARE} of the vote)": [
                "predict", "--checkpoint", str(a.checkpoint), "--propagation", str(VOTE_SHARE),
            ],
            f"model + {a.online_steps} online steps + label propagation": [
                "predict", "--checkpoint", str(a.checkpoint),
                "--online-steps", str(a.online_steps), "--propagation", str(VOTE_SHARE),
            ],
        }  # fmt: skip
        if a.only:
            runs = {k: v for i, (k, v) in enumerate(runs.items(), 1) if i in a.only}
        rows = {}
        for name, args in runs.items():
            pred = work / "pred" / name.replace(" ", "_").replace(",", "").replace("+", "plus")
            sec = kit(*args, "--data", str(data), "--split", "valid", "--out", str(pred),
                      "--overwrite")  # fmt: skip
            rows[name] = score(a.davis, pred, work / f"{pred.name}.json") | {
                "seconds_per_frame": sec / n_frames,
                "seconds_per_video": sec / n_videos,
            }
    seqs = [o["sequence"] for o in next(iter(rows.values()))["objects"]]
    print(f"{a.davis} ({len(seqs)} sequences, {n_frames} frames), checkpoint {a.checkpoint.name}")
    print("| method | J&F | J | F | s/frame | s/video |\n|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['J&F-Mean']:.3f} | {r['J-Mean']:.3f} | {r['F-Mean']:.3f} "
              f"| {r['seconds_per_frame']:.3f} | {r['seconds_per_video']:.1f} |")  # fmt: skip
    print("\nJ&F per sequence\n| sequence | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for i, seq in enumerate(seqs):
        cells = [(r["objects"][i]["J-Mean"] + r["objects"][i]["F-Mean"]) / 2 for r in rows.values()]
        print(f"| {seq} | " + " | ".join(f"{c:.3f}" for c in cells) + " |")
    print("(seconds include starting the command and reading and writing the frames)")
    if a.json:
        if a.only and a.json.exists():  # rows measured earlier stay, in the table's order
            rows = {**json.loads(a.json.read_text()), **rows}
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
