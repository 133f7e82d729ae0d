import json

import numpy as np
import pytest
from conftest import REAL_DAVIS
from helpers import write_split

from vostutorial.cli import main
from vostutorial.data import YTVOSSplit, write_image, write_mask
from vostutorial.evaluate import (
    coverage,
    evaluate_davis,
    evaluate_ytvos,
    pixel_shares,
    score_video,
)
from vostutorial.metrics import f_measure, jaccard, statistics
from vostutorial.predictions import (
    baseline_copy_first,
    copy_first,
    read_video_masks,
    write_video_masks,
)


def _scene(t=6, h=40, w=60, late=3):
    """Object 1 (category 'a') moves right; object 2 ('b') appears on frame ``late``."""
    ids = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        ids[i, 5:15, 3 + 3 * i : 13 + 3 * i] = 1
        if i >= late:
            ids[i, 25:35, 40 - 2 * i : 52 - 2 * i] = 2
    frames = np.where(ids[..., None] > 0, 200, 30).astype(np.uint8).repeat(3, -1)
    return frames, ids


@pytest.fixture
def scene_root(tmp_path):
    frames, ids = _scene()
    write_split(tmp_path, "train", {"tr": _scene(late=0)}, categories={1: "a", 2: "a"})
    write_split(tmp_path, "valid", {"v1": (frames, ids)}, heldout=True, categories={1: "a", 2: "b"})
    return tmp_path


def _write(pred_dir, masks, video="v1"):
    write_video_masks(pred_dir, video, [f"{5 * t:05d}" for t in range(len(masks))], masks)


def test_perfect_predictions_score_one(scene_root, tmp_path):
    _, ids = _scene()
    _write(tmp_path / "pred", ids)
    r = evaluate_ytvos(tmp_path / "pred", scene_root, "valid", workers=1, progress=False)
    assert r["J_seen"] == r["F_seen"] == r["J_unseen"] == r["F_unseen"] == r["overall"] == 1.0
    objs = {o["object"]: o for o in r["objects"]}
    assert objs[1]["category"] == "a" and objs[1]["seen"] and objs[1]["frames"] == 5
    assert objs[2]["category"] == "b" and not objs[2]["seen"] and objs[2]["frames"] == 2


def test_copy_first_scores_match_a_direct_computation(scene_root, tmp_path):
    _, ids = _scene()
    baseline_copy_first(scene_root, "valid", tmp_path / "cf", progress=False)
    pred = read_video_masks(tmp_path / "cf", "v1", [f"{5 * t:05d}" for t in range(6)])
    r = evaluate_ytvos(tmp_path / "cf", scene_root, "valid", workers=1, progress=False)
    j1 = jaccard(pred[1:] == 1, ids[1:] == 1).mean()
    f2 = f_measure(pred[4:] == 2, ids[4:] == 2).mean()
    assert r["J_seen"] == pytest.approx(j1)
    assert r["F_unseen"] == pytest.approx(f2)
    assert 0 < r["overall"] < 1
    assert r["overall"] == pytest.approx(
        np.mean([r[k] for k in ("J_seen", "J_unseen", "F_seen", "F_unseen")])
    )
    # the baseline itself: given mask on its frame, copied after, nothing before
    assert np.array_equal(pred[0], np.where(ids[0] == 1, 1, 0))
    assert not (pred[:3] == 2).any() and np.array_equal(pred[5] == 2, ids[3] == 2)


def test_first_frame_rule(scene_root, tmp_path):
    _, ids = _scene()
    wrong_first = ids.copy()
    wrong_first[0] = 0  # object 1 missed on its given frame only
    _write(tmp_path / "p", wrong_first)
    r = evaluate_ytvos(tmp_path / "p", scene_root, "valid", workers=1, progress=False)
    assert r["J_seen"] == 1.0 and r["protocol"]["first_frame_scored"] is False
    r = evaluate_ytvos(
        tmp_path / "p", scene_root, "valid", score_first=True, workers=1, progress=False
    )
    assert r["J_seen"] == pytest.approx(5 / 6)


def test_prediction_problems_are_counted_and_named(scene_root, tmp_path):
    _, ids = _scene()
    pred = tmp_path / "p"
    _write(pred, ids)
    (pred / "v1" / "00010.png").unlink()
    (pred / "v1" / "00015.png").unlink()
    write_mask(pred / "v1" / "00020.png", np.zeros((10, 10), np.uint8))
    bad = ids[5].copy()
    bad[0, 0] = 7
    write_mask(pred / "v1" / "00025.png", bad)
    with pytest.raises(ValueError) as err:
        evaluate_ytvos(pred, scene_root, "valid", workers=1, progress=False)
    msg = str(err.value)
    assert "4 problem(s)" in msg
    assert "v1/00010.png: missing prediction" in msg
    assert "v1/00020.png: prediction is 10x10" in msg
    assert "v1/00025.png: holds ids [7]" in msg


