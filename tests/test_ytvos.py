import json
import shutil

import numpy as np
import pytest
from helpers import square_video, write_split
from PIL import Image

from vostutorial.cli import main
from vostutorial.data import YTVOSSplit, load_meta, write_mask
from vostutorial.data.check import check_split


def _first(root, split="train"):
    ds = YTVOSSplit(root, split)
    video = next(iter(ds.videos))
    return ds, video, ds.videos[video]


def test_read_video_gives_each_objects_first_mask(synth_root):
    ds = YTVOSSplit(synth_root, "valid")
    for name in ds.videos:
        sample = ds.read_video(name)
        assert sample.frames.shape == (8, 64, 112, 3) and sample.frames.dtype == np.uint8
        for oid, (t, mask) in sample.first_masks.items():
            assert sample.frame_names[t] == min(ds.videos[name].objects[oid].frames)
            assert np.array_equal(mask, ds.ground_truth(name, sample.frame_names[t]) == oid)
            assert mask.any()
        assert set(sample.categories) == set(ds.videos[name].objects)


def test_load_meta_errors_name_the_file(tmp_path):
    p = tmp_path / "meta.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match=r"meta\.json: not valid JSON"):
        load_meta(p)
    p.write_text(json.dumps({"videos": {"v": {"objects": {"x": {"category": "a", "frames": []}}}}}))
    with pytest.raises(ValueError, match=r"meta\.json: video 'v' object 'x'"):
        load_meta(p)
    p.write_text(json.dumps({"vids": {}}))
    with pytest.raises(ValueError, match="top level"):
        load_meta(p)
    with pytest.raises(ValueError, match="split folder not found"):
        YTVOSSplit(tmp_path, "nope")


def test_missing_frame_is_reported(synth_copy):
    ds, video, info = _first(synth_copy)
    path = ds.frame_path(video, info.frames[2])
    path.unlink()
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(str(path) in p and "no file" in p for p in problems)
    with pytest.raises(ValueError, match=str(path)):
        YTVOSSplit(synth_copy, "train").read_video(video)


def test_annotation_of_the_wrong_size(synth_copy):
    ds, video, info = _first(synth_copy)
    path = ds.annotation_path(video, info.frames[1])
    write_mask(path, np.zeros((10, 10), np.uint8))
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(p.startswith(str(path)) and "112x64" in p for p in problems)
    with pytest.raises(ValueError, match="10x10 .* but its frame is 112x64"):
        ds.annotation(video, info.frames[1], ds.frame(video, info.frames[1]).shape)


def test_ids_not_in_meta(synth_copy):
    ds, video, info = _first(synth_copy)
    path = ds.annotation_path(video, info.frames[0])
    m = ds.annotation(video, info.frames[0])
    m[:3, :3] = 9
    write_mask(path, m)
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(
        p.startswith(str(path)) and "[9]" in p and "meta.json does not list" in p for p in problems
    )


def test_meta_frames_without_files(synth_copy):
    meta_path = synth_copy / "train" / "meta.json"
    meta = json.loads(meta_path.read_text())
    video = sorted(meta["videos"])[0]
    meta["videos"][video]["objects"]["1"]["frames"].append("00995")
    meta_path.write_text(json.dumps(meta))
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(
        f"{video}/00995.jpg: meta.json lists frame 00995 but it has no file" in p for p in problems
    )


def test_corrupt_and_non_palette_files(synth_copy):
    ds, video, info = _first(synth_copy)
    jpg = ds.frame_path(video, info.frames[3])
    jpg.write_bytes(jpg.read_bytes()[:200])
    png = ds.annotation_path(video, info.frames[4])
    rgb = np.asarray(Image.open(png).convert("RGB"))
    Image.fromarray(rgb).save(png)
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(p.startswith(str(jpg)) and "corrupt or truncated" in p for p in problems)
    assert any(p.startswith(str(png)) and "palette" in p for p in problems)
    with pytest.raises(ValueError, match=str(png)):
        ds.annotation(video, info.frames[4])


def test_check_data_cli_exit_codes(synth_copy, capsys):
    assert main(["check-data", str(synth_copy), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "train: ok: 6 videos" in out and "valid: ok: 4 videos" in out
    ds, video, info = _first(synth_copy)
    ds.frame_path(video, info.frames[0]).unlink()
    assert main(["check-data", str(synth_copy), "--split", "train", "--quiet"]) == 1
    assert str(ds.frame_path(video, info.frames[0])) in capsys.readouterr().out
    assert main(["check-data", str(synth_copy / "nope"), "--quiet"]) == 1
    assert "nope: not a folder" in capsys.readouterr().out
    shutil.rmtree(synth_copy / "valid" / "JPEGImages")
    assert main(["check-data", str(synth_copy), "--split", "valid", "--quiet"]) == 1
    assert "video has no frames" in capsys.readouterr().out


def test_hand_made_split_reads_back(tmp_path):
    frames, ids = square_video()
    write_split(tmp_path, "train", {"sq": (frames, ids)})
    ds = YTVOSSplit(tmp_path, "train")
    assert ds.videos["sq"].objects[1].frames == [f"{5 * t:05d}" for t in range(6)]
    assert np.array_equal(ds.annotation("sq", "00010"), ids[2])


def test_masks_and_object_table(synth_root):
    ds = YTVOSSplit(synth_root, "valid")
    video = next(iter(ds.videos))
    full, given = ds.masks(video), ds.masks(video, given_only=True)
    assert full.shape == (8, 64, 112)
    assert np.array_equal(full[3], ds.ground_truth(video, "00015"))
    firsts = ds.first_appearances(video)
    for t, f in enumerate(ds.videos[video].frames):
        if f not in firsts.values():
            assert not given[t].any()
    rows = ds.object_table()
    assert len(rows) == sum(len(v.objects) for v in ds.videos.values())
    row = next(r for r in rows if r["video"] == video and r["object"] == 1)
    present = (full == 1).mean(axis=(1, 2))
    assert row["area"] == pytest.approx(present[present > 0].mean())
    assert row["first_frame"] == firsts[1] and row["frames"] == len(
        ds.videos[video].objects[1].frames
    )
