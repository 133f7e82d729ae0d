from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DAVIS
from PIL import Image

from vostutorial.data import DavisSequences, YTVOSSplit, read_mask
from vostutorial.data.check import check_split
from vostutorial.data.convert import davis_to_ytvos

DAVIS16 = REAL_DAVIS  # $VOSTUTORIAL_REAL_SAMPLES moves it (vostutorial.paths.real_davis)
needs_real = pytest.mark.skipif(not DAVIS16.is_dir(), reason=f"{DAVIS16} absent")


@needs_real
def test_reads_real_davis2016_sequence():
    davis = DavisSequences(DAVIS16)
    assert "car-shadow" in davis.sequences and davis.sequences == sorted(davis.sequences)
    names, frames, masks = davis.read_sequence("car-shadow")
    assert len(names) == 40 and names[0] == "00000"
    assert frames.shape == (40, 480, 854, 3) and masks.shape == (40, 480, 854)
    assert set(np.unique(masks).tolist()) == {0, 1}  # 0/255 grayscale read as ids
    area = masks.reshape(40, -1).mean(1)
    assert np.all(area > 0.01) and np.all(area < 0.5)
    raw = np.asarray(Image.open(DAVIS16 / "Annotations/480p/car-shadow/00000.png"))
    assert np.array_equal(masks[0], raw == 255)


@needs_real
def test_real_davis2016_to_ytvos(tmp_path):
    out = davis_to_ytvos(
        DAVIS16, tmp_path, split="valid", heldout=True, category="car", progress=False
    )
    ds = YTVOSSplit(tmp_path, "valid")
    assert out == tmp_path / "valid"
    assert ds.videos["car-shadow"].objects[1].category == "car"
    assert len(ds.videos["car-shadow"].objects[1].frames) == 40
    assert sorted(p.stem for p in (out / "Annotations" / "car-shadow").glob("*.png")) == ["00000"]
    assert check_split(tmp_path, "valid", progress=False)[0] == []


def _davis2017(root: Path) -> Path:
    """A tiny DAVIS 2017-style folder: palette masks, two objects, void (255) pixels."""
    from vostutorial.data import write_image, write_mask

    for t in range(4):
        (root / "JPEGImages/480p/two").mkdir(parents=True, exist_ok=True)
        (root / "Annotations/480p/two").mkdir(parents=True, exist_ok=True)
        m = np.zeros((24, 40), np.uint8)
        m[2:10, 2 + t : 12 + t] = 1
        if t >= 2:
            m[14:20, 20:30] = 2  # object 2 enters on frame 2
        m[0, :] = 255  # void border
        write_mask(root / f"Annotations/480p/two/{t:05d}.png", m)
        write_image(
            root / f"JPEGImages/480p/two/{t:05d}.jpg", np.full((24, 40, 3), 60 * t, np.uint8)
        )
    return root


def test_davis2017_palette_to_ytvos(tmp_path):
    src = _davis2017(tmp_path / "davis")
    assert 255 in DavisSequences(src).read_mask("two", "00000")
    davis_to_ytvos(src, tmp_path / "yt", split="train", progress=False)
    ds = YTVOSSplit(tmp_path / "yt", "train")
    objs = ds.videos["two"].objects
    assert objs[1].frames == ["00000", "00001", "00002", "00003"]
    assert objs[2].frames == ["00002", "00003"]
    m = read_mask(tmp_path / "yt/train/Annotations/two/00000.png", require_palette=True)
    assert m[0].max() == 0  # void became background
    assert check_split(tmp_path / "yt", "train", progress=False)[0] == []


def test_missing_davis_folder_is_clear(tmp_path):
    with pytest.raises(ValueError, match="JPEGImages/480p"):
        DavisSequences(tmp_path)


@needs_real
def test_shipped_model_keeps_the_car_of_car_shadow():
    """The collapse guard (issue: real video): without online learning, the shipped model
    must keep the given object on the real frames right after the given one, where an old
    model erased it at once (J 0.002 over the sequence)."""
    from vostutorial.checkpoint import load_checkpoint, model_from_checkpoint
    from vostutorial.inference import merge, predict_objects
    from vostutorial.metrics import jaccard
    from vostutorial.shipped import shipped_checkpoint

    sample, masks = DavisSequences(DAVIS16).read_sample("car-shadow")
    assert list(sample.first_masks) == [1] and sample.first_masks[1][0] == 0
    sample.frames = sample.frames[:8]
    model = model_from_checkpoint(load_checkpoint(shipped_checkpoint(train_if_missing=False)))
    labels = merge(predict_objects(model, sample), sample.first_masks)
    j = [float(jaccard(labels[t] == 1, masks[t] == 1)) for t in range(1, 8)]
    assert np.mean(j) >= 0.5, f"J on frames 1-7 of car-shadow: {np.round(j, 3).tolist()}"
