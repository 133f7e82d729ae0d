import json
import zipfile

import numpy as np
import pytest
import torch
from helpers import run_kit

from vostutorial import inference, propagation
from vostutorial.checkpoint import load_model
from vostutorial.data import YTVOSSplit, read_mask
from vostutorial.evaluate import evaluate_ytvos
from vostutorial.fast import upsampled_argmax
from vostutorial.inference import (
    finetune_online,
    merge,
    predict_objects,
    predict_size,
    soft_aggregate,
    upsample,
)
from vostutorial.models import build_model
from vostutorial.predictions import MARKER


def _probs(*values):
    """Per-object maps of one frame, one pixel each."""
    return {i + 1: np.full((1, 1, 1), v, np.float32) for i, v in enumerate(values)}


@pytest.mark.parametrize(
    ("values", "argmax", "threshold"),
    [
        ((0.4, 0.4), 1, 0),  # together likely an object (background 0.36), neither alone > 0.5
        ((0.7, 0.6), 1, 1),
        ((0.3, 0.8), 2, 2),
        ((0.2, 0.1), 0, 0),
    ],
)
def test_merge_rules_by_hand(values, argmax, threshold):
    assert merge(_probs(*values), method="argmax")[0, 0, 0] == argmax
    assert merge(_probs(*values), method="threshold")[0, 0, 0] == threshold
    assert merge(_probs(*values), method="soft")[0, 0, 0] == argmax


def test_soft_aggregation_is_a_distribution_that_keeps_the_order():
    p = np.random.default_rng(0).uniform(0, 1, (3, 2, 8, 8)).astype(np.float32)
    q = soft_aggregate(p)
    assert q.shape == (4, 2, 8, 8)
    np.testing.assert_allclose(q.sum(0), 1, rtol=1e-5)
    probs = {i + 1: p[i] for i in range(3)}
    assert np.array_equal(merge(probs, method="soft"), merge(probs, method="argmax"))


def test_given_masks_override_their_frame():
    probs = {1: np.full((3, 4, 4), 0.9, np.float32), 2: np.zeros((3, 4, 4), np.float32)}
    given = np.zeros((4, 4), bool)
    given[:2, :2] = True
    out = merge(probs, {2: (1, given)})
    assert (out[1][given] == 2).all() and (out[1][~given] == 1).all() and (out[0] == 1).all()
    # on its own frame an object is exactly its given mask, wherever else it was predicted
    out = merge(probs, {1: (2, given)})
    assert (out[2][given] == 1).all() and (out[2][~given] == 0).all() and (out[1] == 1).all()
    with pytest.raises(ValueError, match="unknown merge method"):
        merge(probs, method="vote")


def test_merge_resizes_to_the_given_masks_and_names_a_mismatch():
    probs = {1: np.zeros((2, 4, 6), np.float32), 2: np.ones((2, 4, 6), np.float32)}
    given = np.zeros((8, 12), bool)
    given[0, 0] = True
    out = merge(probs, {1: (0, given)})
    assert out.shape == (2, 8, 12) and out[0, 0, 0] == 1 and (out[1] == 2).all()
    assert merge(probs).shape == (2, 4, 6)
    assert merge(probs, size=(3, 5)).shape == (2, 3, 5)
    with pytest.raises(ValueError, match="given mask of object 1 is"):
        merge(probs, {1: (0, given)}, size=(4, 6))


@pytest.mark.parametrize(
    ("shape", "size"),
    [((3, 2, 32, 56), (180, 320)), ((5, 1, 7, 9), (50, 31)), ((2, 2, 16, 16), (8, 8))],
)
def test_upsampled_argmax_is_the_argmax_of_the_resized_scores(shape, size):
    # smooth random scores: regions and boundaries, as real probability maps have
    rng = np.random.default_rng(sum(shape))
    s = torch.from_numpy(rng.uniform(0, 1, shape).astype(np.float32))
    s = torch.nn.functional.avg_pool2d(s.flatten(0, 1)[:, None], 3, 1, 1).view(shape)
    resized = torch.nn.functional.interpolate(s, size=size, mode="bilinear", align_corners=False)
    top2 = resized.topk(2, dim=0).values
    differ = upsampled_argmax(s.numpy(), size) != resized.argmax(0).numpy()
    # identical up to float rounding, i.e. except where the two best classes tie
    assert (top2[0] - top2[1]).numpy()[differ].max(initial=0) < 1e-5
    assert differ.mean() < 1e-4


