"""YouTube-VOS ``<split>_all_frames``: the network runs on every frame and the stored ones are
written (``predict --all-frames``); the held-out carver writes that layout too."""

import numpy as np
import pytest
from helpers import square_video, write_split

import vostutorial.inference as inference
from vostutorial.data import YTVOSSplit, write_image
from vostutorial.data.convert import carve_heldout
from vostutorial.data.palette import read_mask


def _dataset(tmp_path):
    """``valid`` stores every other frame (00000, 00002, ..., 00008); ``valid_all_frames``
    holds all nine (00000 ... 00008)."""
    frames, ids = square_video(t=9, step=2)
    root = write_split(tmp_path / "d", "valid", {"v": (frames[::2], ids[::2])}, True, step=2)
    every = root / "valid_all_frames" / "JPEGImages" / "v"
    every.mkdir(parents=True)
    for t in range(9):
        write_image(every / f"{t:05d}.jpg", frames[t], quality=95)
    return root, ids


def test_all_frames_runs_on_every_frame_and_writes_the_stored_ones(tmp_path, weights, monkeypatch):
    root, ids = _dataset(tmp_path)
    seen = []
    real = inference.predict_objects

    def spy(model, sample, **kw):
        seen.append(list(sample.frame_names))
        return real(model, sample, **kw)

    monkeypatch.setattr(inference, "predict_objects", spy)
    out = inference.predict_split(root, "valid", weights, tmp_path / "p", progress=False,
                                  all_frames=True)  # fmt: skip
    assert seen == [[f"{t:05d}" for t in range(9)]]  # the network saw every frame
    written = sorted(p.stem for p in (out / "v").glob("*.png"))
    assert written == ["00000", "00002", "00004", "00006", "00008"]  # the stored ones
    given = read_mask(out / "v" / "00000.png")
    assert np.array_equal(given, ids[0])  # the given mask on its frame
    # the same folder without --all-frames is another run: refused unless overwritten
    with pytest.raises(ValueError, match="overwrite"):
        inference.predict_split(root, "valid", weights, out, progress=False)


def test_all_frames_without_the_download_names_the_folder(tmp_path, weights):
    frames, ids = square_video(t=4)
    root = write_split(tmp_path / "d", "valid", {"v": (frames, ids)}, heldout=True)
    with pytest.raises(ValueError, match="valid_all_frames.*not found"):
        inference.predict_split(root, "valid", weights, tmp_path / "p", all_frames=True)
    assert not (tmp_path / "p").exists()  # refused before anything was written


def test_all_frames_must_hold_the_stored_frames(tmp_path):
    root, _ = _dataset(tmp_path)
    (root / "valid_all_frames" / "JPEGImages" / "v" / "00004.jpg").unlink()
    with pytest.raises(ValueError, match="lacks stored frame 00004"):
        YTVOSSplit(root, "valid").read_video_all_frames("v")


def test_carve_heldout_keeps_all_frames_of_heldout_videos(synth_root, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train").symlink_to(synth_root / "train", target_is_directory=True)
    train = YTVOSSplit(synth_root, "train")
    every = src / "train_all_frames" / "JPEGImages"
    for video, info in train.videos.items():
        (every / video).mkdir(parents=True)
        for name in info.frames:  # the stored frames plus one in between each
            frame = train.frame(video, name)
            write_image(every / video / f"{name}.jpg", frame)
            write_image(every / video / f"{int(name) + 1:05d}.jpg", frame)
    info = carve_heldout(src, tmp_path / "out", heldout_videos=2, unseen_categories=1,
                         progress=False)  # fmt: skip
    held = YTVOSSplit(tmp_path / "out", "heldout")
    assert len(held.videos) == info["heldout_videos"]
    out_every = tmp_path / "out" / "heldout_all_frames" / "JPEGImages"
    assert sorted(p.name for p in out_every.iterdir()) == sorted(held.videos)
    for video, vinfo in held.videos.items():
        assert len(list((out_every / video).glob("*.jpg"))) == 2 * len(vinfo.frames)
        sample = held.read_video_all_frames(video)
        assert len(sample.frame_names) == 2 * len(vinfo.frames)
    assert not (tmp_path / "out" / "train_all_frames").exists()
