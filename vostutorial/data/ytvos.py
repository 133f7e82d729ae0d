"""The YouTube-VOS layout: reading a split, its meta.json, frames and masks.

::

    <root>/<split>/JPEGImages/<video>/<frame>.jpg   frames, frame = 5-digit original index
    <root>/<split>/Annotations/<video>/<frame>.png  palette PNGs, pixel value = object id
    <root>/<split>/GroundTruth/<video>/<frame>.png  (held-out splits only) full ground truth
    <root>/<split>/meta.json  {"videos": {video: {"objects": {"1": {"category", "frames"}}}}}

    <root>/<split>_all_frames/JPEGImages/<video>/<frame>.jpg  (optional) every original frame

In ``train`` every stored frame (every 5th original frame) is annotated. In ``valid`` each
object's mask is given only on the frame where it first appears, so an Annotations PNG holds
just the objects that start on that frame; local held-out splits keep the full masks in
``GroundTruth`` for scoring. The official download also has ``valid_all_frames``: the frames
between the stored ones, which a model may run on (`YTVOSSplit.read_video_all_frames`) while
only the stored frames are scored.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..files import check_name, file_sha256, write_json
from .palette import mask_ids, read_image, read_mask, write_mask


@dataclass
class ObjectInfo:
    """One annotated object: its id in the mask PNGs, category and annotated frames."""

    id: int
    category: str
    frames: list[str]


@dataclass
class VideoInfo:
    """One video: its stored frames in order and its objects by id."""

    name: str
    frames: list[str]
    objects: dict[int, ObjectInfo] = field(default_factory=dict)


def load_meta(path: str | os.PathLike) -> dict[str, dict[int, ObjectInfo]]:
    """Parse a YouTube-VOS ``meta.json`` into ``{video: {object_id: ObjectInfo}}``.

    Raises a ValueError naming the file and the offending entry on any malformed part.
    """
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: meta.json not found; is the split folder right?") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; save meta.json as UTF-8 JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("videos"), dict):
        raise ValueError(f'{path}: expected {{"videos": {{...}}}} at the top level')
    out: dict[str, dict[int, ObjectInfo]] = {}
    for video, entry in meta["videos"].items():
        check_name(video, "video", path)
        objects = entry.get("objects") if isinstance(entry, dict) else None
        if not isinstance(objects, dict):
            raise ValueError(f'{path}: video {video!r} has no "objects" mapping')
        out[video] = {}
        for key, obj in objects.items():
            info = _object_info(key, obj, f"{path}: video {video!r}")
            if info.id in out[video]:  # "1" and "01": one object id twice
                raise ValueError(f"{path}: video {video!r} lists object id {info.id} twice")
            for f in info.frames:
                check_name(f, f"frame of video {video!r}", path)
            info.frames = sort_frames(info.frames, path)
            out[video][info.id] = info
    return out


def _object_info(key: str, obj: object, where: str) -> ObjectInfo:
    """One ``"objects"`` entry of meta.json, checked; ``where`` names the file and video."""
    try:
        oid = int(key)
        category, frames = str(obj["category"]), obj["frames"]
        if not isinstance(frames, list) or not all(isinstance(f, str) for f in frames):
            raise TypeError(f"frames is {frames!r}, not a list of frame names")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(
            f'{where} object {key!r} must be {{"category": str, '
            f'"frames": [str, ...]}} with an integer id ({exc})'
        ) from None
    if not 1 <= oid <= 255:
        raise ValueError(f"{where} object id {oid} is outside 1..255")
    return ObjectInfo(oid, category, frames)


def frame_key(name: str) -> tuple:
    """Sort key of a frame name: numbers by value (``5`` before ``10``), other names as text."""
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def sort_frames(names: Iterable[str], where: str | os.PathLike) -> list[str]:
    """Frame names in time order, or a ValueError naming ``where`` when the names do not say it.

    All-number names sort by value; other names must all have one length (``frame_007``), since
    ``frame_7`` vs ``frame_10`` would come out in the wrong order as text.
    """
    names = list(names)
    if not all(n.isdigit() for n in names) and len({len(n) for n in names}) > 1:
        examples = sorted(names, key=len)
        raise ValueError(
            f"{where}: frame names of different lengths that are not all numbers "
            f"({examples[0]!r}, {examples[-1]!r}): their order is ambiguous; name frames by "
            "zero-padded number (00000.jpg, 00005.jpg, ...)"
        )
    return sorted(names, key=frame_key)


def write_meta(path: str | os.PathLike, videos: dict[str, dict[int, ObjectInfo]]) -> None:
    """Write ``{video: {object_id: ObjectInfo}}`` as a YouTube-VOS meta.json (atomically)."""
    meta = {
        "videos": {
            video: {
                "objects": {
                    str(oid): {"category": o.category, "frames": list(o.frames)}
                    for oid, o in sorted(objs.items())
                }
            }
            for video, objs in sorted(videos.items())
        }
    }
    write_json(path, meta)


class YTVOSSplit:
    """One split of a dataset in the YouTube-VOS layout (``<root>/<split>``).

    ``videos`` maps each video name to its `VideoInfo`; frames are the JPEGs on disk, sorted.
    Pixel data is read on demand with `frame`, `annotation` and `ground_truth`.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        self.root = Path(root)
        self.split = check_name(split, "split", "--split")
        self.dir = self.root / split
        if not self.dir.is_dir():
            davis = (self.root / "JPEGImages" / "480p").is_dir()
            hint = (
                f"{self.root} looks like a DAVIS folder: evaluate it with --davis, or convert it "
                "with `vostutorial convert davis`"
                if davis
                else "make one with `vostutorial synth --out DIR`"
            )
            raise ValueError(
                f"{self.dir}: split folder not found; expected <root>/{split}/JPEGImages, "
                f"Annotations and meta.json ({hint})"
            )
        meta = load_meta(self.dir / "meta.json")
        self.videos: dict[str, VideoInfo] = {}
        # Frame files that are not ``<frame>.jpg`` (``.JPG``, ``.jpeg``): reported by
        # `require_frames` and `check_split` instead of being silently left out.
        self.odd_frame_files: dict[str, list[str]] = {}
        for name, objects in sorted(meta.items()):
            # A video without a frame folder gets no frames: `read_video` and `check_split`
            # report it by name rather than the constructor failing on the first one.
            folder = self.dir / "JPEGImages" / name
            files = os.listdir(folder) if folder.is_dir() else []
            frames = sort_frames([f[:-4] for f in files if f.endswith(".jpg")], folder)
            odd = sorted(
                f for f in files if f.lower().endswith((".jpg", ".jpeg")) and not f.endswith(".jpg")
            )
            if odd:
                self.odd_frame_files[name] = odd
            self.videos[name] = VideoInfo(name, frames, objects)

    def identity(self) -> dict:
        """What identifies the data read from this split, recorded by training runs and
        prediction folders so that work on other data is never resumed as current: the split's
        name, meta.json's SHA-256 and a digest of its files' names and sizes."""
        h = hashlib.sha256()
        for sub in ("JPEGImages", "Annotations", "GroundTruth"):
            for folder, subfolders, files in os.walk(self.dir / sub):
                subfolders.sort()
                for f in sorted(files):
                    path = os.path.join(folder, f)
                    h.update(
                        f"{os.path.relpath(path, self.dir)}:{os.path.getsize(path)}\n".encode()
                    )
        meta = file_sha256(self.dir / "meta.json")
        return {"split": self.split, "meta_sha256": meta, "files_sha256": h.hexdigest()[:16]}

    @property
    def has_ground_truth(self) -> bool:
        """True where a full ``GroundTruth`` folder exists (held-out splits)."""
        return (self.dir / "GroundTruth").is_dir()

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        n_obj = sum(len(v.objects) for v in self.videos.values())
        return f"YTVOSSplit({str(self.dir)!r}, videos={len(self)}, objects={n_obj})"

    def categories(self) -> dict[str, int]:
        """Object count per category."""
        counts: dict[str, int] = {}
        for v in self.videos.values():
            for o in v.objects.values():
                counts[o.category] = counts.get(o.category, 0) + 1
        return dict(sorted(counts.items()))

    # --- paths ---------------------------------------------------------------------------
    def frame_path(self, video: str, frame: str) -> Path:
        return self.dir / "JPEGImages" / video / f"{frame}.jpg"

    def annotation_path(self, video: str, frame: str) -> Path:
        return self.dir / "Annotations" / video / f"{frame}.png"

    def ground_truth_path(self, video: str, frame: str) -> Path:
        """Full ground truth: ``GroundTruth`` where present, else ``Annotations`` (train)."""
        sub = "GroundTruth" if self.has_ground_truth else "Annotations"
        return self.dir / sub / video / f"{frame}.png"

    # --- pixels --------------------------------------------------------------------------
    def frame(self, video: str, frame: str) -> np.ndarray:
        """The frame as ``(H, W, 3)`` uint8."""
        path = self.frame_path(video, frame)
        if not path.exists():
            raise ValueError(f"{path}: missing frame of video {video!r}")
        return read_image(path)

    def _mask(self, path: Path, video: str, shape: tuple[int, ...] | None) -> np.ndarray:
        if not path.exists():
            raise ValueError(f"{path}: missing annotation of video {video!r}")
        mask = read_mask(path, require_palette=True)
        if shape is not None and mask.shape != tuple(shape[:2]):
            raise ValueError(
                f"{path}: annotation is {mask.shape[1]}x{mask.shape[0]} (WxH) but its frame is "
                f"{shape[1]}x{shape[0]}; masks must have their frame's size"
            )
        known = set(self.videos[video].objects)
        unknown = sorted(set(mask_ids(mask)) - known)
        if unknown:
            raise ValueError(
                f"{path}: holds object ids {unknown} that meta.json does not list for video "
                f"{video!r} (listed: {sorted(known)})"
            )
        return mask

    def annotation(
        self, video: str, frame: str, shape: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """The Annotations mask ``(H, W)`` uint8 of object ids; checked against ``shape``."""
        return self._mask(self.annotation_path(video, frame), video, shape)

    def ground_truth(
        self, video: str, frame: str, shape: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """The full ground-truth mask ``(H, W)`` uint8 of object ids."""
        return self._mask(self.ground_truth_path(video, frame), video, shape)

    def first_appearances(self, video: str) -> dict[int, str]:
        """``{object_id: frame}`` of the frame where each object's mask is first given."""
        info = self.videos[video]
        out = {}
        for oid, obj in info.objects.items():
            if not obj.frames:
                meta = self.dir / "meta.json"
                raise ValueError(f"{meta}: object {oid} of video {video!r} lists no frames")
            out[oid] = obj.frames[0]  # load_meta sorted them in time order
        return out

    def masks(self, video: str, given_only: bool = False) -> np.ndarray:
        """All masks of a video as ``(T, H, W)`` uint8 ids, one per stored frame.

        The full ground truth by default; with ``given_only`` what Annotations gives (in valid:
        each object on its first frame only, zeros elsewhere).
        """
        info = self.videos[video]
        self.require_frames(video)
        shape = self.frame(video, info.frames[0]).shape
        out = np.zeros((len(info.frames), *shape[:2]), np.uint8)
        for t, f in enumerate(info.frames):
            path = (
                self.annotation_path(video, f) if given_only else self.ground_truth_path(video, f)
            )
            if path.exists():
                out[t] = self._mask(path, video, shape)
        return out

    def object_table(self, areas: bool = True) -> list[dict]:
        """One record per object: video, object, category, first frame, frame count and (with
        ``areas``) its mean mask area as a fraction of the frame on the frames it is present."""
        rows = []
        for video, info in self.videos.items():
            masks = self.masks(video) if areas else None
            for oid, obj in sorted(info.objects.items()):
                row = {
                    "video": video,
                    "object": oid,
                    "category": obj.category,
                    "first_frame": obj.frames[0],
                    "frames": len(obj.frames),
                }
                if masks is not None:
                    area = (masks == oid).mean(axis=(1, 2))
                    row["area"] = float(area[area > 0].mean()) if (area > 0).any() else 0.0
                rows.append(row)
        return rows

    def missing_frames(self, video: str) -> list[str]:
        """Frames that meta.json lists for an object of ``video`` but that have no JPEG."""
        info = self.videos[video]
        listed = {f for o in info.objects.values() for f in o.frames}
        return sorted(listed - set(info.frames), key=frame_key)

    def require_frames(self, video: str) -> None:
        """Raise a ValueError naming the first frame file meta.json promises but is absent."""
        folder = self.dir / "JPEGImages" / video
        odd = self.odd_frame_files.get(video)
        if odd:
            raise ValueError(
                f"{folder}: {len(odd)} frame file(s) such as {odd[0]!r} are not named "
                "<frame>.jpg (lower case); rename them, e.g. 00000.JPG -> 00000.jpg"
            )
        if not self.videos[video].frames:
            raise ValueError(f"{folder}: video has no frames (expected <frame>.jpg files)")
        missing = self.missing_frames(video)
        if missing:
            raise ValueError(
                f"{self.frame_path(video, missing[0])}: meta.json lists frame {missing[0]} "
                f"but it has no file ({len(missing)} such frame(s) in video {video!r})"
            )

    @property
    def all_frames_dir(self) -> Path:
        """``<root>/<split>_all_frames/JPEGImages``: every original frame, where downloaded."""
        return self.root / f"{self.split}_all_frames" / "JPEGImages"

    def read_video(self, video: str) -> VideoSample:
        """Everything inference needs for one video (see `VideoSample`)."""
        info = self.videos[video]
        self.require_frames(video)
        frames = [self.frame(video, f) for f in info.frames]
        return self._sample(
            video, info.frames, _stack(frames, info.frames, self.dir / "JPEGImages" / video)
        )

    def read_video_all_frames(self, video: str) -> VideoSample:
        """Like `read_video`, but with every original frame of ``<split>_all_frames`` (the
        stored frames among them); the given masks stay those of ``Annotations``."""
        folder = self.all_frames_dir / video
        if not folder.is_dir():
            raise ValueError(
                f"{folder}: not found; running on all frames needs the {self.split}_all_frames "
                "download (e.g. valid_all_frames.zip) unpacked beside the split"
            )
        names = sort_frames([p.stem for p in folder.glob("*.jpg")], folder)
        missing = sorted(set(self.videos[video].frames) - set(names), key=frame_key)
        if missing:
            raise ValueError(
                f"{folder}: lacks stored frame {missing[0]}.jpg of {self.dir / 'JPEGImages'}; "
                "the all-frames folder must hold every stored frame"
            )
        frames = _stack([read_image(folder / f"{n}.jpg") for n in names], names, folder)
        return self._sample(video, names, frames)

    def _sample(self, video: str, names: list[str], frames: np.ndarray) -> VideoSample:
        info = self.videos[video]
        index = {f: i for i, f in enumerate(names)}
        first: dict[int, tuple[int, np.ndarray]] = {}
        cache: dict[str, np.ndarray] = {}
        for oid, fname in sorted(self.first_appearances(video).items()):
            if fname not in cache:
                cache[fname] = self.annotation(video, fname, frames.shape[1:])
            mask = cache[fname] == oid
            first[oid] = (index[fname], mask)
        categories = {oid: o.category for oid, o in info.objects.items()}
        return VideoSample(video, list(names), frames, first, categories)


@dataclass
class VideoSample:
    """One video for inference.

    ``frames`` is ``(T, H, W, 3)`` uint8 in frame order; ``first_masks`` maps each object id
    to ``(t, mask)``: the index of the frame where its mask is given and that ``(H, W)`` bool
    mask.
    """

    name: str
    frame_names: list[str]
    frames: np.ndarray
    first_masks: dict[int, tuple[int, np.ndarray]]
    categories: dict[int, str]


def _stack(frames: list[np.ndarray], names: list[str], folder: Path) -> np.ndarray:
    """``(T, H, W, 3)`` from a video's frames, or an error naming the first of another size."""
    odd = next((i for i, f in enumerate(frames) if f.shape != frames[0].shape), None)
    if odd is not None:
        (h, w), (h0, w0) = frames[odd].shape[:2], frames[0].shape[:2]
        raise ValueError(
            f"{folder / names[odd]}.jpg: frame is {w}x{h} (WxH) but the video's first frame "
            f"{names[0]}.jpg is {w0}x{h0}; every frame of a video must have one size"
        )
    return np.stack(frames)


def first_appearance_masks(
    firsts: dict[int, str], ground_truth: Callable[[str], np.ndarray]
) -> dict[str, np.ndarray]:
    """What YouTube-VOS valid gives: ``{frame: mask}`` on each object's first frame only.

    ``firsts`` maps object id to its first frame; ``ground_truth(frame)`` returns the full
    ``(H, W)`` id map of a frame. Each returned mask keeps only the objects starting there.
    """
    out = {}
    for frame in sorted(set(firsts.values()), key=frame_key):
        starting = [oid for oid, f in firsts.items() if f == frame]
        gt = ground_truth(frame)
        out[frame] = np.where(np.isin(gt, starting), gt, 0).astype(np.uint8)
    return out


def write_video(
    split_dir: Path,
    video: str,
    frames: dict[str, Callable[[Path], None]],
    masks: dict[str, np.ndarray],
    objects: dict[int, ObjectInfo],
    heldout: bool,
) -> None:
    """One video of a split in the YouTube-VOS layout (the one writer `data.convert`,
    `data.synthetic` and the tests use): ``frames[name](path)`` writes frame ``name``'s JPEG;
    ``masks`` are the ``(H, W)`` id maps of the annotated frames. A training split keeps them
    all in ``Annotations``; a ``heldout`` one keeps them in ``GroundTruth`` and gives in
    ``Annotations`` each object's mask only on the frame where it first appears (`objects`,
    as meta.json lists them)."""
    for sub in ("JPEGImages", "Annotations") + (("GroundTruth",) if heldout else ()):
        (split_dir / sub / video).mkdir(parents=True, exist_ok=True)
    for name, write_frame in frames.items():
        write_frame(split_dir / "JPEGImages" / video / f"{name}.jpg")
    full = "GroundTruth" if heldout else "Annotations"
    for name, ids in masks.items():
        write_mask(split_dir / full / video / f"{name}.png", ids)
    if heldout:
        firsts = {oid: o.frames[0] for oid, o in objects.items()}  # in time order
        for name, given in first_appearance_masks(firsts, masks.__getitem__).items():
            write_mask(split_dir / "Annotations" / video / f"{name}.png", given)