@pytest.mark.parametrize(
    ("frame", "stride", "size"),
    [
        ((180, 320), 32, (192, 320)),  # the synthetic frames: their own size, rounded to 32
        ((480, 854), 32, (256, 416)),  # DAVIS 480p: shorter side 240, then rounded
        ((854, 480), 32, (416, 256)),  # portrait: the same, turned
        ((1080, 1920), 8, (240, 424)),  # a stride of 8 rounds more finely
        ((100, 60), 32, (96, 64)),  # small: never scaled up, only rounded
        ((10, 700), 32, (32, 704)),  # at least one stride per side
    ],
)
def test_predict_size_scales_down_to_the_short_side_and_rounds_to_the_stride(frame, stride, size):
    assert predict_size(frame, stride) == size


def test_predict_objects_video_resolution_late_starts_and_shared_batches(synth_root, weights):
    model = load_model(weights)
    valid = YTVOSSplit(synth_root, "valid")
    for video in valid.videos:
        sample = valid.read_video(video)
        probs = predict_objects(model, sample)
        assert set(probs) == set(sample.first_masks)
        size = predict_size(sample.frames.shape[1:3], 32)  # tiny pools five times
        assert size != model.cfg.input_size  # the video's own size, not the training crop's
        for oid, (t0, _) in sample.first_masks.items():
            assert probs[oid].shape == (len(sample.frames), *size)
            assert not probs[oid][:t0].any() and probs[oid][t0:].min() > 0
    # objects starting together are batched: the same as one at a time
    sample = max((valid.read_video(v) for v in valid.videos), key=lambda s: len(s.first_masks))
    together = predict_objects(model, sample)
    for oid, first in sample.first_masks.items():
        sample.first_masks, keep = {oid: first}, sample.first_masks
        alone = predict_objects(model, sample)[oid]
        sample.first_masks = keep
        np.testing.assert_allclose(alone, together[oid], atol=1e-4)


