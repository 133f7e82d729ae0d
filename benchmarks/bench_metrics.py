"""Our evaluator against vos-benchmark (a multi-threaded VOS evaluator on PyPI) on the same files.

Writes synthetic DAVIS-layout masks (default 50 videos x 30 frames at 480x854, 1 to 3 objects,
predictions a perturbed ground truth), scores them with `vostutorial.evaluate.evaluate_davis`
and with vos-benchmark (installed on first use into a scratch venv, benchmarks/.peer-venv, never
a kit dependency), both with 2 processes and the same protocol (first and last frames not
scored), and prints both wall times, the ratio and the largest per-object J and F difference.

Then the same on real masks: the DAVIS sequences of ``--davis`` (default
``../shared/real-samples/davis2016``, skipped with a note when absent), each ground-truth mask
scored against a shifted, eroded or dilated copy of itself, or against predictions given with
``--pred DIR`` (``DIR/<sequence>/<frame>.png``). Real objects are large, so cropping to the
masks saves little there and the boundary matching is what costs.

Goal: differences at most 1e-6, ours at least 3x faster on 2 cores, on both.

    python benchmarks/bench_metrics.py [--videos 50 --frames 30] [--davis ROOT] [--pred DIR]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vostutorial.data import DavisSequences, write_mask
from vostutorial.evaluate import evaluate_davis
from vostutorial.metrics import dilate_disk
from vostutorial.paths import real_davis

PEER = Path(__file__).resolve().parent / ".peer-venv"
REAL = real_davis()
PEER_RUN = """
import json, sys, time
from vos_benchmark.benchmark import benchmark
t0 = time.perf_counter()
_, _, _, objects = benchmark([sys.argv[1]], [sys.argv[2]], num_processes=2, verbose=False)
dt = time.perf_counter() - t0
out = {f"{v}/{o}": [j / 100, f / 100] for v, (js, fs) in objects[0].items()
       for o, j, f in ((o, js[o], fs[o]) for o in js)}
