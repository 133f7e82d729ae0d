"""Your own video: decoding files and frame folders, the first mask, and `vostutorial segment`."""

import json

import av
import numpy as np
import pytest
from helpers import run_kit, square_video
from PIL import Image

from vostutorial.checkpoint import load_model
from vostutorial.cli import main
from vostutorial.data import read_mask, write_mask
from vostutorial.fast import speed_up
from vostutorial.inference import VOTE_SHARE, segment_clip
from vostutorial.paths import real_davis
from vostutorial.video import read_clip, read_first_mask

REAL = real_davis() / "JPEGImages" / "480p"  # evaluation only: never trained or tuned on


def _write_video(path, frames, codec, pix_fmt, rate=10):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    return path


def _frames(t=6, h=64, w=96):
    """A square moving right over a gradient: every frame different, smooth for codecs."""
    frames, ids = square_video(t=t, h=h, w=w, step=4)
    frames = frames.copy()
    frames[..., 0] = np.linspace(0, 200, w, dtype=np.uint8)[None, None]
    return frames, ids


@pytest.mark.parametrize(
    "name, codec, pix_fmt, exact",
    [("clip.avi", "ffv1", "bgr0", True), ("clip.mov", "png", "rgb24", True),
     ("clip.mp4", "libx264", "yuv420p", False)],
)  # fmt: skip
def test_videos_decode_to_their_frames(tmp_path, name, codec, pix_fmt, exact):
    frames, _ = _frames()
    clip = read_clip(_write_video(tmp_path / name, frames, codec, pix_fmt), size_cap=None)
    assert clip.frames.shape == frames.shape and clip.names[:2] == ["00000", "00001"]
    err = np.abs(clip.frames[0].astype(int) - frames[0]).mean()
    assert err == 0 if exact else err < 4
    every_other = read_clip(tmp_path / name, stride=2, start=1, stop=6, size_cap=None)
    assert every_other.names == ["00001", "00003", "00005"]


def test_a_frame_folder_is_ordered_by_number_and_capped_in_size(tmp_path):
    frames, _ = _frames(t=12, h=96, w=160)
    for i, f in enumerate(frames):  # plain numbering: 10 must come after 9
        Image.fromarray(f).save(tmp_path / f"frame_{i}.png")
    clip = read_clip(tmp_path, size_cap=48)
    assert clip.frames.shape == (12, 48, 80, 3) and clip.scale == 0.5
    assert clip.names[-3:] == ["00009", "00010", "00011"]
    full = read_clip(tmp_path, size_cap=None)
    np.testing.assert_array_equal(full.frames[10], frames[10])


def test_the_first_mask_is_checked(tmp_path):
    _, ids = _frames()
    write_mask(tmp_path / "ok.png", ids[0])
    np.testing.assert_array_equal(read_first_mask(tmp_path / "ok.png", (64, 96)), ids[0])
    half = read_first_mask(tmp_path / "ok.png", (32, 48))  # same aspect: resized, ids kept
    assert set(np.unique(half)) == {0, 1}
    rgb = np.zeros((64, 96, 3), np.uint8)
    rgb[ids[0] == 1] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="palette.*--colour R,G,B=ID"):
        read_first_mask(tmp_path / "rgb.png", (64, 96))
    mapped = read_first_mask(tmp_path / "rgb.png", (64, 96), {(255, 0, 0): 1})
    np.testing.assert_array_equal(mapped, ids[0])
    rgb[ids[0] == 1][:5] = (250, 3, 3)
    soft = rgb.copy()
    soft[10:20, 4] = (128, 0, 0)  # an anti-aliased edge shade
    Image.fromarray(soft).save(tmp_path / "soft.png")
    with pytest.raises(ValueError, match=r"colour \(128, 0, 0\) at \(4, 10\) is in no colour"):
        read_first_mask(tmp_path / "soft.png", (64, 96), {(255, 0, 0): 1})


