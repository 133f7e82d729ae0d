"""The pretrained VGG16 (`vostutorial.models.pretrained`): HED's file read right, no download,
clear errors, and checkpoints that name the trunk instead of storing it."""

import urllib.error

import numpy as np
import pytest
import torch
import torchvision

from vostutorial.checkpoint import export_model, load_checkpoint, load_model
from vostutorial.models import build_model, pretrained, pretrained_vgg16
from vostutorial.models.pretrained import (
    HED_BGR_MEAN,
    IMAGENET_MEAN,
    IMAGENET_STD,
    fold_caffe_input,
    hed_file,
    hed_keras_kernels,
)


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory):
    """The tests convert into a cache folder of their own, never the checkout's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pretrained, "WEIGHTS_CACHE", tmp_path_factory.mktemp("weights"))
        yield


def correlate(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A 'valid' cross-correlation in Keras's layout: x ``(H, W, in)``, kernel ``(kh, kw, in,
    out)`` -> ``(H - kh + 1, W - kw + 1, out)``."""
    kh, kw = kernel.shape[:2]
    h, w = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, w, kernel.shape[3]))
    for i in range(kh):
        for j in range(kw):
            out += x[i : i + h, j : j + w].astype(np.float64) @ kernel[i, j]
    return out + bias


def hed_reference(rgb: np.ndarray) -> np.ndarray:
    """conv1_1, ReLU, conv1_2, ReLU computed from the file's arrays in HED's own convention:
    BGR, 0-255, minus HED's mean."""
    layers = hed_keras_kernels(hed_file())
    x = rgb[..., ::-1] * 255.0 - np.array(HED_BGR_MEAN)
    for kernel, bias in layers[:2]:
        x = np.maximum(correlate(x, kernel, bias), 0)
    return x


def torch_first_layers(first: torch.nn.Conv2d, second: torch.nn.Conv2d, rgb: np.ndarray):
    """The same two layers in torch, on torchvision's input convention; the interior that the
    'valid' reference covers."""
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    with torch.no_grad():
        y = torch.relu(second(torch.relu(first(x))))
    return y[0, :, 2:-2, 2:-2].permute(1, 2, 0).numpy()  # padding 1 twice: 2 border pixels


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).random((14, 17, 3)).astype(np.float32)


def test_hed_trunk_equals_the_files_own_convolutions_on_the_interior(rgb):
    trunk = pretrained_vgg16("hed")
    ref = hed_reference(rgb)
    got = torch_first_layers(trunk[0], trunk[2], rgb)
    assert np.abs(ref).max() > 100  # real activations, not a zero trunk
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def _first_two(kernel_order: tuple[int, ...], flip_bgr: bool) -> tuple:
    """conv1_1 and conv1_2 converted with a given kernel permutation, with or without the
    BGR -> RGB channel flip: the mistakes a converter can make."""
    (k1, b1), (k2, b2) = hed_keras_kernels(hed_file())[:2]
    convs = []
    for i, (k, b) in enumerate(((k1, b1), (k2, b2))):
        conv = torch.nn.Conv2d(k.shape[2], k.shape[3], 3, padding=1)
        w = torch.from_numpy(k).permute(*kernel_order).contiguous()
        bias = torch.from_numpy(b)
        if i == 0:
            w, bias = fold_caffe_input(w if flip_bgr else w.flip(1), bias, HED_BGR_MEAN)
        conv.weight.data, conv.bias.data = w, bias
        convs.append(conv)
    return convs


def test_the_check_fails_for_a_transposed_kernel_or_swapped_channels(rgb):
    ref = hed_reference(rgb)
    right = torch_first_layers(*_first_two((3, 2, 0, 1), flip_bgr=True), rgb)
    transposed = torch_first_layers(*_first_two((3, 2, 1, 0), flip_bgr=True), rgb)
    unswapped = torch_first_layers(*_first_two((3, 2, 0, 1), flip_bgr=False), rgb)
    scale = np.abs(ref).max()
    assert np.abs(right - ref).max() < 1e-3 * scale
    assert np.abs(transposed - ref).max() > 0.05 * scale
    assert np.abs(unswapped - ref).max() > 0.05 * scale


