import numpy as np
import torch
from helpers import write_split

from vostutorial.data import ClipDataset, YTVOSSplit


def test_clip_shapes_and_targets_without_augmentation(synth_root):
    split = YTVOSSplit(synth_root, "train")
    ds = ClipDataset(split, clip_len=4, size=(64, 112), augment=False)
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["frames"].shape == (4, 3, 64, 112) and item["frames"].dtype == torch.float32
        assert item["frames"].min() >= 0 and item["frames"].max() <= 1
        assert item["masks"].shape == (4, 1, 64, 112) and item["first_mask"].shape == (1, 64, 112)
        assert torch.equal(item["first_mask"], item["masks"][0])
        assert item["first_mask"].sum() > 0
        names = item["frame_names"]
        info = split.videos[item["video"]]
        idx = [info.frames.index(n) for n in names]
        assert np.all(np.diff(idx) == 1)  # consecutive stored frames by default
        assert names[0] in info.objects[item["object"]].frames
        # at the data's own size the targets are exactly that object's masks
        for t, n in enumerate(names):
            gt = split.annotation(item["video"], n) == item["object"]
            assert np.array_equal(item["masks"][t, 0].numpy().astype(bool), gt)


def test_random_frame_skipping(synth_root):
    split = YTVOSSplit(synth_root, "train")
    ds = ClipDataset(split, clip_len=3, size=(64, 112), augment=False, max_skip=3)
    torch.manual_seed(1)
    strides = set()
    for _ in range(6):
        for i in range(len(ds)):
            item = ds[i]
            frames = split.videos[item["video"]].frames
            idx = [frames.index(n) for n in item["frame_names"]]
            strides.add(idx[1] - idx[0])
            assert idx[2] - idx[1] == idx[1] - idx[0]
    assert strides == {1, 2, 3}


def test_joint_augmentation_keeps_masks_on_their_pixels(tmp_path):
    # The object is the only bright thing: after crop, flip and colour jitter the bright
    # pixels must still be the mask's pixels.
    rng = np.random.default_rng(0)
    t, h, w = 5, 72, 128
    ids = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        y, x = rng.integers(10, 40), rng.integers(10, 80)
        ids[i, y : y + 24, x : x + 30] = 1
        ids[i, y : y + 8, x : x + 10] = 0  # a notch, so flips are visible
    frames = np.where(ids[..., None] > 0, 230, 20).astype(np.uint8).repeat(3, -1)
    write_split(tmp_path, "train", {"v": (frames, ids)})
    ds = ClipDataset(YTVOSSplit(tmp_path, "train"), clip_len=5, size=(96, 160), augment=True)
    torch.manual_seed(0)
    ious = []
    for _ in range(8):
        item = ds[0]
        bright = item["frames"].mean(1) > item["frames"].mean()
        m = item["masks"][:, 0] > 0
        ious.append(((bright & m).sum() / (bright | m).sum()).item())
    assert min(ious) > 0.85


def test_dataloader_batches(synth_root):
    ds = ClipDataset(YTVOSSplit(synth_root, "train"), clip_len=3, size=(64, 112))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4, num_workers=2)))
    assert batch["frames"].shape == (4, 3, 3, 64, 112)
    assert batch["masks"].shape == (4, 3, 1, 64, 112)
