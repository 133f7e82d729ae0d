"""An offline synthetic dataset in the exact YouTube-VOS layout.

Shapes move over real photographs. Photos are the CC0 / public-domain images that ship inside
scikit-image's wheel (``skimage/data``), so nothing is downloaded. A *category* is a shape
family only: every object gets a new appearance, a patch of a random photo under a random
colour transform and shading, so a network cannot memorise "category = texture" and has to use
the given mask (real objects look like nothing it was trained on). ``SEEN`` categories appear
in train and valid, ``UNSEEN`` ones only in valid, as in YouTube-VOS.

Videos have 1-4 objects with smooth motion, rotation, scale change and a non-rigid wobble of
the outline; occlusions between objects; objects that enter after the first frame or leave it;
unannotated distractor shapes in the background, some wearing an object's own appearance;
camera pan, lighting change, sensor noise and JPEG quality that vary per video. The same
arguments always give the same bytes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass
from functools import cache, partial
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from ..files import is_empty_dir, write_json
from ..paths import default_data
from ..resources import worker_pool
from .palette import write_image
from .ytvos import ObjectInfo, load_meta, write_meta, write_video


@dataclass(frozen=True)
class Category:
    name: str
    shape: str  # key of `_polygon`


SEEN = (
    Category("disc", "circle"),
    Category("box", "square"),
    Category("triangle", "triangle"),
    Category("star", "star"),
    Category("capsule", "ellipse"),
    Category("cross", "cross"),
)
UNSEEN = (
    Category("hexagon", "hexagon"),
    Category("arrow", "arrow"),
    Category("kite", "kite"),
)
# Backgrounds and object appearances both come from these (greyscale ones get coloured).
PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "color.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "phantom.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
)


def _polygon(kind: str, n: int = 40) -> np.ndarray:
    """A shape as ``(N, 2)`` vertices (x, y) inside the unit disc."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if kind == "circle":
        return np.stack([np.cos(t), np.sin(t)], 1)
    if kind == "ellipse":
        return np.stack([np.cos(t), 0.45 * np.sin(t)], 1)
    if kind in ("star", "kite", "triangle", "square", "hexagon"):
        k, inner, start = {
            "star": (5, 0.45, -np.pi / 2),
            "kite": (4, 0.35, 0.0),
            "triangle": (3, None, -np.pi / 2),
            "square": (4, None, np.pi / 4),
            "hexagon": (6, None, 0.0),
        }[kind]
        if inner is None:
            a = start + 2 * np.pi * np.arange(k) / k
            return np.stack([np.cos(a), np.sin(a)], 1)
        a = start + np.pi * np.arange(2 * k) / k
        r = np.where(np.arange(2 * k) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "cross":
        w = 0.33
        return np.array(
            [
                (w, -1),
                (w, -w),
                (1, -w),
                (1, w),
                (w, w),
                (w, 1),
                (-w, 1),
                (-w, w),
                (-1, w),
                (-1, -w),
                (-w, -w),
                (-w, -1),
            ],
            dtype=float,
        )
    if kind == "arrow":
        return np.array(
            [(1, 0), (0.1, -0.8), (0.1, -0.3), (-1, -0.3), (-1, 0.3), (0.1, 0.3), (0.1, 0.8)],
            dtype=float,
        )
    raise ValueError(f"unknown shape {kind!r}")


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-image is not installed: `pip install scikit-image`")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@cache
def _photo(name: str) -> np.ndarray:
    """A photo from scikit-image's bundled data, ``(H, W, 3)`` float32 RGB."""
    path = _skimage_data_dir() / name
    if not path.exists():
        raise RuntimeError(f"{path}: missing from scikit-image's wheel; reinstall scikit-image")
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.float32)


