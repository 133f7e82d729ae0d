"""Faulty inputs a careful user meets, by the command they run: the kit never deletes what it
did not write, never writes outside the folder named, never unpickles code, never reports a
score that the data makes wrong, and answers with one line naming the file; an interrupted
command (Ctrl-C, a full disk) leaves nothing half-written and the same command then finishes.

Refusals run in-process through `vostutorial.cli.main` (they stop before any heavy work);
cases that must train, predict or be interrupted run the real command in a subprocess.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import SMALL_TRAIN, run_kit, square_video, write_split

from vostutorial import resources
from vostutorial.checkpoint import export_model, load_checkpoint, save_atomic
from vostutorial.cli import main
from vostutorial.data import YTVOSSplit, generate, write_image, write_mask
from vostutorial.data.check import check_split
from vostutorial.data.synthetic import ensure_default
from vostutorial.evaluate import evaluate_davis, evaluate_ytvos, format_davis, format_ytvos
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


def _two_objects(tmp_path) -> Path:
    frames, ids = square_video(t=4)
    ids[:, 22:28, 30:40] = 2
    return write_split(tmp_path / "d", "valid", {"v": (frames, ids)}, heldout=True)


def _davis(root: Path, seqs: dict) -> Path:
    """A DAVIS folder of sequences ``{name: (frames, ids)}``, palette masks."""
    for seq, (frames, ids) in seqs.items():
        for sub in ("JPEGImages", "Annotations"):
            (root / sub / "480p" / seq).mkdir(parents=True)
        for t in range(len(frames)):
            write_image(root / f"JPEGImages/480p/{seq}/{t:05d}.jpg", frames[t])
            write_mask(root / f"Annotations/480p/{seq}/{t:05d}.png", ids[t])
    return root


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {Path(os.environ['EXPLOIT_FLAG'])}",))


# --- every command: one line, nothing half-written, names checked -----------------------------
def _interrupt(cmd: list, ready, timeout: float = 120) -> subprocess.CompletedProcess:
    """Start ``vostutorial CMD`` in a session of its own, wait for ``ready()``, then press
    Ctrl-C as a terminal does (SIGINT to every process of the group, workers included)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "vostutorial", *map(str, cmd)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=os.environ | {"OMP_NUM_THREADS": "1"},
        # as in a terminal: a suite started in the background (`cmd &` in a script) has SIGINT
        # ignored, its children inherit that, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + timeout
    while not ready() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.replace("\r", "\n").splitlines() if ln.strip() and "%|" not in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_ctrl_c_is_one_line_and_the_same_command_then_finishes(tmp_path):
    out = tmp_path / "synth"
    args = ["synth", "--out", out, "--train-videos", "40", "--valid-videos", "2", "--size",
            "96x160", "--frames", "10", "--workers", "2"]  # fmt: skip
    r = _interrupt(args, lambda: len(list(out.glob(".partial-train/JPEGImages/*"))) >= 2)
    assert r.returncode == 130, r.stderr[-2000:]
    assert _one_line(r.stderr).startswith("interrupted: ")
    assert not list(out.glob(".partial-*"))  # nothing half-written kept
    assert run_kit(*args, check=True).returncode == 0  # the same command, no --force
    assert len(YTVOSSplit(out, "train")) == 40


def test_a_full_disk_leaves_nothing_half_written(tmp_path, capsys, monkeypatch):
    import vostutorial.data.synthetic as synthetic

    written = []

    def fills_up(path, image, quality=90):
        if len(written) == 5:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(path)

    monkeypatch.setattr(synthetic, "write_image", fills_up)
    args = ["synth", "--out", tmp_path / "s", "--train-videos", "3", "--valid-videos", "1",
            "--size", "32x48", "--frames", "3", "--workers", "1"]  # fmt: skip
    err = _refused(capsys, *args)
    assert "No space left on device" in err and ".jpg" in err
    assert not list((tmp_path / "s").glob(".partial-*"))
    monkeypatch.undo()
    assert main([str(a) for a in args]) == 0  # space again: the same command finishes


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "--pred", "{tmp}", "--data", "{root}", "--split", "../escape"],
        ["baseline", "copy-first", "--data", "{root}", "--split", "/abs/olute", "--out", "{tmp}/p"],
        ["convert", "davis", "--davis", "{tmp}", "--out", "{tmp}/o", "--split", "../../escape"],
        ["convert", "heldout", "--root", "{root}", "--out", "{tmp}/o", "--heldout-name", "a/b"],
        ["evaluate", "--davis", "--pred", "{tmp}", "--data", "{tmp}", "--resolution", ".."],
    ],
)
def test_every_name_that_becomes_a_path_is_checked(args, synth_root, tmp_path, capsys):
    args = [a.format(tmp=tmp_path, root=synth_root) for a in args]
    before = sorted(tmp_path.parent.rglob("*"))
    err = _refused(capsys, *args)
    assert "is not a plain file name" in err
    assert sorted(tmp_path.parent.rglob("*")) == before  # nothing written anywhere


