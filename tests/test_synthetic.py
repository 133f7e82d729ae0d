import hashlib
import json

import numpy as np
import pytest

from vostutorial.data import SEEN, UNSEEN, SynthConfig, YTVOSSplit, generate, read_mask
from vostutorial.data.check import check_split


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_train_annotated_on_every_stored_frame(synth_root):
    train = YTVOSSplit(synth_root, "train")
    assert len(train) == 6
    assert not train.has_ground_truth
    for name, info in train.videos.items():
        assert info.frames == [f"{5 * t:05d}" for t in range(8)]  # every 5th original frame
        pngs = sorted(p.stem for p in (synth_root / "train" / "Annotations" / name).glob("*.png"))
        assert pngs == info.frames
        assert 1 <= len(info.objects) <= 4
        for oid, obj in info.objects.items():
            present = [f for f in info.frames if (train.annotation(name, f) == oid).any()]
            assert obj.frames == present
    meta = json.loads((synth_root / "train" / "meta.json").read_text())
    obj = next(iter(next(iter(meta["videos"].values()))["objects"].values()))
    assert set(obj) == {"category", "frames"}


def test_valid_gives_first_appearances_only_and_full_ground_truth(synth_root):
    valid = YTVOSSplit(synth_root, "valid")
    assert valid.has_ground_truth
    for name, info in valid.videos.items():
        firsts = valid.first_appearances(name)
        given = sorted(p.stem for p in (synth_root / "valid" / "Annotations" / name).glob("*.png"))
        assert given == sorted(set(firsts.values()))
        for f in given:
            ann = valid.annotation(name, f)
            gt = valid.ground_truth(name, f)
            starting = {o for o, ff in firsts.items() if ff == f}
            assert set(np.unique(ann).tolist()) - {0} == starting
            assert np.array_equal(ann, np.where(np.isin(gt, list(starting)), gt, 0))
        for oid, obj in info.objects.items():
            present = [f for f in info.frames if (valid.ground_truth(name, f) == oid).any()]
            assert obj.frames == present
        # ids are numbered in order of first appearance, as in YouTube-VOS
        assert [firsts[o] for o in sorted(firsts)] == sorted(firsts.values())


def test_seen_categories_in_train_unseen_only_in_valid(tmp_path):
    root = generate(
        tmp_path,
        SynthConfig(train_videos=10, valid_videos=12, seed=1, size=(48, 80), frames=8),
        workers=1,
        progress=False,
    )
    train = set(YTVOSSplit(root, "train").categories())
    valid = YTVOSSplit(root, "valid")
    assert train <= {c.name for c in SEEN}
    assert set(valid.categories()) & {c.name for c in UNSEEN}
    assert set(valid.categories()) & train
    # some object enters after the first frame, and its first mask is not tiny
    late = [
        (v, o)
        for v, i in valid.videos.items()
        for o in i.objects.values()
        if o.frames[0] != "00000"
    ]
    assert late
    v, o = late[0]
    assert (valid.annotation(v, o.frames[0]) == o.id).sum() >= 0.004 * 48 * 80


def test_same_arguments_same_bytes_whatever_the_workers(tmp_path):
    cfg = SynthConfig(train_videos=3, valid_videos=2, seed=7, size=(40, 64), frames=5)
    a = _digest(generate(tmp_path / "a", cfg, workers=1, progress=False))
    b = _digest(generate(tmp_path / "b", cfg, workers=2, progress=False))
    c = _digest(
        generate(tmp_path / "c", SynthConfig(3, 2, 8, (40, 64), 5), workers=1, progress=False)
    )
    assert a == b
    assert a != c


def test_generate_refuses_to_overwrite_without_force(synth_copy):
    with pytest.raises(ValueError, match="already exists; pass --force"):
        generate(synth_copy, SynthConfig(train_videos=1, valid_videos=1, size=(32, 48), frames=3))
    generate(
        synth_copy,
        SynthConfig(train_videos=1, valid_videos=1, size=(32, 48), frames=3),
        force=True,
        progress=False,
    )
    assert len(YTVOSSplit(synth_copy, "train")) == 1
    assert not list(synth_copy.glob(".partial-*"))


def test_generated_data_is_clean_and_objects_move(synth_root):
    for split in ("train", "valid"):
        problems, summary = check_split(synth_root, split, progress=False)
        assert problems == []
        assert summary["frames"] == 8 * (6 if split == "train" else 4)
    # motion: an object's mask is not the same on its first and last frames
    train = YTVOSSplit(synth_root, "train")
    moved = []
    for v, info in train.videos.items():
        for o in info.objects.values():
            a = train.annotation(v, o.frames[0]) == o.id
            b = train.annotation(v, o.frames[-1]) == o.id
            moved.append((a & b).sum() / max(1, (a | b).sum()) < 0.9)
    assert np.mean(moved) > 0.5
    mask = read_mask(
        next((synth_root / "train" / "Annotations").rglob("*.png")), require_palette=True
    )
    assert mask.shape == (64, 112)


def test_ensure_default_reuses_then_regenerates_on_new_config(tmp_path):
    from vostutorial.data import ensure_default

    cfg = SynthConfig(train_videos=1, valid_videos=1, size=(32, 48), frames=3)
    ensure_default(tmp_path, cfg, progress=False)
    marker = tmp_path / "synth_config.json"
    stamp = marker.stat().st_mtime_ns
    ensure_default(tmp_path, cfg, progress=False)
    assert marker.stat().st_mtime_ns == stamp  # reused, not regenerated
    ensure_default(tmp_path, SynthConfig(2, 1, 0, (32, 48), 3), progress=False)
    assert len(YTVOSSplit(tmp_path, "train")) == 2