def _refused(capsys, *args) -> str:
    assert main([str(a) for a in args]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_segment_answers_bad_clips_and_masks_with_one_line(tmp_path, capsys, weights):
    frames, ids = _frames()
    video = _write_video(tmp_path / "v.avi", frames, "ffv1", "bgr0")
    write_mask(tmp_path / "m.png", ids[0])
    common = ["--checkpoint", weights, "--out", tmp_path / "out"]
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    assert "noise.mp4: cannot decode video" in _refused(
        capsys, "segment", tmp_path / "noise.mp4", "--mask", tmp_path / "m.png", *common
    )
    with av.open(str(tmp_path / "empty.mkv"), "w") as out:  # a container, no frame in it
        s = out.add_stream("ffv1", rate=10)
        s.width, s.height, s.pix_fmt = 96, 64, "bgr0"
        out.start_encoding()
    assert "empty.mkv: no frames to read" in _refused(
        capsys, "segment", tmp_path / "empty.mkv", "--mask", tmp_path / "m.png", *common
    )
    write_mask(tmp_path / "tall.png", np.ones((96, 64), np.uint8))
    assert "tall.png: mask is 64x96 (WxH) but the clip's frames are 96x64" in _refused(
        capsys, "segment", video, "--mask", tmp_path / "tall.png", *common
    )
    write_mask(tmp_path / "blank.png", np.zeros((64, 96), np.uint8))
    assert "blank.png: the mask is empty" in _refused(
        capsys, "segment", video, "--mask", tmp_path / "blank.png", *common
    )
    Image.fromarray(np.stack([ids[0] * 255] * 3, -1)).save(tmp_path / "rgb.png")
    assert "rgb.png: mask is a 'RGB'-mode image" in _refused(
        capsys, "segment", video, "--mask", tmp_path / "rgb.png", *common
    )
    assert not (tmp_path / "out").exists()  # nothing written by a refused run


def _jpeg_folder(folder, frames):
    """``frames`` ``(T, H, W, 3)`` as ``folder/000.jpg, 001.jpg, ...``: a clip as frames."""
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:03d}.jpg", quality=95)
    return folder


def test_segment_writes_every_frame_and_a_correction_keeps_the_frames_before(
    tmp_path, capsys, weights
):
    frames, ids = _frames(t=8)
    folder = _jpeg_folder(tmp_path / "frames", frames)
    write_mask(tmp_path / "m.png", ids[2])
    out = tmp_path / "out"
    r = run_kit("segment", folder, "--mask", tmp_path / "m.png", "--mask-frame", "2", "--out", out,
                "--checkpoint", weights, "--gif", check=True)  # fmt: skip
    assert "8 masks" in r.stdout
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:05d}.png" for i in range(8)]
    masks = np.stack([read_mask(out / f"{i:05d}.png") for i in range(8)])
    np.testing.assert_array_equal(masks[2], ids[2])  # the given frame is the given mask
    assert not masks[:2].any()  # before the given frame: nothing
    assert (out / "overlay.gif").stat().st_size > 0
    # a correction on frame 5 starts the model again from it; frames before it are kept
    model = load_model(weights)
    fixed = segment_clip(model, frames, ids[5], mask_frame=5, before=masks)
    np.testing.assert_array_equal(fixed[:5], masks[:5])
    np.testing.assert_array_equal(fixed[5], ids[5])
    # the same command again replaces its own files; a file of the user's stops it
    (out / "00007.png").unlink()
    (out / "notes.txt").write_text("mine")
    run_kit("segment", folder, "--mask", tmp_path / "m.png", "--mask-frame", "2", "--out", out,
            "--checkpoint", weights, check=True)  # fmt: skip
    assert (out / "00007.png").exists() and (out / "notes.txt").read_text() == "mine"
    manifest = json.loads((out / ".vostutorial-files.json").read_text())
    assert "notes.txt" not in manifest and "00000.png" in manifest


def test_segment_with_propagation_runs_the_blend_from_the_mask_frame(tmp_path, weights):
    frames, ids = _frames(t=6)
    folder = _jpeg_folder(tmp_path / "frames", frames)
    write_mask(tmp_path / "m.png", ids[1])
    out = tmp_path / "out"
    run_kit("segment", folder, "--mask", tmp_path / "m.png", "--mask-frame", "1", "--out", out,
            "--checkpoint", weights, "--propagation", check=True)  # fmt: skip
    masks = np.stack([read_mask(out / f"{i:05d}.png") for i in range(6)])
    model, clip = speed_up(load_model(weights)), read_clip(folder)
    blended = segment_clip(model, clip.frames, ids[1], 1, vote_share=VOTE_SHARE)
    np.testing.assert_array_equal(masks, blended)  # the flag alone: the kit's share
    alone = segment_clip(model, clip.frames, ids[1], 1)
    assert (alone != blended).any()  # and the vote changed the masks