def test_out_of_memory_is_one_line(tmp_path, capsys, monkeypatch):
    import vostutorial.data.check as check

    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    for exc in (MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory")):

        def runs_out(*a, exc=exc, **k):
            raise exc

        monkeypatch.setattr(check, "check_split", runs_out)
        err = _refused(capsys, "check-data", root)
        assert "out of memory in `vostutorial check-data`" in err and "run it again" in err


def test_random_bytes_are_not_a_checkpoint(synth_root, tmp_path, capsys):
    path = tmp_path / "noise.pt"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", path,
                   "--out", tmp_path / "p", "--quiet")  # fmt: skip
    assert "noise.pt: cannot read checkpoint" in err and "not the zip archive" in err


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


def test_the_command_line_lets_torch_threads_sleep_while_waiting(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    main(["check-data", str(tmp_path)])
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the user's choice is kept
    main(["check-data", str(tmp_path)])
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_thread_count_follows_the_cpus_this_process_may_use(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert resources.usable_cpus() == 1
    before = torch.get_num_threads()
    try:
        assert resources.set_threads() == 1 and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert resources.set_threads() == 2
        assert resources.set_threads(3) == 1 and torch.get_num_threads() == 1  # capped
    finally:
        torch.set_num_threads(before)


def test_peak_memory_sees_a_large_allocation():
    need = resources.peak_memory(lambda: torch.ones(64, 2**20).sum())  # 256 MiB of float32
    assert 200 * 2**20 < need < 600 * 2**20


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


def test_checkpoints_never_run_code(tmp_path, capsys, monkeypatch, synth_root):
    flag = tmp_path / "pwned"
    monkeypatch.setenv("EXPLOIT_FLAG", str(flag))
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_config": {}, "x": _Exploit()}, path)
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", path,
                   "--out", tmp_path / "p", "--quiet")  # fmt: skip
    assert "refused" in err and "evil.pt" in err
    assert not flag.exists()


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_cuda_without_a_gpu(synth_root, weights, tmp_path, capsys):
    err = _refused(capsys, "predict", "--data", synth_root, "--checkpoint", weights,
                   "--out", tmp_path / "p", "--device", "cuda")  # fmt: skip
    assert "--device cuda" in err
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path / "r",
                   "--device", "cuda")  # fmt: skip
    assert "--device cuda" in err and not (tmp_path / "r").exists()


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


def test_frames_as_a_string_is_rejected_by_every_command(tmp_path, capsys):
    root = write_split(tmp_path, "valid", {"v": square_video(t=3)}, heldout=True)
    meta = json.loads((root / "valid/meta.json").read_text())
    meta["videos"]["v"]["objects"]["1"]["frames"] = "00000"
    (root / "valid/meta.json").write_text(json.dumps(meta))
    err = _refused(capsys, "baseline", "copy-first", "--data", root, "--out", tmp_path / "p")
    assert "meta.json" in err and "not a list" in err
    with pytest.raises(ValueError, match="not a list"):
        evaluate_ytvos(tmp_path, root, "valid", workers=1, progress=False)


# --- synth (and the dataset demo generates) ---------------------------------------------------
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
    (own / "train" / "extra.txt").write_text("x")  # a file of the user's inside it
    err = _refused(capsys, *args, "--out", own)
    assert "train/extra.txt: not written by vostutorial" in err
    assert (own / "train" / "extra.txt").read_text() == "x"
    (own / "train" / "extra.txt").unlink()
    assert main([*args, "--out", str(own)]) == 0  # its own: regenerated with --force