def _recolour(rng: np.random.Generator, photo: np.ndarray, strength: float) -> Image.Image:
    """The photo under a random colour transform: a mix of the channels towards a random
    colour matrix, a gain and an offset (``strength`` 0 keeps it, 1 makes it unrecognisable)."""
    mix = (1 - strength) * np.eye(3) + strength * rng.dirichlet(np.ones(3), 3).T * 1.5
    out = photo @ mix.astype(np.float32)
    out = out * rng.uniform(0.7, 1.3) + rng.uniform(-40, 40, 3).astype(np.float32)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def _resample(poly: np.ndarray, n: int = 64) -> np.ndarray:
    """``n`` points spaced evenly along a closed outline, so that every shape can bend."""
    closed = np.concatenate([poly, poly[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    at = np.concatenate([[0], np.cumsum(seg)])
    t = np.linspace(0, at[-1], n, endpoint=False)
    return np.stack([np.interp(t, at, closed[:, k]) for k in (0, 1)], 1)


@dataclass
class _Track:
    """The motion and look of one shape over the video (all per stored frame)."""

    shape: str
    start: int
    center: np.ndarray  # (2,) x, y in pixels
    velocity: np.ndarray
    angle: float
    spin: float
    radius: float
    growth: float
    bounce: bool
    wobble: float
    phase: float
    bend: float  # non-rigid: amplitude of the outline's travelling wave, in radii
    lobes: int
    look: Image.Image  # the appearance: a recoloured photo the object carries
    look_center: np.ndarray  # (2,) where the object sits in it
    look_scale: float  # photo pixels per object radius
    shade: np.ndarray  # (2,) light gradient across the object, per radius


def _sample_track(
    rng: np.random.Generator,
    shape: str,
    n_frames: int,
    h: int,
    w: int,
    late: bool,
    look: Image.Image | None = None,
) -> _Track:
    if look is None:
        photo = _photo(PHOTOS[int(rng.integers(len(PHOTOS)))])
        look = _recolour(rng, photo, float(rng.uniform(0, 1)))
    speed = float(rng.uniform(0.008, 0.035) * w)
    heading = rng.uniform(0, 2 * np.pi)
    return _Track(
        shape=shape,
        start=int(rng.integers(1, max(2, n_frames // 2))) if late else 0,
        center=np.array([rng.uniform(0.15, 0.85) * w, rng.uniform(0.2, 0.8) * h]),
        velocity=speed * np.array([np.cos(heading), np.sin(heading)]),
        angle=float(rng.uniform(0, 2 * np.pi)),
        spin=float(rng.uniform(-0.15, 0.15)),
        radius=float(rng.uniform(0.13, 0.28) * min(h, w)),
        growth=float(rng.uniform(-0.03, 0.03)),
        bounce=bool(rng.random() < 0.75),  # the others may leave the frame
        wobble=float(rng.uniform(0, 0.03) * w),
        phase=float(rng.uniform(0, 2 * np.pi)),
        bend=float(rng.uniform(0, 0.15)),
        lobes=int(rng.integers(2, 5)),
        look=look,
        look_center=rng.uniform(0.3, 0.7, 2) * look.size,
        look_scale=float(rng.uniform(0.15, 0.45) * min(look.size)),
        shade=rng.uniform(-0.3, 0.3, 2),
    )


def _pose(tr: _Track, t: int, h: int, w: int) -> tuple[np.ndarray, float, float]:
    """Centre, angle and radius of a track at stored frame ``t`` (bouncing off the borders)."""
    dt = t - tr.start
    pos = tr.center + tr.velocity * dt
    pos = pos + tr.wobble * np.array([np.sin(0.9 * dt + tr.phase), np.cos(0.7 * dt + tr.phase)])
    if tr.bounce:  # reflect into [0, size] like a ball between walls
        for k, size in ((0, w), (1, h)):
            period = 2 * size
            p = pos[k] % period
            pos[k] = p if p <= size else period - p
    radius = tr.radius * math.exp(tr.growth * dt)
    return pos, tr.angle + tr.spin * dt, radius


def _paint(frame: np.ndarray, tr: _Track, t: int, outline: np.ndarray) -> np.ndarray:
    """Paint track ``tr`` at frame ``t`` into ``frame`` ``(H, W, 3)`` float; returns where."""
    h, w = frame.shape[:2]
    (cx, cy), ang, rad = _pose(tr, t, h, w)
    theta = np.arctan2(outline[:, 1], outline[:, 0])
    bend = 1 + tr.bend * np.sin(tr.lobes * theta + 0.8 * (t - tr.start) + tr.phase)
    c, si = math.cos(ang), math.sin(ang)
    rot = np.array([[c, si], [-si, c]])
    verts = (outline * bend[:, None]) @ rot * rad + (cx, cy)
    poly = Image.new("L", (w, h), 0)
    ImageDraw.Draw(poly).polygon([tuple(v) for v in verts], fill=1)
    inside = np.asarray(poly, dtype=bool)
    if not inside.any():
        return inside
    # The appearance moves and turns with the object: frame pixels map back into the photo.
    k_px = tr.look_scale / rad  # photo pixels per frame pixel
    a, b, d, e = k_px * c, k_px * si, -k_px * si, k_px * c
    (tcx, tcy) = tr.look_center
    coeffs = (a, b, tcx - a * cx - b * cy, d, e, tcy - d * cx - e * cy)
    patch = np.asarray(tr.look.transform((w, h), Image.AFFINE, coeffs, Image.BILINEAR))
    ys, xs = np.nonzero(inside)
    # light falls across the object: a linear gradient in the object's own frame
    u = ((xs - cx) * c + (ys - cy) * si) / rad, (-(xs - cx) * si + (ys - cy) * c) / rad
    light = 1 + tr.shade[0] * u[0] + tr.shade[1] * u[1]
    frame[ys, xs] = patch[ys, xs] * light[:, None]
    return inside


def _render_video(
    rng: np.random.Generator, cats: list[Category], n_frames: int, h: int, w: int
) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W, 3)`` uint8 and id maps ``(T, H, W)`` uint8 (ids 1..K in cats order)."""
    tracks = [
        _sample_track(rng, c.shape, n_frames, h, w, late=i > 0 and rng.random() < 0.4)
        for i, c in enumerate(cats)  # the first object is always there from frame 0
    ]
    depth = rng.permutation(len(tracks))  # painting order: later ones occlude earlier ones
    # Unannotated distractors behind the objects; some wear an object's appearance.
    distractors = []
    for _ in range(int(rng.integers(0, 3))):
        twin = tracks[int(rng.integers(len(tracks)))].look if rng.random() < 0.4 else None
        shape = SEEN[int(rng.integers(len(SEEN)))].shape
        distractors.append(_sample_track(rng, shape, n_frames, h, w, late=False, look=twin))
    zoom = float(rng.uniform(1.2, 1.8))  # the background is larger so the camera can pan
    bg_photo = _recolour(rng, _photo(PHOTOS[int(rng.integers(len(PHOTOS)))]), rng.uniform(0, 0.4))
    bg = np.asarray(bg_photo.resize((int(w * zoom), int(h * zoom)), Image.BILINEAR))
    pan0 = rng.uniform(0, 1, 2)
    pan1 = np.clip(pan0 + rng.uniform(-0.6, 0.6, 2), 0, 1)
    light_amp, light_freq, light_phase = (
        rng.uniform(0, 0.25),
        rng.uniform(0.3, 1.2),
        rng.uniform(0, 6),
    )
    noise = float(rng.uniform(0, 6))  # sensor noise, grey levels
    outline = {tr.shape: _resample(_polygon(tr.shape)) for tr in tracks + distractors}

    frames = np.empty((n_frames, h, w, 3), np.uint8)
    ids = np.zeros((n_frames, h, w), np.uint8)
    for t in range(n_frames):
        s = t / max(1, n_frames - 1)
        ox, oy = ((1 - s) * pan0 + s * pan1) * (bg.shape[1] - w, bg.shape[0] - h)
        frame = bg[int(oy) : int(oy) + h, int(ox) : int(ox) + w].astype(np.float32)
        for tr in distractors:
            _paint(frame, tr, t, outline[tr.shape])
        for k in depth:
            if t >= tracks[k].start:
                ids[t][_paint(frame, tracks[k], t, outline[tracks[k].shape])] = k + 1
        light = 1 + light_amp * math.sin(light_freq * t + light_phase)
        frame = frame * light + rng.normal(0, noise, frame.shape).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames, ids


# Bump when the generator's output changes, so cached default datasets are regenerated.
GENERATOR_VERSION = 4
# The generator's own file at the dataset root: only folders that carry it are ever replaced.
MARKER = "synth_config.json"
MAX_ATTEMPTS = 1000  # resamples of one video before giving up (never loop forever)


@dataclass(frozen=True)
class SynthConfig:
    """Everything that determines the dataset's bytes."""

    train_videos: int = 300
    valid_videos: int = 24
    seed: int = 0
    size: tuple[int, int] = (180, 320)  # H, W
    frames: int = 20  # stored frames per video (every 5th original frame)
    unseen_fraction: float = 0.35  # of valid objects

    def __post_init__(self) -> None:
        # The sampler needs a frame after each object's first one, and room to draw shapes.
        if self.frames < 2:
            raise ValueError(
                f"frames must be at least 2 (the given frame and one to track), not {self.frames}"
            )
        if min(self.size) < 16:
            raise ValueError(f"size must be at least 16x16, not {self.size[0]}x{self.size[1]}")
        if self.train_videos < 0 or self.valid_videos < 0:
            raise ValueError("video counts must not be negative")
        if not 0 <= self.unseen_fraction <= 1:
            raise ValueError(f"unseen_fraction must lie in [0, 1], not {self.unseen_fraction}")


def _video(
    cfg: SynthConfig, split: str, index: int
) -> tuple[str, list[str], np.ndarray, np.ndarray, dict[int, ObjectInfo], int]:
    """Sample one video whose objects are all clearly visible on their first frame."""
    h, w = cfg.size
    rng = np.random.default_rng([cfg.seed, {"train": 0, "valid": 1}[split], index])
    name = hashlib.sha1(f"{cfg.seed}/{split}/{index}".encode()).hexdigest()[:10]
    min_area = 0.004 * h * w
    for _attempt in range(MAX_ATTEMPTS):
        n_obj = int(rng.choice([1, 2, 3, 4], p=[0.3, 0.35, 0.2, 0.15]))
        cats = []
        for _ in range(n_obj):
            if split == "valid" and rng.random() < cfg.unseen_fraction:
                cats.append(UNSEEN[int(rng.integers(len(UNSEEN)))])
            else:
                cats.append(SEEN[int(rng.integers(len(SEEN)))])
        frames, ids = _render_video(rng, cats, cfg.frames, h, w)
        areas = np.stack([(ids == k + 1).sum((1, 2)) for k in range(n_obj)])  # (K, T)
        firsts = [int(np.argmax(a > 0)) if (a > 0).any() else -1 for a in areas]
        ok = all(0 <= f < cfg.frames - 1 and areas[k, f] >= min_area for k, f in enumerate(firsts))
        if ok:
            break
    else:
        raise ValueError(
            f"synthetic video {split}/{index}: no acceptable sample in {MAX_ATTEMPTS} tries "
            f"(size {h}x{w}, {cfg.frames} frames); use a larger --size or more --frames"
        )
    # YouTube-VOS numbers objects in order of first appearance.
    order = sorted(range(n_obj), key=lambda k: (firsts[k], k))
    remap = np.zeros(256, np.uint8)
    for new, old in enumerate(order, start=1):
        remap[old + 1] = new
    ids = remap[ids]
    names = [f"{5 * t:05d}" for t in range(cfg.frames)]
    quality = int(rng.integers(60, 96))  # JPEG artefacts vary per video, as cameras do
    objects = {
        new: ObjectInfo(new, cats[old].name, [names[t] for t in np.flatnonzero(areas[old] > 0)])
        for new, old in enumerate(order, start=1)
    }
    return name, names, frames, ids, objects, quality


def _write_video(args: tuple[SynthConfig, str, int, Path]) -> tuple[str, dict[int, ObjectInfo]]:
    cfg, split, index, out = args
    name, names, frames, ids, objects, quality = _video(cfg, split, index)
    pairs = zip(names, frames, strict=True)
    writers = {f: partial(write_image, image=im, quality=quality) for f, im in pairs}
    masks = dict(zip(names, ids, strict=True))
    write_video(out, name, writers, masks, objects, heldout=split == "valid")
    return name, objects


def is_synthetic_root(root: str | os.PathLike) -> bool:
    """True when ``root`` carries the generator's marker (`generate` wrote it)."""
    return {"version", "train_videos", "seed"} <= set(_marker(Path(root)))


def _refuse_foreign(out: Path) -> None:
    """Raise unless ``out`` is empty, new, or a dataset this generator wrote."""
    if is_synthetic_root(out) or is_empty_dir(out):
        return
    if not out.is_dir():
        raise ValueError(f"{out}: is a file, not a folder; give a folder for the dataset")
    raise ValueError(
        f"{out}: not a synthetic dataset written by vostutorial (no {MARKER}) and not empty; "
        "refusing to replace what is there: give a new or empty folder"
    )


def generate(
    out: str | os.PathLike,
    cfg: SynthConfig = SynthConfig(),
    workers: int = 2,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Write ``out/train`` and ``out/valid`` in the YouTube-VOS layout; return ``out``.

    ``out`` must be new, empty, or a dataset this generator wrote (its ``synth_config.json``);
    the latter is replaced only with ``force``, and only where it holds nothing but what the
    generator wrote (a file of the user's inside is named, never deleted). Each split is built
    in a temporary folder and renamed into place when complete: an interrupted run leaves no
    half-written split, and the same command then finishes.
    """
    out = Path(out)
    _refuse_foreign(out)
    finished = _marker(out).get("complete", True)  # False: a run stopped part-way, finish it
    for split in ("train", "valid"):
        if (out / split).exists() and not force and finished:
            raise ValueError(f"{out / split}: already exists; pass --force to regenerate it")
        _refuse_user_files(out / split, _kit_videos(out, split))
    out.mkdir(parents=True, exist_ok=True)
    info = asdict(cfg) | {
        "version": GENERATOR_VERSION,
        "seen": [c.name for c in SEEN],
        "unseen": [c.name for c in UNSEEN],
    }
    # The marker goes first, marked incomplete (a stale dataset): whatever stops this run, the
    # folder stays one the generator recognises as its own and regenerates.
    write_json(out / MARKER, info | {"complete": False})
    tmp = {s: out / f".partial-{s}" for s in ("train", "valid")}
    try:
        metas = _write_splits(cfg, tmp, workers, progress)
        for split in ("train", "valid"):
            write_meta(tmp[split] / "meta.json", metas[split])
            shutil.rmtree(out / split, ignore_errors=True)
            os.replace(tmp[split], out / split)
    finally:  # interrupted, disk full, ...: no half-written split stays behind
        for d in tmp.values():
            shutil.rmtree(d, ignore_errors=True)
    videos = {split: sorted(metas[split]) for split in metas}
    write_json(out / MARKER, info | {"complete": True, "videos": videos})
    return out


def _write_splits(
    cfg: SynthConfig, tmp: dict[str, Path], workers: int, progress: bool
) -> dict[str, dict[str, dict[int, ObjectInfo]]]:
    """Every video of both splits into the folders ``tmp[split]``; returns their objects."""
    for d in tmp.values():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    jobs = [
        (split, i)
        for split, n in (("train", cfg.train_videos), ("valid", cfg.valid_videos))
        for i in range(n)
    ]
    args = [(cfg, s, i, tmp[s]) for s, i in jobs]
    metas: dict[str, dict] = {"train": {}, "valid": {}}
    with tqdm(total=len(args), desc="synth videos", unit="video", disable=not progress) as bar:
        if workers > 1:
            with worker_pool(workers) as pool:
                for (split, _), (name, objects) in zip(
                    jobs, pool.imap(_write_video, args), strict=True
                ):
                    metas[split][name] = objects
                    bar.update()
        else:
            for (split, _), a in zip(jobs, args, strict=True):
                name, objects = _write_video(a)
                metas[split][name] = objects
                bar.update()
    return metas


_KIT_FILE = re.compile(r"\d{5}\.(jpg|png)")  # the frame and mask files of a generated video


def _marker(out: Path) -> dict:
    """The generator's marker in ``out`` ({} where there is none)."""
    try:
        saved = json.loads((out / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _kit_videos(out: Path, split: str) -> set[str]:
    """The videos the generator wrote into ``out/split``, as its marker (or, for datasets of
    earlier versions, the split's meta.json) lists them."""
    saved = _marker(out).get("videos", {})
    if isinstance(saved, dict) and isinstance(saved.get(split), list):
        return set(saved[split])
    try:
        return set(load_meta(out / split / "meta.json"))
    except ValueError:
        return set()


def _refuse_user_files(split_dir: Path, videos: set[str]) -> None:
    """Raise, naming it, if ``split_dir`` holds a file the generator did not write: replacing
    the split would delete it."""
    for path in sorted(split_dir.rglob("*")) if split_dir.is_dir() else []:
        parts = path.relative_to(split_dir).parts
        ours = parts == ("meta.json",) or (
            parts[0] in ("JPEGImages", "Annotations", "GroundTruth")
            and (len(parts) == 1 or parts[1] in videos)
            and (len(parts) <= 2 or (len(parts) == 3 and _KIT_FILE.fullmatch(parts[2])))
        )
        if not ours:
            raise ValueError(
                f"{path}: not written by vostutorial; regenerating {split_dir} would delete it: "
                "move it out of the dataset first"
            )


def ensure_default(
    root: str | os.PathLike | None = None, cfg: SynthConfig = SynthConfig(), progress: bool = True
) -> Path:
    """The default synthetic dataset's root, generating it first if missing or stale."""
    root = Path(root) if root is not None else default_data()
    _refuse_foreign(root)  # a user's folder is never replaced by synthetic data
    if is_synthetic_root(root):
        saved = _marker(root)
        want = asdict(cfg) | {"version": GENERATOR_VERSION, "complete": True}
        want = json.loads(json.dumps(want))  # as on disk
        if all(saved.get(k, True if k == "complete" else None) == v for k, v in want.items()):
            return root
    return generate(root, cfg, force=True, progress=progress)