def test_online_learning_fits_the_given_mask_and_leaves_the_model_alone(synth_root):
    # the plain S2S, which untrained knows nothing of the mask (tiny's feedback would copy it)
    torch.manual_seed(0)
    model = build_model("tiny", input_size=(64, 96), feedback=False, matching=False).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sample = YTVOSSplit(synth_root, "valid").read_video(
        next(iter(YTVOSSplit(synth_root, "valid").videos))
    )
    oid, (t0, mask) = next(iter(sample.first_masks.items()))
    sample.frames = sample.frames[t0 : t0 + 2]
    sample.first_masks = {oid: (0, mask)}

    def fit(m):  # J of the prediction on the given frame itself, at the size it was tuned at
        p = upsample(predict_objects(m, sample, m.cfg.input_size)[oid], mask.shape)[1] > 0.5
        return (p & mask).sum() / max(1, (p | mask).sum())

    tuned = finetune_online(model, sample, steps=30, lr=1e-3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert fit(tuned) > fit(model) + 0.2
    # in bfloat16 autocast: float32 weights, other numbers, the same lesson learnt
    tuned16 = finetune_online(model, sample, steps=30, lr=1e-3, bf16=True)
    assert all(p.dtype == torch.float32 for p in tuned16.parameters())
    pairs = zip(tuned.parameters(), tuned16.parameters(), strict=True)
    assert any(not torch.equal(a, b) for a, b in pairs)
    assert fit(tuned16) > fit(model) + 0.2


def _cli(*args: object) -> str:
    return run_kit(*args, check=True).stdout


def test_predict_cli_writes_the_submission_layout_and_resumes(synth_root, weights, tmp_path):
    out = tmp_path / "pred"
    _cli("predict", "--data", synth_root, "--checkpoint", weights, "--out", out, "--zip", "--quiet")
    valid = YTVOSSplit(synth_root, "valid")
    for video, info in valid.videos.items():
        files = sorted(p.stem for p in (out / video).glob("*.png"))
        assert files == info.frames  # every frame of the video
        m = read_mask(out / video / f"{files[0]}.png", require_palette=True)
        assert m.shape == valid.frame(video, files[0]).shape[:2]  # original resolution
        t0 = {o: f for o, f in valid.first_appearances(video).items()}
        for oid, f in t0.items():  # the given mask is in the prediction on its frame
            given = valid.annotation(video, f) == oid
            assert (read_mask(out / video / f"{f}.png")[given] == oid).all()
    names = zipfile.ZipFile(out.with_suffix(".zip")).namelist()
    assert len(names) == sum(len(i.frames) for i in valid.videos.values())
    assert all(n.startswith("Annotations/") for n in names)
    # re-running skips finished videos; a video without its done-marker is redone
    first, second = sorted(valid.videos)[:2]
    stamp = (out / second / "00000.png").stat().st_mtime_ns
    (out / first / ".done").unlink()
    (out / first / "00035.png").unlink()
    _cli("predict", "--data", synth_root, "--checkpoint", weights, "--out", out, "--quiet")
    assert (out / first / "00035.png").exists() and (out / first / ".done").exists()
    assert (out / second / "00000.png").stat().st_mtime_ns == stamp
    report = tmp_path / "r.json"
    _cli("evaluate", "--pred", out, "--data", synth_root, "--json", report, "--quiet")
    ours = evaluate_ytvos(out, synth_root, progress=False)
    assert json.loads(report.read_text())["overall"] == pytest.approx(ours["overall"], abs=1e-12)
    # another size is another run: refused, not mixed into the same folder
    run = run_kit("predict", "--data", synth_root, "--checkpoint", weights, "--out", out,
                  "--short-side", "64", "--quiet")  # fmt: skip
    assert run.returncode and "overwrite" in run.stderr


def test_predict_short_side_sets_the_size_the_model_sees(synth_root, weights, tmp_path):
    seen = []
    model = load_model(weights)
    model.lstm.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out[0].shape[-2:])))
    valid = YTVOSSplit(synth_root, "valid")
    sample = valid.read_video(next(iter(valid.videos)))
    for side in (64, 1000):
        seen.clear()
        inference.tuned_probs(model, sample, short_side=side)
        h, w = predict_size(sample.frames.shape[1:3], 32, side)
        assert set(seen) == {(h // 32, w // 32)}  # the ConvLSTM at 1/32 of that size


def test_demo_writes_its_report(synth_root, weights, tmp_path, monkeypatch):
    import vostutorial.demo as demo

    monkeypatch.setattr(demo, "shipped_checkpoint", lambda progress=True: weights)
    data = tmp_path / "data" / "synthetic"
    import shutil

    shutil.copytree(synth_root, data)
    monkeypatch.setattr(demo, "ensure_default", lambda *a, **k: data)
    report = demo.run_demo(data, tmp_path / "results", progress=False, online_steps=2)
    out = tmp_path / "results"
    assert json.loads((out / "metrics.json").read_text())["overall"] == report["overall"]
    plain = json.loads((out / "metrics_no_online.json").read_text())
    assert plain.keys() == report.keys() and len(plain["objects"]) == len(report["objects"])
    table = (out / "results.md").read_text()
    assert "S2S tiny + online learning, 2 steps" in table
    assert "S2S, with online learning [1809.03327]" in table
    assert (data / "predictions" / "model-online").is_dir()  # inside the folder named
    assert list(out.glob("overlay_*.png"))


def test_blend_vote_weighs_each_object_with_its_own_channel_of_the_vote():
    rng = np.random.default_rng(0)
    probs = {7: rng.random((3, 4, 6), np.float32), 3: rng.random((3, 4, 6), np.float32)}
    vote = torch.softmax(torch.randn(3, 3, 8, 12), dim=1)  # background, object 3, object 7
    out = inference.blend_vote(probs, vote, 0.25)
    for oid, channel in ((3, 1), (7, 2)):  # channels follow ascending ids, not dict order
        want = 0.75 * upsample(probs[oid], (8, 12)) + 0.25 * vote[:, channel].numpy()
        np.testing.assert_allclose(out[oid], want, rtol=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        inference.blend_vote(probs, vote, 1.5)
    with pytest.raises(ValueError, match="the vote has 1 objects, the model's maps 2"):
        inference.blend_vote(probs, vote[:, :2], 0.5)


def _one_object(synth_root):
    valid = YTVOSSplit(synth_root, "valid")
    sample = valid.read_video(next(iter(valid.videos)))
    oid, first = next(iter(sample.first_masks.items()))
    sample.first_masks = {oid: first}
    return sample


def test_predict_video_with_the_vote_runs_from_the_model_to_label_propagation(synth_root, weights):
    model, sample = load_model(weights), _one_object(synth_root)
    trunk = torch.nn.AvgPool2d(4)  # a stand-in for VGG16: a pixel's colour, at 1/4
    alone = inference.predict_video(model, sample)
    vote = propagation.propagate_soft(trunk, sample.frames, sample.first_masks)
    blended = inference.blend_vote(inference.tuned_probs(model, sample), vote, 0.0)
    assert (merge(blended, sample.first_masks) == alone).all()  # share 0: the model's labels
    voted = inference.predict_video(model, sample, vote_share=1.0, trunk=trunk)
    assert (voted == propagation.propagate_labels(trunk, sample.frames, sample.first_masks)).all()
    half = inference.predict_video(model, sample, vote_share=0.5, trunk=trunk)
    agree = alone == voted
    assert (half[agree] == alone[agree]).all()  # where both say the same, so does their mean
    assert (alone != voted).sum() > 100  # and the two disagree somewhere, so the test can fail


def test_predict_split_records_the_vote_share(synth_root, weights, tmp_path, monkeypatch):
    monkeypatch.setattr(inference, "feature_extractor", lambda: torch.nn.AvgPool2d(4))
    out = tmp_path / "pred"
    inference.predict_split(synth_root, "valid", weights, out, progress=False, vote_share=0.5)
    assert json.loads((out / MARKER).read_text())["vote_share"] == 0.5
    with pytest.raises(ValueError, match="vote_share"):  # the model alone is another run
        inference.predict_split(synth_root, "valid", weights, out, progress=False)
    with pytest.raises(ValueError, match="between 0 and 1"):
        inference.predict_split(synth_root, "valid", weights, out, vote_share=2.0)
    run = run_kit("predict", "--data", synth_root, "--out", tmp_path / "p", "--propagation", "2")
    assert run.returncode and "--propagation: must be between 0 and 1, not 2.0" in run.stderr


def test_segment_clip_votes_from_the_mask_frame_on(synth_root, weights):
    model, sample = load_model(weights), _one_object(synth_root)
    oid, (t0, mask) = next(iter(sample.first_masks.items()))
    frames, start = sample.frames, t0 + 2  # a mask painted on a later frame
    painted = np.where(mask, oid, 0).astype(np.uint8)
    trunk = torch.nn.AvgPool2d(4)
    labels = inference.segment_clip(model, frames, painted, start, vote_share=1.0, trunk=trunk)
    alone = propagation.propagate_labels(trunk, frames[start:], {oid: (0, mask)})
    assert (labels[start:] == alone).all()  # propagation alone, started on the mask's frame
    assert not labels[:start].any()  # frames before it stay empty