def test_synth_never_loops_forever(tmp_path):
    from vostutorial.data import SynthConfig

    with pytest.raises(ValueError, match="frames must be at least 2"):
        SynthConfig(frames=1)
    out = generate(tmp_path, SynthConfig(1, 1, 0, (16, 16), 2), workers=1, progress=False)
    assert len(YTVOSSplit(out, "valid")) == 1


# --- check-data -------------------------------------------------------------------------------
def test_upper_case_jpg_is_named(tmp_path, capsys):
    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    for p in (root / "train/JPEGImages/v").glob("*.jpg"):
        p.rename(p.with_suffix(".JPG"))
    assert main(["check-data", str(root), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert ".JPG" in out and "<frame>.jpg" in out


def test_truncated_jpeg_is_not_called_a_missing_frame(synth_copy):
    ds = YTVOSSplit(synth_copy, "train")
    video = next(iter(ds.videos))
    path = ds.frame_path(video, ds.videos[video].frames[1])
    path.write_bytes(path.read_bytes()[:200])
    problems, _ = check_split(synth_copy, "train", progress=False)
    assert any(str(path) in p and "cannot decode" in p for p in problems)
    assert not any("mask has no frame" in p for p in problems)


def test_check_data_finds_ground_truth_that_meta_json_promises(tmp_path, capsys):
    root = _two_objects(tmp_path)
    (root / "valid/GroundTruth/v/00010.png").unlink()
    problems, _ = check_split(root, "valid", progress=False)
    assert any("00010.png: meta.json lists objects on frame 00010" in p for p in problems)
    shutil.rmtree(root / "valid/GroundTruth/v")
    problems, _ = check_split(root, "valid", progress=False)
    assert any("GroundTruth/v: missing" in p for p in problems)


def test_one_object_id_listed_twice_is_named(tmp_path, capsys):
    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    text = (root / "train/meta.json").read_text()
    meta = json.loads(text)
    meta["videos"]["v"]["objects"]["01"] = meta["videos"]["v"]["objects"]["1"]
    (root / "train/meta.json").write_text(json.dumps(meta))
    assert main(["check-data", str(root), "--quiet"]) == 1
    assert "lists object id 1 twice" in capsys.readouterr().out


def test_meta_json_that_is_not_utf8_is_named(tmp_path, capsys):
    root = write_split(tmp_path, "train", {"v": square_video(t=3)})
    (root / "train/meta.json").write_bytes(b'{"videos": {"caf\xe9": {}}}')
    assert main(["check-data", str(root), "--quiet"]) == 1
    assert "meta.json: not UTF-8 text" in capsys.readouterr().out


# --- convert ----------------------------------------------------------------------------------
def test_convert_builds_a_split_whole_or_not_at_all(tmp_path, capsys):
    davis = _davis(tmp_path / "davis", {"a": square_video(t=4), "b": square_video(t=4)})
    bad = davis / "Annotations/480p/b/00002.png"
    good = bad.read_bytes()
    bad.write_bytes(good[:60])  # the second sequence fails half-way
    args = ["convert", "davis", "--davis", davis, "--out", tmp_path / "out", "--heldout"]
    err = _refused(capsys, *args)
    assert "00002.png" in err and "cannot decode" in err
    assert not (tmp_path / "out" / "train").exists() and not list((tmp_path / "out").glob(".*"))
    bad.write_bytes(good)
    assert main([str(a) for a in args]) == 0  # fixed: the same command finishes
    assert sorted(YTVOSSplit(tmp_path / "out", "train").videos) == ["a", "b"]


# --- train ------------------------------------------------------------------------------------
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


def test_training_checkpoints_load_safely(synth_root, tmp_path):
    r = run_kit(
        "train", "--data", synth_root, "--out", tmp_path / "run", "--steps", "1", *SMALL_TRAIN
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = torch.load(tmp_path / "run/last.pt", weights_only=True)  # would raise on numpy
    assert ckpt["step"] == 1 and isinstance(ckpt["rng"]["numpy"][1], torch.Tensor)


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


def test_loader_workers_are_capped_at_the_usable_cpus(synth_root, tmp_path):
    r = run_kit("train", "--data", synth_root, "--out", tmp_path / "r", "--steps", "1",
             *SMALL_TRAIN, "--set", "workers=64", "--set", "val_videos=0")  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    n = resources.usable_cpus()
    assert f"loader workers: {n} (64 configured, {n} CPUs usable)" in r.stdout


def test_export_never_replaces_a_users_file(synth_root, tmp_path, capsys):
    mine = tmp_path / "weights.pt"
    mine.write_text("my notes, not weights")
    err = _refused(capsys, "train", "--data", synth_root, "--out", tmp_path / "r",
                   *SMALL_TRAIN, "--export", mine)  # fmt: skip
    assert "weights.pt: exists and is not a vostutorial export" in err
    assert mine.read_text() == "my notes, not weights" and not (tmp_path / "r").exists()


def test_a_run_killed_before_its_first_checkpoint_says_one_thing(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    for extra in (["--resume"], []):
        err = _refused(capsys, "train", "--data", synth_root, "--out", run, *SMALL_TRAIN, *extra)
        assert "stopped before its first checkpoint" in err and "--overwrite" in err


def test_ctrl_c_in_train_keeps_the_last_checkpoint_and_resume_goes_on(synth_root, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--data", synth_root, "--out", run, *SMALL_TRAIN, "--steps", "400",
            "--set", "ckpt_every=1", "--set", "val_every=1000"]  # fmt: skip
    log = run / "log.jsonl"
    r = _interrupt(args, lambda: log.exists() and len(log.read_text().splitlines()) >= 2)
    assert r.returncode == 130
    assert "--resume" in _one_line(r.stderr)
    done = load_checkpoint(run / "last.pt")["step"]
    r = run_kit(*args[:-6], "--steps", str(done + 1), "--set", "ckpt_every=1", "--set",
                "val_every=1000", "--resume", check=True)  # fmt: skip
    assert load_checkpoint(run / "last.pt")["step"] == done + 1


def test_resume_refuses_a_run_on_other_data(synth_copy, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--data", synth_copy, "--out", run, *SMALL_TRAIN, "--set", "val_videos=0"]
    run_kit(*args, "--steps", "1", check=True)
    meta = synth_copy / "train/meta.json"
    meta.write_text(meta.read_text().replace('"category": "', '"category": "renamed-', 1))
    err = _refused(capsys, *args, "--steps", "2", "--resume")
    assert "was trained on other data" in err and "last.pt" in err


# --- predict and baseline ---------------------------------------------------------------------
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


def test_zip_never_replaces_an_archive_it_did_not_write(synth_root, weights, tmp_path, capsys):
    mine = tmp_path / "pred.zip"
    mine.write_bytes(b"my archive")
    args = ["predict", "--data", synth_root, "--checkpoint", weights, "--out", tmp_path / "pred",
            "--zip", "--quiet"]  # fmt: skip
    err = _refused(capsys, *args)
    assert "pred.zip: exists and was not written by vostutorial" in err
    assert mine.read_bytes() == b"my archive" and not (tmp_path / "pred").exists()
    mine.unlink()
    assert main([str(a) for a in args]) == 0
    assert main([str(a) for a in args]) == 0  # its own archive: replaced
    assert zipfile.ZipFile(mine).namelist()


def test_a_frame_of_another_size_is_named(tmp_path, capsys):
    root = write_split(tmp_path, "valid", {"v": square_video(t=3)}, heldout=True)
    write_image(root / "valid/JPEGImages/v/00005.jpg", np.zeros((20, 30, 3), np.uint8))
    err = _refused(capsys, "baseline", "copy-first", "--data", root, "--out", tmp_path / "p")
    assert "00005.jpg: frame is 30x20 (WxH)" in err and "00000.jpg is 48x32" in err


# --- evaluate ---------------------------------------------------------------------------------
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


def test_report_says_which_groups_overall_averages(tmp_path):
    root = _two_objects(tmp_path)  # no train split: every category counts as seen
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    text = format_ytvos(evaluate_ytvos(pred, root, "valid", workers=1, progress=False))
    assert "mean of J_seen, F_seen only: no unseen objects" in text


def test_ground_truth_that_would_give_a_wrong_score_is_an_error(tmp_path):
    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    report = evaluate_ytvos(pred, root, "valid", workers=1, progress=False)
    assert report["protocol"]["objects_scored"] == 2
    assert report["protocol"]["object_frames_scored"] == 2 * 3  # frames 1..3 of each
    assert "scored: 2 objects on 6 object-frames" in format_ytvos(report)
    gt = root / "valid/GroundTruth/v"
    (gt / "00010.png").rename(tmp_path / "kept.png")  # one frame's ground truth missing
    with pytest.raises(ValueError, match="00010.png: ground truth missing for frame 00010"):
        evaluate_ytvos(pred, root, "valid", workers=1, progress=False)
    (tmp_path / "kept.png").rename(gt / "00010.png")
    meta = json.loads((root / "valid/meta.json").read_text())
    meta["videos"]["v"]["objects"]["3"] = {"category": "thing", "frames": ["00000"]}
    (root / "valid/meta.json").write_text(json.dumps(meta))  # listed, in no mask: J = F = 1
    with pytest.raises(ValueError, match="object 3 of video 'v' is listed in meta.json but"):
        evaluate_ytvos(pred, root, "valid", workers=1, progress=False)
    del meta["videos"]["v"]["objects"]["3"]
    (root / "valid/meta.json").write_text(json.dumps(meta))
    shutil.rmtree(gt)  # the whole video's ground truth
    with pytest.raises(ValueError, match="GroundTruth/v: missing: no ground truth for video"):
        evaluate_ytvos(pred, root, "valid", workers=1, progress=False)


def test_davis_masks_of_mixed_formats_and_short_sequences_are_errors(tmp_path):
    from PIL import Image

    frames, ids = square_video(t=5)
    davis = _davis(tmp_path / "davis", {"s": (frames, ids)})
    pred = tmp_path / "pred"
    shutil.copytree(davis / "Annotations/480p", pred)
    report = evaluate_davis(pred, davis, workers=1, progress=False)
    assert (report["protocol"]["objects_scored"], report["protocol"]["object_frames_scored"]) == (
        1,
        3,
    )
    assert "scored: 1 objects on 3 object-frames" in format_davis(report)
    grey = np.where(ids[2] > 0, 255, 0).astype(np.uint8)  # a DAVIS 2016 mask in a 2017 sequence
    Image.fromarray(grey).save(davis / "Annotations/480p/s/00002.png")
    with pytest.raises(ValueError, match="00002.png: a grayscale 0/255 mask in a sequence whose"):
        evaluate_davis(pred, davis, workers=1, progress=False)
    short = _davis(tmp_path / "short", {"s": (frames[:2], ids[:2])})
    with pytest.raises(ValueError, match="has 2 annotated frame.*needs at least 3"):
        evaluate_davis(pred, short, workers=1, progress=False)


def test_evaluate_json_never_replaces_another_file(tmp_path, capsys):
    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    mine = tmp_path / "mine.json"
    mine.write_text('{"my": "numbers"}')
    err = _refused(capsys, "evaluate", "--pred", pred, "--data", root, "--json", mine, "--quiet")
    assert "mine.json: exists and is not a report" in err
    assert json.loads(mine.read_text()) == {"my": "numbers"}
    report = tmp_path / "r.json"
    for _ in range(2):  # its own report: replaced
        assert main(["evaluate", "--pred", str(pred), "--data", str(root), "--json",
                     str(report), "--quiet"]) == 0  # fmt: skip


def test_evaluate_says_what_a_wrong_pred_is(tmp_path, capsys):
    root = _two_objects(tmp_path)
    pred = tmp_path / "p"
    baseline_copy_first(root, "valid", pred, progress=False)
    server = tmp_path / "server"
    shutil.copytree(pred, server / "Annotations")
    err = _refused(capsys, "evaluate", "--pred", server, "--data", root)
    assert f"pass --pred {server / 'Annotations'}" in err
    archive = shutil.make_archive(str(tmp_path / "sub"), "zip", server)
    err = _refused(capsys, "evaluate", "--pred", archive, "--data", root)
    assert "sub.zip: is a zip archive" in err
    davis = _davis(tmp_path / "davis", {"s": square_video(t=3)})  # a DAVIS root, no --davis
    err = _refused(capsys, "evaluate", "--pred", pred, "--data", davis)
    assert "looks like a DAVIS folder: evaluate it with --davis" in err


# --- demo -------------------------------------------------------------------------------------
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


def test_demo_out_never_replaces_a_users_file(tmp_path, capsys):
    report = tmp_path / "report"
    report.mkdir()
    (report / "results.md").write_text("my results")
    err = _refused(capsys, "demo", "--data", tmp_path / "data", "--out", report)
    assert "results.md: exists and was not written by vostutorial" in err
    assert (report / "results.md").read_text() == "my results"
    assert not (tmp_path / "data").exists()  # refused before any work
    assert sorted(p.name for p in report.iterdir()) == ["results.md"]  # nothing recorded
