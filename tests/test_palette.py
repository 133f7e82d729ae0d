import numpy as np
import pytest
from PIL import Image

from vostutorial.data import PALETTE, read_image, read_mask, write_mask


def test_davis_palette_known_colours():
    assert PALETTE.shape == (256, 3)
    assert PALETTE[0].tolist() == [0, 0, 0]
    assert PALETTE[1].tolist() == [128, 0, 0]
    assert PALETTE[2].tolist() == [0, 128, 0]
    assert PALETTE[3].tolist() == [128, 128, 0]
    assert PALETTE[8].tolist() == [64, 0, 0]
    assert PALETTE[255].tolist() == [224, 224, 192]  # DAVIS "void" colour
    assert len({tuple(c) for c in PALETTE.tolist()}) == 256


def test_mask_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    mask = rng.integers(0, 256, (37, 53)).astype(np.uint8)
    write_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as img:
        assert img.mode == "P"
        assert np.array_equal(np.asarray(img.getpalette()[:768]).reshape(256, 3), PALETTE)
    assert np.array_equal(read_mask(tmp_path / "m.png", require_palette=True), mask)
    assert not list(tmp_path.glob("*.tmp"))


def test_grayscale_davis2016_mask_reads_as_ids(tmp_path):
    arr = np.zeros((10, 12), np.uint8)
    arr[2:5, 3:9] = 255
    Image.fromarray(arr).save(tmp_path / "g.png")
    assert np.array_equal(read_mask(tmp_path / "g.png"), (arr == 255).astype(np.uint8))
    with pytest.raises(ValueError, match=r"g\.png.*palette"):
        read_mask(tmp_path / "g.png", require_palette=True)


def test_grayscale_with_other_values_is_rejected(tmp_path):
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd\.png.*0 and 255"):
        read_mask(tmp_path / "odd.png")


def test_rgb_mask_is_rejected(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match=r"rgb\.png.*'RGB'"):
        read_mask(tmp_path / "rgb.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_and_garbage_files_name_the_file(tmp_path, suffix):
    path = tmp_path / f"f{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    reader = read_image if suffix == ".jpg" else read_mask
    with pytest.raises(ValueError, match=rf"f\{suffix}: cannot decode"):
        reader(path)
    path.write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match=rf"f\{suffix}: cannot decode"):
        reader(path)


def test_missing_file_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="nothere.jpg: file not found"):
        read_image(tmp_path / "nothere.jpg")
