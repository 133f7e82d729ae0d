import json
import subprocess
import sys

from vostutorial.cli import main
from vostutorial.data import YTVOSSplit


def test_synth_cli_writes_the_layout_and_refuses_overwrite(tmp_path, capsys):
    args = [
        "synth",
        "--out",
        str(tmp_path),
        "--train-videos",
        "2",
        "--valid-videos",
        "1",
        "--size",
        "32x56",
        "--frames",
        "4",
        "--workers",
        "1",
    ]
    assert main(args) == 0
    assert len(YTVOSSplit(tmp_path, "train")) == 2
    assert YTVOSSplit(tmp_path, "valid").frame(
        *next((v, i.frames[0]) for v, i in YTVOSSplit(tmp_path, "valid").videos.items())
    ).shape == (32, 56, 3)
    assert main(args) == 2
    assert "already exists; pass --force" in capsys.readouterr().err


def test_demo_generates_and_summarizes_inside_the_folders_named(tmp_path, capsys):
    from vostutorial.data import SynthConfig
    from vostutorial.demo import run_demo
    from vostutorial.paths import RESULTS

    before = sorted(RESULTS.rglob("*")) if RESULTS.exists() else []
    small = SynthConfig(train_videos=6, valid_videos=4, seed=1, size=(72, 128), frames=6)
    report = run_demo(tmp_path / "data", tmp_path / "report", False, 0, small)
    out = capsys.readouterr().out
    assert "train: 6 videos" in out and "valid: 4 videos" in out and "overall" in out
    assert (tmp_path / "data" / "valid" / "GroundTruth").is_dir()
    # the report is the model's scores, written as the table and the JSON
    assert json.loads((tmp_path / "report" / "metrics.json").read_text()) == report
    assert f"{report['overall']:.3f}" in (tmp_path / "report" / "results.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "report"]
    assert (sorted(RESULTS.rglob("*")) if RESULTS.exists() else []) == before


def test_commands_that_run_no_model_do_not_import_torch(synth_root, tmp_path):
    code = (
        "import sys\nfrom vostutorial.cli import main\ntry:\n    main(sys.argv[1:])\n"
        "finally:\n    assert 'torch' not in sys.modules, 'torch imported'"
    )
    commands = [
        ["check-data", str(synth_root), "--quiet"],
        ["synth", "--out", str(tmp_path / "s"), "--train-videos", "1", "--valid-videos", "1",
         "--size", "32x48", "--frames", "3", "--workers", "1"],
        ["baseline", "copy-first", "--data", str(synth_root), "--out", str(tmp_path / "p"),
         "--quiet"],
        ["evaluate", "--pred", str(tmp_path / "p"), "--data", str(synth_root), "--quiet"],
    ]  # fmt: skip
    for args in commands:
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr[-1500:])
    r = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "convert" in r.stdout, r.stderr[-1500:]


def test_a_wheel_carries_the_training_configs(tmp_path):
    import shutil
    import zipfile
    from pathlib import Path

    project = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"  # pip builds in the tree: a copy, so nothing lands in the project
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(project / name, src / name)
    shutil.copytree(project / "vostutorial", src / "vostutorial",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(src)],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("vostutorial-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"vostutorial/configs/tiny.toml", "vostutorial/configs/paper.toml"} <= set(names)
