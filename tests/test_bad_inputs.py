"""Faulty inputs a careful user meets: the kit never deletes what it did not write, never writes
outside the folder named, never unpickles code, and answers with one line naming the file.

Refusals run in-process through `vostutorial.cli.main` (they stop before any heavy work);
cases that must train or predict run the real command in a subprocess.
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL_TRAIN, run_kit, square_video, write_split

from vostutorial import resources
from vostutorial.checkpoint import export_model, save_atomic
from vostutorial.cli import main
from vostutorial.data import YTVOSSplit, generate, write_image, write_mask
from vostutorial.data.check import check_split
from vostutorial.data.synthetic import ensure_default
from vostutorial.evaluate import evaluate_davis, evaluate_ytvos, format_ytvos
from vostutorial.models import build_model
from vostutorial.predictions import baseline_copy_first, write_video_masks


def _refused(capsys, *args) -> str:
    """Run the CLI in-process; it must exit 2 with exactly one line on stderr."""
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err.splitlines()
    lines = [ln for ln in err if ln.strip() and "%|" not in ln]  # progress bars aside
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture
def user_folder(tmp_path) -> Path:
    """A folder of the user's own, shaped like a dataset, that the kit must never touch."""
    root = tmp_path / "mine"
    for sub in ("train/JPEGImages/v", "valid", "predictions/model"):
        (root / sub).mkdir(parents=True)
    (root / "train/JPEGImages/v/00000.jpg").write_bytes(b"my photo")
    (root / "valid/notes.txt").write_text("my notes")
    (root / "predictions/model/keep.txt").write_text("mine")
    (tmp_path / "predictions").mkdir()
    (tmp_path / "predictions/model").mkdir()
    (tmp_path / "predictions/model/sibling.txt").write_text("beside the data")
    return root


# --- never delete or overwrite what the kit did not write -------------------------------------
def test_demo_refuses_a_folder_it_did_not_generate(user_folder, capsys):
    before = _snapshot(user_folder.parent)
    err = _refused(capsys, "demo", "--data", user_folder, "--online-steps", "0")
    assert str(user_folder) in err and "synth_config.json" in err
    assert _snapshot(user_folder.parent) == before


def test_vostutorial_data_variable_is_guarded_too(user_folder, monkeypatch):
    monkeypatch.setenv("VOSTUTORIAL_DATA", str(user_folder))
    before = _snapshot(user_folder.parent)
    with pytest.raises(ValueError, match="not a synthetic dataset written by vostutorial"):
        ensure_default()
    assert _snapshot(user_folder.parent) == before


def test_synth_force_only_regenerates_its_own_folders(user_folder, tmp_path, capsys):
    before = _snapshot(user_folder)
    args = ["synth", "--train-videos", "1", "--valid-videos", "1", "--size", "32x48",
            "--frames", "3", "--workers", "1", "--force"]  # fmt: skip
    err = _refused(capsys, *args, "--out", user_folder)
    assert "refusing to replace" in err
    assert _snapshot(user_folder) == before
    own = tmp_path / "own"
    assert main([*args, "--out", str(own)]) == 0  # new folder: written
    (own / "train" / "extra.txt").write_text("x")
    assert main([*args, "--out", str(own)]) == 0  # its own: regenerated with --force
    assert not (own / "train" / "extra.txt").exists()


def test_train_refuses_an_existing_run_and_checks_everything_first(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (run / "last.pt").write_bytes(b"an older run's weights")
    before = _snapshot(run)
    err = _refused(capsys, "train", "--data", synth_root, "--out", run, *SMALL_TRAIN)
    assert "holds a run" in err and "--overwrite" in err
    # a typo in --data with --overwrite: refused before RUN is touched
    err = _refused(capsys, "train", "--data", tmp_path / "typo", "--out", run, "--overwrite")
    assert "typo" in err
    assert _snapshot(run) == before
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path, *SMALL_TRAIN)
    assert "not a run folder" in err  # --out . and the like


