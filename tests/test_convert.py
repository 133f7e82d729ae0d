import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vostutorial.data import YTVOSSplit
from vostutorial.data.check import check_split
from vostutorial.data.convert import carve_heldout

SCRIPTS = Path(__file__).resolve().parents[1] / "data_scripts"


def test_carve_heldout_makes_unseen_and_seen_groups(synth_root, tmp_path):
    info = carve_heldout(
        synth_root, tmp_path, heldout_videos=1, unseen_categories=2, seed=0, progress=False
    )
    train, held = YTVOSSplit(tmp_path, "train"), YTVOSSplit(tmp_path, "heldout")
    assert len(train) + len(held) == 6
    assert info["heldout_seen_videos"] == 1
    unseen = set(info["unseen_categories"])
    assert len(unseen) == 2 and not unseen & set(train.categories())
    assert unseen <= set(held.categories())
    assert held.has_ground_truth and not train.has_ground_truth
    for v, vi in held.videos.items():
        given = {p.stem for p in (tmp_path / "heldout/Annotations" / v).glob("*.png")}
        assert given == set(held.first_appearances(v).values())
        assert len(list((tmp_path / "heldout/GroundTruth" / v).glob("*.png"))) == len(vi.frames)
    for split in ("train", "heldout"):
        assert check_split(tmp_path, split, progress=False)[0] == []


def test_carve_heldout_resizes(synth_root, tmp_path):
    carve_heldout(
        synth_root, tmp_path, heldout_videos=1, unseen_categories=0, height=32, progress=False
    )
    ds = YTVOSSplit(tmp_path, "train")
    v = next(iter(ds.videos))
    f = ds.videos[v].frames[0]
    assert ds.frame(v, f).shape == (32, 56, 3)
    assert set(np.unique(ds.annotation(v, f)).tolist()) <= set(ds.videos[v].objects) | {0}
    assert check_split(tmp_path, "train", progress=False)[0] == []


@pytest.mark.parametrize(
    "script", ["make_synthetic_vos.py", "prepare_youtube_vos.py", "davis_to_ytvos.py"]
)
def test_scripts_have_help(script):
    r = subprocess.run([sys.executable, SCRIPTS / script, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage" in r.stdout


def test_scripts_run_on_small_data(synth_root, tmp_path):
    run = lambda *a: subprocess.run([sys.executable, *map(str, a)], capture_output=True, text=True)  # noqa: E731
    r = run(
        SCRIPTS / "make_synthetic_vos.py",
        "--out",
        tmp_path / "s",
        "--train-videos",
        2,
        "--valid-videos",
        1,
        "--size",
        "32x48",
        "--frames",
        4,
    )
    assert r.returncode == 0, r.stderr
    assert len(YTVOSSplit(tmp_path / "s", "valid")) == 1
    r = run(
        SCRIPTS / "prepare_youtube_vos.py",
        "--root",
        synth_root,
        "--out",
        tmp_path / "p",
        "--heldout-videos",
        1,
        "--unseen-categories",
        1,
    )
    assert r.returncode == 0, r.stderr
    assert "unseen categories" in r.stdout
    assert check_split(tmp_path / "p", "heldout", progress=False)[0] == []
    r = run(
        SCRIPTS / "prepare_youtube_vos.py", "--root", tmp_path / "nope", "--out", tmp_path / "q"
    )
    assert r.returncode != 0 and "split folder not found" in r.stderr