def test_the_mask_editor_paints_erases_fills_and_undoes():
    from vostutorial.editor import MaskEditor

    editor = MaskEditor(np.zeros((60, 90, 3), np.uint8))
    editor.size = 6
    editor.begin(10, 20)  # a fast stroke: two far points, no gap between them
    editor.dab(70, 20)
    editor.end()
    assert (editor.mask[20, 10:71] == 1).all() and editor.mask[40].max() == 0
    editor.object, editor.tool = 2, "polygon"
    for x, y in [(20, 35), (50, 35), (50, 55), (20, 55), (21, 36)]:  # the last one closes it
        editor.click_polygon(x, y)
    assert (editor.mask[40:50, 25:45] == 2).all() and editor.polygon == []
    editor.tool = "eraser"
    editor.begin(30, 20)
    editor.end()
    assert editor.mask[20, 30] == 0 and editor.mask[20, 60] == 1
    editor.undo()  # the eraser's stroke is gone
    assert editor.mask[20, 30] == 1
    editor.undo()  # then the polygon
    assert editor.mask.max() == 1
    editor.clear()
    assert not editor.mask.any()
    editor.undo()
    assert editor.mask[20, 40] == 1
    shown = editor.overlay()
    assert shown.shape == (60, 90, 3) and shown[20, 40].any() and not shown[50, 5].any()
    with pytest.raises(ValueError, match="mask is"):
        MaskEditor(np.zeros((60, 90, 3), np.uint8), mask=np.zeros((10, 10), np.uint8))


def test_curves_and_the_youtube_vos_export(tmp_path, weights, capsys):
    from vostutorial.data.check import check_split
    from vostutorial.video import Clip, object_curves, write_ytvos

    frames, ids = _frames(t=6)
    labels, probs = segment_clip(
        load_model(weights), frames, ids[1], 1, return_probs=True, progress=True
    )
    bar = capsys.readouterr().err
    assert "segment: 100%" in bar and "5/5" in bar  # one step per frame from the given one on
    curves = object_curves(labels, probs)
    area, conf = curves[1]
    assert np.isnan(area[0]) and np.isnan(conf[0])  # before the given frame
    assert area[1] == pytest.approx((ids[1] == 1).mean()) and 0.5 <= conf[1] <= 1
    # a correction from frame 3: its curves from frame 3 on, the earlier run's before it
    fixed, fixed_probs = segment_clip(
        load_model(weights), frames, ids[3], 3, before=labels, return_probs=True
    )
    after = object_curves(fixed, fixed_probs, earlier=curves)
    np.testing.assert_array_equal(after[1][0][:3], area[:3])
    assert after[1][0][3] == pytest.approx((ids[3] == 1).mean())
    clip = Clip(frames, [f"{i:05d}" for i in range(6)], 10.0, 1.0, tmp_path)
    split = write_ytvos(tmp_path / "mine", "clips", "square", clip, labels)
    problems, summary = check_split(tmp_path / "mine", "clips", progress=False)
    assert problems == [] and summary["frames"] == 6 and summary["objects"] == 1
    np.testing.assert_array_equal(read_mask(split / "Annotations/square/00001.png"), ids[1])


@pytest.mark.skipif(not REAL.is_dir(), reason="no shared real DAVIS samples beside the project")
def test_segment_on_a_real_clip_scores_as_predict_does(tmp_path):
    from vostutorial.data import DavisSequences
    from vostutorial.data.ytvos import VideoSample
    from vostutorial.inference import predict_video
    from vostutorial.metrics import jaccard
    from vostutorial.paths import SHIPPED_CHECKPOINT

    davis = DavisSequences(REAL.parent.parent)
    names, frames, gt = davis.read_sequence("blackswan")
    frames, gt = frames[:20], gt[:20] > 0
    h, w = frames.shape[1:3]
    with av.open(str(tmp_path / "swan.mp4"), "w") as out:  # a phone-like clip of the sequence
        stream = out.add_stream("libx264", rate=24, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    write_mask(tmp_path / "first.png", gt[0].astype(np.uint8))
    run_kit("segment", tmp_path / "swan.mp4", "--mask", tmp_path / "first.png", "--out",
            tmp_path / "out", "--size-cap", str(h), "--quiet", check=True)  # fmt: skip
    ours = np.stack([read_mask(tmp_path / "out" / f"{i:05d}.png") for i in range(20)]) == 1
    sample = VideoSample("swan", names[:20], frames, {1: (0, gt[0])}, {1: "object"})
    theirs = predict_video(load_model(SHIPPED_CHECKPOINT), sample) == 1
    j_segment, j_predict = jaccard(ours[1:], gt[1:]).mean(), jaccard(theirs[1:], gt[1:]).mean()
    print(f"J segment {j_segment:.3f}, predict {j_predict:.3f}")
    assert abs(j_segment - j_predict) <= 0.05, (j_segment, j_predict)
    assert j_predict > 0.5  # it does track the swan
