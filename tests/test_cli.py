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


def test_demo_generates_and_summarizes(tmp_path):
    r = subprocess.run(
        # the online-learning run is left out here (minutes); test_inference covers it
        [
            sys.executable,
            "-m",
            "vostutorial",
            "demo",
            "--data",
            str(tmp_path),
            "--online-steps",
            "0",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "train: 100 videos" in r.stdout and "valid: 24 videos" in r.stdout
    assert "unseen [" in r.stdout
    assert (tmp_path / "valid" / "GroundTruth").is_dir()