def test_allow_missing_scores_missing_frames_as_empty(scene_root, tmp_path):
    _, ids = _scene()
    _write(tmp_path / "p", ids)
    (tmp_path / "p" / "v1" / "00025.png").unlink()
    r = evaluate_ytvos(
        tmp_path / "p", scene_root, "valid", allow_missing=True, workers=1, progress=False
    )
    assert r["protocol"]["missing_frames_scored_empty"] == 1
    assert r["J_seen"] == pytest.approx(4 / 5)  # object 1 scored 0 on one of its five frames
    assert r["J_unseen"] == pytest.approx(1 / 2)


def test_group_without_objects_is_null(tmp_path):
    frames, ids = _scene()
    write_split(tmp_path, "train", {"tr": (frames, ids)}, categories={1: "a", 2: "b"})
    write_split(tmp_path, "valid", {"v1": (frames, ids)}, heldout=True, categories={1: "a", 2: "b"})
    _write(tmp_path / "p", ids)
    r = evaluate_ytvos(tmp_path / "p", tmp_path, "valid", workers=1, progress=False)
    assert r["J_unseen"] is None and r["F_unseen"] is None and r["overall"] == 1.0


def test_evaluate_cli_json_and_parallel_agree(synth_root, tmp_path, capsys):
    assert (
        main(
            [
                "baseline",
                "copy-first",
                "--data",
                str(synth_root),
                "--out",
                str(tmp_path / "cf"),
                "--quiet",
            ]
        )
        == 0
    )
    out = tmp_path / "r.json"
    assert (
        main(
            [
                "evaluate",
                "--pred",
                str(tmp_path / "cf"),
                "--data",
                str(synth_root),
                "--json",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "seen" in text and "unseen" in text and "not scored" in text
    report = json.loads(out.read_text())
    assert set(report) >= {"J_seen", "J_unseen", "F_seen", "F_unseen", "overall", "objects"}
    assert set(report["objects"][0]) >= {"video", "object", "category", "seen", "J", "F", "frames"}
    n_obj = sum(len(v.objects) for v in YTVOSSplit(synth_root, "valid").videos.values())
    assert len(report["objects"]) == n_obj
    serial = evaluate_ytvos(tmp_path / "cf", synth_root, workers=1, progress=False)
    assert serial["overall"] == pytest.approx(report["overall"])
    every = sum(len(list(d.glob("*.png"))) for d in (tmp_path / "cf").iterdir())
    assert every == 4 * 8  # the baseline writes every frame of every video


def test_copy_first_paints_late_objects_from_their_frame(synth_root):
    ds = YTVOSSplit(synth_root, "valid")
    for v in ds.videos:
        s = ds.read_video(v)
        out = copy_first(s)
        for oid, (t, m) in s.first_masks.items():
            assert not (out[:t] == oid).any()
            higher = np.isin(out[t], [o for o in s.first_masks if o > oid])
            assert np.array_equal(out[t] == oid, m & ~higher)
            assert np.array_equal(
                out[-1] == oid, m & ~np.isin(out[-1], [o for o in s.first_masks if o > oid])
            )


# --- DAVIS ----------------------------------------------------------------------------------
def _davis(root, seqs):
    for name, ids in seqs.items():
        (root / "JPEGImages/480p" / name).mkdir(parents=True)
        (root / "Annotations/480p" / name).mkdir(parents=True)
        for t, m in enumerate(ids):
            write_image(
                root / f"JPEGImages/480p/{name}/{t:05d}.jpg", np.zeros((*m.shape, 3), np.uint8)
            )
            write_mask(root / f"Annotations/480p/{name}/{t:05d}.png", m)
    return root


def test_davis_protocol(tmp_path):
    _, ids = _scene(t=7, late=0)
    ids[4:6][ids[4:6] == 2] = 0  # object 2 absent from frames 4-5 in truth and prediction
    ids2 = ids.copy()
    ids2[:, 0, :] = 255  # a void row
    root = _davis(tmp_path / "davis", {"s1": ids, "s2": ids2})
    pred = tmp_path / "pred"
    for name, m in (("s1", ids), ("s2", np.where(ids2 == 255, 0, ids2))):
        (pred / name).mkdir(parents=True)
        for t in range(len(m)):
            write_mask(pred / name / f"{t:05d}.png", m[t])
    r = evaluate_davis(pred, root, workers=1, progress=False)
    assert r["J&F-Mean"] == 1.0 and len(r["objects"]) == 4
    assert all(o["frames"] == 5 for o in r["objects"])  # first and last frames not scored
    # a wrong first/last frame does not count; a wrong middle frame does
    write_mask(pred / "s1" / "00000.png", np.zeros_like(ids[0]))
    write_mask(pred / "s1" / "00006.png", np.zeros_like(ids[0]))
    assert evaluate_davis(pred, root, workers=1, progress=False)["J-Mean"] == 1.0
    # painting object 1 over the void row: wrong when 255 is background, fine when ignored
    m = np.where(ids2 == 255, 1, ids2)
    for t in range(len(m)):
        write_mask(pred / "s2" / f"{t:05d}.png", m[t])
    assert evaluate_davis(pred, root, workers=1, progress=False)["J-Mean"] < 1.0
    assert evaluate_davis(pred, root, ignore_void=True, workers=1, progress=False)["J-Mean"] == 1.0


def test_davis_real_sequence(tmp_path):
    davis16 = REAL_DAVIS
    if not davis16.is_dir():
        pytest.skip(f"{davis16} absent")
    from vostutorial.data import DavisSequences

    root = tmp_path / "davis"  # a DAVIS root of car-shadow alone, linked (never copied)
    for kind in ("JPEGImages", "Annotations"):
        (root / kind / "480p").mkdir(parents=True)
        (root / kind / "480p" / "car-shadow").symlink_to(davis16 / kind / "480p" / "car-shadow")
    names, _, gt = DavisSequences(root).read_sequence("car-shadow")
    pred = np.roll(gt, 6, axis=2)
    (tmp_path / "pred" / "car-shadow").mkdir(parents=True)
    for n, m in zip(names, pred, strict=True):
        write_mask(tmp_path / "pred" / "car-shadow" / f"{n}.png", m)
    r = evaluate_davis(tmp_path / "pred", root, workers=1, progress=False)
    j, f = jaccard(pred[1:-1], gt[1:-1]), f_measure(pred[1:-1], gt[1:-1])
    assert r["J-Mean"] == pytest.approx(j.mean()) and r["F-Mean"] == pytest.approx(f.mean())
    assert r["J-Decay"] == pytest.approx(statistics(j)[2])
    assert 0.5 < r["J-Mean"] < 1 and r["F-Mean"] > 0.5  # r = 8 px forgives most of a 6-px shift
    assert r["J&F-Mean"] == pytest.approx((j.mean() + f.mean()) / 2)


def test_reference_rows_are_attributed_and_their_overall_is_their_mean():
    from vostutorial.evaluate import REFERENCE_RESULTS, markdown_table

    assert all("[1809.03327]" in name for name in REFERENCE_RESULTS)  # the benchmark paper
    for name, row in REFERENCE_RESULTS.items():
        cells = markdown_table({name: row}).splitlines()[-1].split("|")[2:-1]
        overall, *four = (float(c) for c in cells)
        assert abs(overall - sum(four) / 4) < 6e-4, name  # rounding of the printed mean only


def test_coverage_tells_a_spilling_map_from_a_lost_object():
    gt = np.zeros((3, 20, 20), np.uint8)
    gt[:2, 5:15, 5:15] = 1  # a 100-pixel object on frames 0 and 1, gone on frame 2
    pred = np.zeros_like(gt)
    pred[0, 5:13, 5:15] = 1  # 80 of its pixels ...
    pred[0, 0:3, 0:10] = 1  # ... and 30 elsewhere
    pred[1, 5:15, 5:15] = 1  # all of it ...
    pred[1, 15:20, 0:20] = 1  # ... and a spill as large as the object
    pred[2, 0:4, 0:4] = 1
    inside, outside = coverage(pred, gt, 1)
    np.testing.assert_allclose(inside[:2], [0.8, 1.0])  # in units of the object, not the map
    np.testing.assert_allclose(outside[:2], [0.3, 1.0])
    assert np.isnan(inside[2]) and np.isnan(outside[2])  # no object, no size to measure in
    # frame 1 keeps the whole object, yet J halves: the spill, not a miss
    j, _ = score_video(pred[:2], gt[:2], {1: 0}, score_first=True)[1]
    np.testing.assert_allclose(j, [80 / 130, 0.5])
    assert np.isnan(coverage(pred, gt, 2)[0]).all()  # an id nowhere: NaN on every frame


def test_pixel_shares_say_which_id_took_an_objects_pixels():
    gt = np.zeros((2, 10, 10), np.uint8)
    gt[:, 0:5, :] = 3  # 50 pixels of object 3 on both frames
    pred = np.zeros_like(gt)
    pred[0, 0:3, :] = 3  # frame 0: 30 kept ...
    pred[0, 3:4, :] = 1  # ... 10 taken by object 1, 10 left to background
    pred[1, 0:5, :] = 1  # frame 1: all 50 taken by object 1
    pred[:, 8:10, :] = 3  # object 3 painted elsewhere too: no share of its true pixels
    shares = pixel_shares(pred, gt, 3)
    assert sorted(shares) == [0, 1, 3]
    np.testing.assert_allclose(shares[3], [0.6, 0.0])
    np.testing.assert_allclose(shares[1], [0.2, 1.0])
    np.testing.assert_allclose(shares[0], [0.2, 0.0])
    np.testing.assert_allclose(shares[3], coverage(pred, gt, 3)[0])  # its own share: its cover