def test_trunk_has_torchvisions_layout_and_the_cache_is_checked():
    first = pretrained_vgg16("hed")
    layout = torchvision.models.vgg16(weights=None).features
    assert [type(m) for m in first] == [type(m) for m in layout]
    (cache,) = pretrained.WEIGHTS_CACHE.glob("*.pt")
    cache.write_bytes(b"damaged")  # a cache that is not what its record says is rebuilt
    again = pretrained_vgg16("hed")
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_local_torchvision_file_loads_as_it_is(tmp_path):
    trunk = pretrained_vgg16("hed")
    path = tmp_path / "vgg16-local.pth"
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, path)
    again = pretrained_vgg16(path)
    assert torch.equal(again[28].weight, trunk[28].weight)
    with pytest.raises(ValueError, match="not found"):
        pretrained_vgg16(tmp_path / "missing.pth")
    torch.save({"something": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not VGG16 weights"):
        pretrained_vgg16(tmp_path / "other.pth")


def test_without_the_package_hed_names_make_setup(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="make setup") as err:
        pretrained_vgg16("hed")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="make setup"):  # never random features in silence
        build_model("s2s-vgg16")


def test_imagenet_offline_fails_at_once_naming_hed(monkeypatch):
    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.models.VGG16_Weights, "get_state_dict", offline)
    with pytest.raises(ValueError, match="'hed'"):
        pretrained_vgg16("imagenet")


def test_paper_starts_encoder_and_initializer_from_vgg16_with_a_silent_mask_channel():
    model = build_model("paper", pretrained="hed", input_size=(64, 64))
    trunk = pretrained_vgg16("hed")
    assert torch.equal(model.encoder[0].weight, trunk[0].weight)
    assert torch.equal(model.initializer[0].weight[:, :3], trunk[0].weight)
    assert torch.equal(model.initializer[0].weight[:, 3], torch.zeros_like(trunk[0].weight[:, 0]))
    assert model.pretrained_from["source"] == "hed"


def test_a_frozen_trunk_learns_nothing_and_is_not_stored(tmp_path):
    torch.manual_seed(0)
    model = build_model("s2s-vgg16", input_size=(64, 96))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learnt = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(learnt, lr=0.1)
    frames = torch.rand(2, 3, 3, 64, 96)
    first = (torch.rand(2, 1, 64, 96) > 0.5).float()
    model.train()
    model(frames, first).sigmoid().mean().backward()
    opt.step()
    after = model.state_dict()
    trunk = [k for k in after if k.startswith("encoder.")]
    assert trunk and all(torch.equal(before[k], after[k]) for k in trunk)
    assert any(not torch.equal(before[k], after[k]) for k in after if k not in trunk)

    path = tmp_path / "m.pt"
    export_model(model, path, half=False)
    saved = load_checkpoint(path)
    assert not any(k.startswith("encoder.") for k in saved["model"])
    assert saved["trunk"] == model.pretrained_from
    assert path.stat().st_size < 5e6
    again = load_model(path)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(frames, first), model(frames, first))

    saved["trunk"] = {**saved["trunk"], "sha256": "0" * 64}  # trained on other weights
    torch.save(saved, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="SHA-256"):
        load_model(tmp_path / "other.pt")


def test_learnt_stages_train_above_the_frozen_trunk_and_are_stored(tmp_path):
    torch.manual_seed(0)
    model = build_model("vgg16-tiny", input_size=(64, 96))  # VGG16 to pool 2, then learnt
    vgg = pretrained_vgg16("hed")
    assert len(model.encoder) == 10  # 4 convolutions, their ReLUs, 2 pools
    assert torch.equal(model.encoder[7].weight, vgg[7].weight)  # conv2_2, HED's
    learnt = [m.out_channels for m in model.encoder_top if isinstance(m, torch.nn.Conv2d)]
    assert learnt == [64, 64, 96, 96, 128, 128]
    frames = torch.rand(2, 3, 3, 64, 96)
    first = (torch.rand(2, 1, 64, 96) > 0.5).float()
    model.eval()
    with torch.no_grad():  # the learnt stages read the trunk's pool 2, standardised
        _, skips, top, _ = model.encode_with_skips(frames)
        pool2 = model.tap(model.encoder(model.normalise(frames.flatten(0, 1))))
        torch.testing.assert_close(top.flatten(0, 1), model.encoder_top(pool2))
        torch.testing.assert_close(skips[2], pool2)  # the 1/4 skip: the trunk's
        torch.testing.assert_close(skips[1], model.encoder_top[:5](pool2))  # 1/8: learnt

    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    model.train()
    for _ in range(2):  # the decoder's last layer starts at 0: the stages below learn at step 2
        opt.zero_grad()
        model(frames, first).sigmoid().mean().backward()
        opt.step()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("encoder."))
    assert all(not torch.equal(before[k], after[k]) for k in after if k.startswith("encoder_top."))

    path = tmp_path / "m.pt"
    export_model(model, path, half=False)
    saved = load_checkpoint(path)
    assert any(k.startswith("encoder_top.") for k in saved["model"])
    assert not any(k.startswith("encoder.") for k in saved["model"])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(load_model(path)(frames, first), model(frames, first))