def test_predict_marker_refuses_mixed_producers(synth_root, weights, tmp_path, capsys):
    out = tmp_path / "pred"
    baseline_copy_first(synth_root, "valid", out, progress=False)
    before = _snapshot(out)
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", out, "--quiet")  # fmt: skip
    assert "other settings" in err and "--overwrite" in err
    assert _snapshot(out) == before
    assert main(["predict", "--data", str(synth_root), "--checkpoint", str(weights),
                 "--out", str(out), "--overwrite", "--quiet"]) == 0  # fmt: skip
    capsys.readouterr()
    marker = json.loads((out / ".vostutorial-predictions.json").read_text())
    assert marker["method"] == "s2s" and len(marker["checkpoint_sha256"]) == 64
    # the same settings resume; another merge rule is refused
    assert main(["predict", "--data", str(synth_root), "--checkpoint", str(weights),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", out, "--merge", "soft", "--quiet")  # fmt: skip
    assert "'merge'" in err


def test_predict_refuses_a_folder_that_is_not_its_own(synth_root, weights, tmp_path, capsys,
                                                      monkeypatch):  # fmt: skip
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", ".", "--quiet")  # fmt: skip
    assert "not a predictions folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", tmp_path / "file", "--quiet")  # fmt: skip
    assert "is a file" in err


def test_two_runs_on_one_folder_do_not_interleave(synth_root, tmp_path, capsys):
    out = tmp_path / "pred"
    baseline_copy_first(synth_root, "valid", out, progress=False)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(str(sleeper.pid))  # a live run holds the folder
        err = _refused(capsys, "baseline", "copy-first", "--data", synth_root, "--out", out)
        assert f"pid {sleeper.pid}" in err
    finally:
        sleeper.kill()
        sleeper.wait()
    # the lock of a run that died is taken over
    assert main(["baseline", "copy-first", "--data", str(synth_root), "--out", str(out)]) == 0
    assert not (out / ".lock").exists()


def test_zip_is_named_after_the_whole_folder_name(synth_root, weights, tmp_path, capsys):
    for name in ("pred.v1", "pred.v2"):
        assert main(["predict", "--data", str(synth_root), "--checkpoint", str(weights),
                     "--out", str(tmp_path / name), "--zip", "--quiet"]) == 0  # fmt: skip
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == ["pred.v1.zip", "pred.v2.zip"]
    assert not (tmp_path / "pred.zip").exists()
    assert zipfile.ZipFile(tmp_path / "pred.v1.zip").namelist()


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"step": 1}, path)
    real_save = torch.save

    def disk_full(obj, f):
        real_save(obj, f)  # some bytes reach the temporary file, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(f.name))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError):
        save_atomic({"step": 2, "big": torch.zeros(1000)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1  # the old file is intact


def test_full_disk_is_one_line(synth_root, tmp_path, capsys, monkeypatch):
    import vostutorial.data.palette as palette

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "cf" / "x.png"))

    monkeypatch.setattr(palette.Image.Image, "save", full)
    err = _refused(capsys, "baseline", "copy-first", "--data", synth_root, "--out", tmp_path / "cf")
    assert "No space left on device" in err and "x.png" in err


# --- untrusted input --------------------------------------------------------------------------
class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['EXPLOIT_FLAG'])}",))


def test_checkpoints_never_run_code(tmp_path, capsys, monkeypatch, synth_root):
    flag = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_FLAG", str(flag))
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_config": {}, "x": _Exploit()}, path)
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", path,
                   "--out", tmp_path / "p", "--quiet")  # fmt: skip
    assert "refused" in err and "evil.pt" in err
    assert not flag.exists()