print(json.dumps({"seconds": dt, "objects": out}))
"""


def peer_python() -> Path:
    py = PEER / "bin" / "python"
    if not py.exists():
        print(f"installing vos-benchmark into {PEER} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER)], check=True)
        subprocess.run(
            [
                str(py),
                "-m",
                "pip",
                "install",
                "--quiet",
                "vos-benchmark",
                "opencv-python-headless",
                "scikit-image",
                "numpy",
                "pillow",
                "tqdm",
            ],
            check=True,
        )
    return py


def make_masks(root: Path, videos: int, frames: int, h: int, w: int, seed: int = 0) -> None:
    """Ground truth (``Annotations/480p``) and a perturbed prediction (``pred``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    for v in range(videos):
        name = f"video{v:03d}"
        for d in ("JPEGImages/480p", "Annotations/480p", "pred"):
            (root / d / name).mkdir(parents=True)
        k = int(rng.integers(1, 4))
        c0 = rng.uniform([0.2 * h, 0.2 * w], [0.8 * h, 0.8 * w], (k, 2))
        vel = rng.uniform(-6, 6, (k, 2))
        ax = rng.uniform([30, 40], [110, 160], (k, 2))
        for t in range(frames):
            gt = np.zeros((h, w), np.uint8)
            pred = np.zeros((h, w), np.uint8)
            for o in range(k):  # every object is present on every frame (same object sets)
                cy, cx = c0[o] + vel[o] * t
                inside = ((yy - cy) / ax[o, 0]) ** 2 + ((xx - cx) / ax[o, 1]) ** 2 <= 1
                gt[inside] = o + 1
                dy, dx = rng.integers(-6, 7, 2)
                wobble = 1 + 0.08 * np.sin(np.arctan2(yy - cy, xx - cx) * rng.integers(3, 9))
                shifted = ((yy - cy - dy) / ax[o, 0]) ** 2 + ((xx - cx - dx) / ax[o, 1]) ** 2
                pred[shifted <= wobble] = o + 1
            if rng.random() < 0.05:
                pred[:] = 0  # an occasional lost frame
            write_mask(root / "Annotations/480p" / name / f"{t:05d}.png", gt)
            write_mask(root / "pred" / name / f"{t:05d}.png", pred)


def real_masks(davis: Path, root: Path, pred: Path | None, seed: int = 0) -> int:
    """Palette copies of a DAVIS root's ground truth under ``root`` (so both evaluators read
    ids 1..K), and unless ``pred`` is given, perturbed copies as ``root/pred``. Returns the
    number of frames."""
    rng = np.random.default_rng(seed)
    src = DavisSequences(davis)
    n = 0
    for seq in src.sequences:
        (root / "JPEGImages/480p" / seq).mkdir(parents=True)
        for d in ("Annotations/480p", "pred"):
            (root / d / seq).mkdir(parents=True, exist_ok=True)
        for name in src.masks(seq):
            gt = src.read_mask(seq, name)
            write_mask(root / "Annotations/480p" / seq / f"{name}.png", gt)
            n += 1
            if pred is not None:
                continue
            m = gt > 0
            kind = rng.integers(3)
            if kind == 0:  # shifted
                m = np.roll(m, tuple(rng.integers(-8, 9, 2)), axis=(0, 1))
            elif kind == 1:  # eroded
                m = ~dilate_disk(~m[None], int(rng.integers(1, 6)))[0]
            else:  # dilated
                m = dilate_disk(m[None], int(rng.integers(1, 6)))[0]
            write_mask(root / "pred" / seq / f"{name}.png", m.astype(np.uint8))
    return n


def compare(py: Path, root: Path, pred: Path) -> None:
    """Both evaluators on the same files, alternating; the fastest of three runs each (warm
    file cache; timings on a shared machine are noisy)."""
    peer_runs, ours_runs = [], []
    for _ in range(3):
        r = subprocess.run(
            [str(py), "-c", PEER_RUN, str(root / "Annotations/480p"), str(pred)],
            capture_output=True,
            text=True,
            check=True,
        )
        peer = json.loads(r.stdout.strip().splitlines()[-1])
        peer_runs.append(peer["seconds"])
        (pred / "results.csv").unlink(missing_ok=True)
        t0 = time.perf_counter()
        ours = evaluate_davis(pred, root, workers=2, progress=False)
        ours_runs.append(time.perf_counter() - t0)
    dj = max(
        abs(o["J-Mean"] - peer["objects"][f"{o['sequence']}/{o['object']}"][0])
        for o in ours["objects"]
    )
    df = max(
        abs(o["F-Mean"] - peer["objects"][f"{o['sequence']}/{o['object']}"][1])
        for o in ours["objects"]
    )
    t_peer, t_ours = min(peer_runs), min(ours_runs)
    print(f"  objects scored: {len(ours['objects'])} (vos-benchmark: {len(peer['objects'])})")
    print(f"  vos-benchmark (2 processes): {t_peer:7.2f} s")
    print(f"  vostutorial   (2 processes): {t_ours:7.2f} s")
    print(f"  speed-up: {t_peer / t_ours:.2f}x  (goal >= 3x)")
    print(f"  largest per-object difference: J {dj:.2e}, F {df:.2e}  (goal <= 1e-6)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--videos", type=int, default=50)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--size", default="480x854")
    p.add_argument("--davis", type=Path, default=REAL, help="DAVIS root for the real masks")
    p.add_argument("--pred", type=Path, default=None, help="predictions for --davis")
    p.add_argument("--skip-synthetic", action="store_true")
    a = p.parse_args()
    h, w = (int(x) for x in a.size.split("x"))
    py = peer_python()
    if not a.skip_synthetic:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_masks(root, a.videos, a.frames, h, w)
            print(f"synthetic masks: {a.videos} videos x {a.frames} frames at {h}x{w}")
            compare(py, root, root / "pred")
    if not (a.davis / "Annotations").is_dir():
        print(f"real masks: {a.davis} absent, skipped (give a DAVIS root with --davis)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        n = real_masks(a.davis, root, a.pred)
        what = f"predictions {a.pred}" if a.pred else "shifted, eroded or dilated copies"
        print(f"real masks: {a.davis} ({n} frames), against {what}")
        compare(py, root, a.pred or root / "pred")


if __name__ == "__main__":
    main()