def test_a_frozen_trunk_can_have_an_initializer_of_its_own():
    torch.manual_seed(0)
    model = build_model("vgg16-tiny", input_size=(64, 96)).eval()
    assert model.initializer[0].in_channels == 4  # the frame and its full-size mask
    frame, mask = torch.rand(2, 3, 64, 96), (torch.rand(2, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        h0, c0 = model.initial_state(frame, mask, trunk=torch.zeros(2, 128, 2, 3))  # not read
        x = model.initializer(torch.cat([model.normalise(frame), mask], dim=1))
        torch.testing.assert_close(h0, model.init_h(x))
        torch.testing.assert_close(c0, model.init_c(x))
    shared = build_model("vgg16-tiny", init_widths=(), init_convs=())  # reads the trunk's top
    assert shared.initializer[0].in_channels == 128 + 1


def test_learnt_stages_need_a_frozen_trunk_below_them():
    with pytest.raises(ValueError, match="learnt_stages needs frozen_trunk"):
        build_model("tiny", learnt_stages=2)
    with pytest.raises(ValueError, match="VGG16's widths"):  # a trunk that is not VGG16's
        build_model("vgg16-tiny", widths=(64, 96, 64, 96, 128))
    with pytest.raises(ValueError, match="init_widths needs"):  # one width per stage
        build_model("vgg16-tiny", init_widths=(16, 32), init_convs=(1, 1))
    with pytest.raises(ValueError, match="first 3 stages"):  # propagation reads the trunk's stage 3
        build_model("s2s-vgg16", learnt_stages=1, propagation=True)


def test_the_papers_flow_alone_runs_on_the_frozen_trunk():
    from vostutorial.models import S2S

    model = build_model("s2s-vgg16", skips=False, feedback=False, propagation=False).eval()
    assert type(model) is S2S  # the paper's class: encoder, initializer, ConvLSTM, decoder
    frames = torch.rand(1, 3, 3, 64, 96)
    masks = (torch.rand(2, 1, 64, 96) > 0.5).float()  # two objects of one clip
    with torch.no_grad():
        logits, hidden = model(frames, masks, return_hidden=True)
        h0, _ = model.initial_state(frames[:, 0].expand(2, -1, -1, -1), masks)
    assert logits.shape == (2, 3, 1, 64, 96) and hidden.shape == (2, 3, 64, 8, 12)
    assert not torch.equal(h0[0], h0[1])  # the mask reaches the initial state


def test_learnt_layers_read_a_frozen_trunk_standardised():
    torch.manual_seed(0)
    frames = torch.rand(2, 3, 64, 96)
    model = build_model("s2s-vgg16", input_size=(64, 96)).eval()
    with torch.no_grad():
        raw = model.encoder(model.normalise(frames))
        seen = model.trunk(frames)
    assert raw.std() > 5  # VGG's own activations are large
    for x in seen:  # each map: zero mean, unit variance
        torch.testing.assert_close(x.mean(), torch.tensor(0.0), atol=1e-4, rtol=0)
        torch.testing.assert_close(x.std(unbiased=False), torch.tensor(1.0), atol=1e-3, rtol=0)
    tiny = build_model("tiny", input_size=(64, 96)).eval()
    with torch.no_grad():  # a trained encoder's maps pass as they are
        torch.testing.assert_close(tiny.trunk(frames), tiny.encoder(tiny.normalise(frames)))


def test_skips_before_pool_hand_the_decoder_each_stage_at_full_depth():
    model = build_model("s2s-vgg16", input_size=(64, 96), skips_before_pool=True).eval()
    frames = torch.rand(1, 2, 3, 64, 96)
    with torch.no_grad():
        skips = model.encode_with_skips(frames)[1]
        x, convs = model.normalise(frames.flatten(0, 1)), []
        for layer in model.encoder:  # each stage's last ReLU, read by hand
            if isinstance(layer, torch.nn.MaxPool2d):
                convs.append(x)
            x = layer(x)
    # coarsest first: conv3_3 at 1/4, conv2_2 at 1/2, conv1_2 at full size (HED's edge layer)
    assert [tuple(s.shape[1:]) for s in skips] == [(256, 16, 24), (128, 32, 48), (64, 64, 96)]
    for skip, conv in zip(skips, convs[::-1], strict=True):
        torch.testing.assert_close(skip, model.tap(conv))
    pooled = build_model("s2s-vgg16", input_size=(64, 96)).eval()
    with torch.no_grad():  # the default: the pools' outputs, from 1/4 to 1/2
        assert [s.shape[1] for s in pooled.encode_with_skips(frames)[1]] == [128, 64]
        assert model(frames, torch.ones(1, 1, 64, 96)).shape == (1, 2, 1, 64, 96)
    with pytest.raises(ValueError, match="skips_before_pool"):
        build_model("tiny", skips_before_pool=True)  # its learnt matching reads pool 3