def test_training_checkpoints_load_safely(synth_root, tmp_path):
    r = run_kit(
        "train", "--data", synth_root, "--out", tmp_path / "run", "--steps", "1", *SMALL_TRAIN
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = torch.load(tmp_path / "run/last.pt", weights_only=True)  # would raise on numpy
    assert ckpt["step"] == 1 and isinstance(ckpt["rng"]["numpy"][1], torch.Tensor)


@pytest.mark.parametrize("name", ["../../escaped", "/abs/olute", "a/b", ".."])
def test_unsafe_video_names_are_refused_everywhere(tmp_path, capsys, name, weights):
    root = write_split(tmp_path / "d", "valid", {"v": square_video()}, heldout=True)
    meta = json.loads((root / "valid/meta.json").read_text())
    meta["videos"][name] = meta["videos"].pop("v")
    (root / "valid/meta.json").write_text(json.dumps(meta))
    assert main(["check-data", str(root), "--split", "valid", "--quiet"]) == 1
    assert repr(name) in capsys.readouterr().out
    err = _refused(capsys, "predict", "--data", root, "--checkpoint", weights,
                   "--out", tmp_path / "p" / "q", "--quiet")  # fmt: skip
    assert "not a plain file name" in err
    assert not list((tmp_path / "p").rglob("*.png")) and not (tmp_path / "escaped").exists()
    with pytest.raises(ValueError, match="not a plain file name"):
        write_video_masks(tmp_path / "p", name, ["00000"], np.zeros((1, 4, 4), np.uint8))


# --- no silently wrong results ----------------------------------------------------------------
def test_frames_are_ordered_by_number(tmp_path):
    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    folder = root / "train/JPEGImages/v"
    for old, new in (("00000", "0"), ("00005", "5"), ("00010", "10")):
        (folder / f"{old}.jpg").rename(folder / f"{new}.jpg")
        (root / "train/Annotations/v" / f"{old}.png").rename(
            root / "train/Annotations/v" / f"{new}.png"
        )
    meta = json.loads((root / "train/meta.json").read_text())
    meta["videos"]["v"]["objects"]["1"]["frames"] = ["0", "10", "5"]
    (root / "train/meta.json").write_text(json.dumps(meta))
    ds = YTVOSSplit(root, "train")
    assert ds.videos["v"].frames == ["0", "5", "10"]
    assert ds.videos["v"].objects[1].frames == ["0", "5", "10"]
    cols = [np.flatnonzero(m.any(0))[0] for m in ds.masks("v")]
    assert cols == sorted(cols) and len(set(cols)) == 3  # the square moves right, in order
    (folder / "10.jpg").rename(folder / "x10.jpg")  # names that do not sort: refused
    with pytest.raises(ValueError, match="order is ambiguous"):
        YTVOSSplit(root, "train")


def test_upper_case_jpg_is_named(tmp_path, capsys):
    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    for p in (root / "train/JPEGImages/v").glob("*.jpg"):
        p.rename(p.with_suffix(".JPG"))
    assert main(["check-data", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert ".JPG" in out and "<frame>.jpg" in out


def test_frames_as_a_string_is_rejected_by_every_command(tmp_path, capsys):
    root = write_split(tmp_path, "valid", {"v": square_video(t=3)}, heldout=True)
    meta = json.loads((root / "valid/meta.json").read_text())
    meta["videos"]["v"]["objects"]["1"]["frames"] = "00000"
    (root / "valid/meta.json").write_text(json.dumps(meta))
    err = _refused(capsys, "baseline", "copy-first", "--data", root, "--out", tmp_path / "p")
    assert "meta.json" in err and "not a list" in err
    with pytest.raises(ValueError, match="not a list"):
        evaluate_ytvos(tmp_path, root, "valid", workers=1, progress=False)


def _two_objects(tmp_path) -> Path:
    frames, ids = square_video(t=4)
    ids[:, 22:28, 30:40] = 2
    return write_split(tmp_path / "d", "valid", {"v": (frames, ids)}, heldout=True)


def test_evaluate_lists_videos_not_in_the_split(tmp_path):
    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    (pred / "other-video").mkdir()
    report = evaluate_ytvos(pred, root, "valid", workers=1, progress=False)
    assert report["protocol"]["videos_not_in_split"] == ["other-video"]
    assert "other-video" in format_ytvos(report)


def test_grayscale_prediction_of_a_multi_object_video_is_an_error(tmp_path):
    from PIL import Image

    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    gt = YTVOSSplit(root, "valid").masks("v")
    Image.fromarray(np.where(gt[1] > 0, 255, 0).astype(np.uint8)).save(pred / "v/00005.png")
    with pytest.raises(ValueError, match=r"00005.png: mask is a 'L'-mode image"):
        evaluate_ytvos(pred, root, "valid", workers=1, progress=False)


def test_a_wrong_size_ground_truth_is_blamed_on_the_ground_truth(tmp_path):
    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    write_mask(root / "valid/GroundTruth/v/00005.png", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"GroundTruth/v/00005.png: annotation is 10x10"):
        evaluate_ytvos(pred, root, "valid", workers=1, progress=False)


def test_davis_ground_truth_missing_mid_sequence_is_an_error(tmp_path):
    frames, ids = square_video(t=5)
    for folder in ("davis/JPEGImages/480p/s", "davis/Annotations/480p/s", "pred/s"):
        (tmp_path / folder).mkdir(parents=True)
    for t in range(5):
        write_image(tmp_path / f"davis/JPEGImages/480p/s/{t:05d}.jpg", frames[t])
        write_mask(tmp_path / f"pred/s/{t:05d}.png", ids[t])
        if t != 2:  # frame 2's ground truth is missing
            write_mask(tmp_path / f"davis/Annotations/480p/s/{t:05d}.png", ids[t])
    with pytest.raises(ValueError, match=r"00002.png: ground truth missing for frame 00002"):
        evaluate_davis(tmp_path / "pred", tmp_path / "davis", workers=1, progress=False)


def test_truncated_jpeg_is_not_called_a_missing_frame(synth_copy):
    ds = YTVOSSplit(synth_copy, "train")
    video = next(iter(ds.videos))
    path = ds.frame_path(video, ds.videos[video].frames[1])
    path.write_bytes(path.read_bytes()[:200])
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(str(path) in p and "cannot decode" in p for p in problems)
    assert not any("mask has no frame" in p for p in problems)


def test_report_says_which_groups_overall_averages(tmp_path):
    root = _two_objects(tmp_path)  # no train split: every category counts as seen
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    text = format_ytvos(evaluate_ytvos(pred, root, "valid", workers=1, progress=False))
    assert "mean of J_seen, F_seen only: no unseen objects" in text


# --- no hangs, no tracebacks ------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, flag",
    [
        (["synth", "--out", "X", "--frames", "0"], "--frames"),
        (["synth", "--out", "X", "--frames", "1"], "--frames"),
        (["synth", "--out", "X", "--size", "0x0"], "--size"),
        (["synth", "--out", "X", "--train-videos", "-1"], "--train-videos"),
        (["predict", "--data", "D", "--checkpoint", "C", "--out", "X", "--online-steps", "-1"],
         "--online-steps"),
        (["train", "--out", "X", "--steps", "0"], "--steps"),
        (["demo", "--online-steps", "-1"], "--online-steps"),
        (["evaluate", "--pred", "P", "--data", "D", "--workers", "0"], "--workers"),
    ],
)  # fmt: skip
def test_numeric_flags_are_checked_at_parse_time(args, flag, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    assert flag in capsys.readouterr().err
    assert not (Path.cwd() / "X").exists()


def test_synth_never_loops_forever(tmp_path):
    from vostutorial.data import SynthConfig

    with pytest.raises(ValueError, match="frames must be at least 2"):
        SynthConfig(frames=1)
    out = generate(tmp_path, SynthConfig(1, 1, 0, (16, 16), 2), workers=1, progress=False)
    assert len(YTVOSSplit(out, "valid")) == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_cuda_without_a_gpu(synth_root, weights, tmp_path, capsys):
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", tmp_path / "p", "--device", "cuda")  # fmt: skip
    assert "--device cuda" in err
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path / "r",
                   "--device", "cuda")  # fmt: skip
    assert "--device cuda" in err and not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    "setting, key",
    [("lr=\"fast\"", "lr"), ("batch_size=0", "batch_size"), ("size=[64]", "size"),
     ("workers=1.5", "workers"), ("loss=\"l2\"", "loss"), ("amp=3", "amp"),
     ("bf16=\"yes\"", "bf16"), ("nokey", "nokey")],
)  # fmt: skip
def test_set_values_are_checked_and_name_the_key(setting, key, synth_root, tmp_path, capsys):
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path / "r",
                   "--set", setting)  # fmt: skip
    assert key in err
    assert not (tmp_path / "r").exists()


def test_loader_worker_errors_name_the_file(synth_copy, tmp_path):
    ds = YTVOSSplit(synth_copy, "train")
    bad = [ds.frame_path(v, f) for v, i in ds.videos.items() for f in i.frames]
    for path in bad:  # every frame: whichever clip comes first fails
        path.write_bytes(b"not a jpeg")
    r = run_kit("train", "--data", synth_copy, "--out", tmp_path / "r", "--steps", "2",
             *SMALL_TRAIN, "--set", "workers=2", "--set", "val_videos=0")  # fmt: skip
    assert r.returncode == 2
    err = r.stderr.strip()
    assert "\n" not in err and "cannot decode image" in err and ".jpg" in err, err


def test_training_fails_fast_on_a_bad_validation_file(synth_copy, tmp_path, capsys):
    val = YTVOSSplit(synth_copy, "valid")
    video = next(iter(val.videos))
    frame = val.frame_path(video, val.videos[video].frames[-1])
    frame.write_bytes(frame.read_bytes()[:100])
    err = _refused(capsys, "train", "--data", synth_copy, "--out", tmp_path / "r", *SMALL_TRAIN)
    assert str(frame) in err
    assert not (tmp_path / "r").exists()


def test_checkpoint_problems_are_one_line(synth_root, tmp_path, capsys):
    model = build_model("tiny", input_size=(64, 96))
    path = tmp_path / "mixed.pt"
    export_model(model, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["model_config"]["hidden"] = 32  # the config no longer describes the weights
    torch.save(ckpt, path)
    common = ["predict", "--data", synth_root, "--out", tmp_path / "p", "--quiet"]
    err = _refused(capsys, *common, "--checkpoint", path)
    assert "weights do not fit its model_config" in err
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt").write_bytes(b"x")
    err = _refused(capsys, *common, "--checkpoint", run)
    assert "is a folder" in err and "last.pt" in err


def test_resume_ignores_a_torn_last_log_line(synth_root, tmp_path):
    run = tmp_path / "run"
    r = run_kit("train", "--data", synth_root, "--out", run, "--steps", "2", *SMALL_TRAIN,
             "--set", "ckpt_every=1")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 3, "lo')  # killed while writing step 3's line
    r = run_kit("train", "--data", synth_root, "--out", run, "--steps", "3", "--resume",
             *SMALL_TRAIN, "--set", "ckpt_every=1")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


def test_a_batch_that_cannot_fit_is_refused_with_one_that_does(
    synth_root, tmp_path, capsys, monkeypatch
):
    import vostutorial.preflight as train

    monkeypatch.setattr(train, "available_memory", lambda: 3 * 2**20)  # 3 MiB free
    monkeypatch.setattr(train, "peak_memory", lambda fn, dev=None: (fn(), 2**20)[1])  # 1 MiB/clip
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path / "r",
                   *SMALL_TRAIN, "--set", "batch_size=8")  # fmt: skip
    assert "batch_size 8" in err and "--set batch_size=2" in err
    assert not (tmp_path / "r").exists()


def test_thread_count_follows_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert resources.usable_cpus() == 1
    before = torch.get_num_threads()
    try:
        assert resources.set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert resources.set_threads() == 2
        assert resources.set_threads(3) == 3 and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_peak_memory_sees_a_large_allocation():
    need = resources.peak_memory(lambda: torch.ones(64, 2**20).sum())  # 256 MiB of float32
    assert 200 * 2**20 < need < 600 * 2**20


def test_demo_writes_only_inside_the_folders_it_was_given(synth_root, weights, tmp_path,
                                                          monkeypatch):  # fmt: skip
    import vostutorial.demo as demo

    data = tmp_path / "data"
    shutil.copytree(synth_root, data)
    monkeypatch.setattr(demo, "shipped_checkpoint", lambda progress=True: weights)
    monkeypatch.setattr(demo, "ensure_default", lambda d, *a, **k: Path(d))
    demo.run_demo(data, tmp_path / "report", progress=False, online_steps=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "report"]
    assert (data / "predictions" / "model" / ".vostutorial-predictions.json").exists()


def test_the_command_line_lets_torch_threads_sleep_while_waiting(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    main(["check-data", str(tmp_path)])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    main(["check-data", str(tmp_path)])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_read_only_out_is_one_line(synth_root, weights, tmp_path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == out else real_access(p, m))
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", out, "--quiet")  # fmt: skip
    assert "not writable" in err and str(out) in err
    err = _refused(capsys, "train", "--data", synth_root, "--out", out, *SMALL_TRAIN)
    assert "not writable" in err


def test_loader_workers_are_capped_at_the_usable_cpus(synth_root, tmp_path):
    r = run_kit("train", "--data", synth_root, "--out", tmp_path / "r", "--steps", "1",
             *SMALL_TRAIN, "--set", "workers=64", "--set", "val_videos=0")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    n = resources.usable_cpus()
    assert f"loader workers: {n} (64 configured, {n} CPUs usable)" in r.stdout
