import copy

import numpy as np
import pytest
import torch
from torch import nn

from vostutorial.cli import main
from vostutorial.fast import ConcatChannelsLast, NormaliseChannelsLast, speed_up
from vostutorial.models import CONFIGS, ConvLSTM, ConvLSTMCell, build_model
from vostutorial.models.summary import count_macs


def test_convlstm_with_1x1_kernels_on_1x1_maps_is_an_lstm():
    torch.manual_seed(0)
    n_in, n_h, t, b = 3, 5, 7, 2
    lstm = nn.LSTM(n_in, n_h, batch_first=True)
    conv = ConvLSTM(n_in, n_h, kernel_size=1)
    with torch.no_grad():  # nn.LSTM keeps input and hidden weights apart; the cell fuses them
        w = torch.cat([lstm.weight_ih_l0, lstm.weight_hh_l0], dim=1)
        conv.cell.gates.weight.copy_(w[:, :, None, None])
        conv.cell.gates.bias.copy_(lstm.bias_ih_l0 + lstm.bias_hh_l0)
    x = torch.randn(b, t, n_in)
    h0, c0 = torch.randn(1, b, n_h), torch.randn(1, b, n_h)
    ref, (hn, cn) = lstm(x, (h0, c0))
    out, (h, c) = conv(x[..., None, None], (h0[0, :, :, None, None], c0[0, :, :, None, None]))
    torch.testing.assert_close(out[..., 0, 0], ref)
    torch.testing.assert_close(h[..., 0, 0], hn[0])
    torch.testing.assert_close(c[..., 0, 0], cn[0])


def _gated_cell(forget: float, write: float) -> ConvLSTMCell:
    cell = ConvLSTMCell(1, 2, kernel_size=3)
    with torch.no_grad():
        cell.gates.weight.zero_()
        cell.gates.bias.copy_(torch.tensor([write] * 2 + [forget] * 2 + [0.0] * 2 + [0.0] * 2))
    return cell


def test_forget_gate_biased_open_keeps_the_cell_state():
    c0 = torch.randn(1, 2, 4, 4)
    x = torch.randn(1, 1, 4, 4)
    keep, lose = _gated_cell(forget=10.0, write=-10.0), _gated_cell(forget=-3.0, write=-10.0)
    sk = sl = (torch.zeros_like(c0), c0)
    for _ in range(50):
        sk, sl = keep(x, sk), lose(x, sl)
    torch.testing.assert_close(sk[1], c0, atol=5e-3, rtol=5e-3)  # sigmoid(10)^50 = 0.998
    assert sl[1].abs().max() < 1e-30  # sigmoid(-3)^50
    # h = o * tanh(c): with o = sigmoid(0) = 1/2 the memory stays readable
    torch.testing.assert_close(sk[0], 0.5 * torch.tanh(c0), atol=5e-3, rtol=5e-3)


def test_default_forget_bias_starts_open():
    cell = ConvLSTMCell(4, 8, forget_bias=1.0)
    b = cell.gates.bias.detach().view(4, 8)
    assert b[1].mean() > b[0].mean() + 0.5  # forget slice shifted by +1 at initialisation
    gates = cell.gate_values(torch.zeros(1, 4, 3, 3), cell.zero_state(torch.zeros(1, 4, 3, 3)))
    assert set(gates) == {"i", "f", "g", "o"} and gates["f"].mean() > 0.6


def test_skips_reach_the_decoder_only_when_configured():
    tiny, plain = build_model("tiny"), build_model("tiny", skips=False, matching=False)
    nn.init.normal_(tiny.decoder.out.weight, std=0.1)  # it starts at zero (copy the mask)
    frames = torch.rand(1, 2, 3, 64, 96)
    assert [s.shape[1] for s in tiny.encode_with_skips(frames)[1]] == [96, 64, 32, 16]
    assert plain.encode_with_skips(frames)[1] == []
    assert build_model("paper").cfg.skips is False  # the paper's decoder sees only h_t
    with torch.no_grad():  # the skips carry the current frame's detail into the logits
        a = tiny(frames, torch.ones(1, 1, 64, 96))
        b = tiny(torch.cat([frames[:, :1], frames[:, 1:].flip(-1)], 1), torch.ones(1, 1, 64, 96))
    assert torch.allclose(a[:, 0], b[:, 0]) and not torch.allclose(a[:, 1], b[:, 1])


def test_feedback_hands_each_frame_the_previous_mask():
    torch.manual_seed(0)
    frames = torch.rand(1, 3, 3, 64, 96)
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 10:30, 20:50] = 1
    outs = {}
    for feedback in (True, False):
        model = build_model("tiny", feedback=feedback, matching=False).eval()
        nn.init.normal_(model.decoder.out.weight, std=0.1)  # with feedback it starts at zero
        for conv in (model.init_h, model.init_c):  # blind the initializer to the mask
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        with torch.no_grad():
            outs[feedback] = (model(frames, mask), model(frames, 1 - mask))
    assert build_model("tiny").cfg.feedback and not build_model("paper").cfg.feedback
    (a, b), (c, d) = outs[True], outs[False]
    assert (a - b).abs().amax(dim=(0, 2, 3, 4)).min() > 1e-3  # every frame sees the mask
    torch.testing.assert_close(c, d)  # without feedback only the initializer could have


def test_untrained_feedback_carries_the_given_mask_forward():
    torch.manual_seed(0)
    model = build_model("tiny", matching=False).eval()  # matching would add its own vote
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 10:30, 20:50] = 1
    with torch.no_grad():
        p = torch.sigmoid(model(torch.rand(1, 4, 3, 64, 96), mask))
    # the decoder's correction starts at zero, so each frame is the fed-back previous mask
    # alone: p_t = sigmoid(s * (2 p_{t-1} - 1)) with s = 3 and p_{-1} the given mask
    prev = mask
    for t in range(4):
        prev = torch.sigmoid(3.0 * (2 * prev - 1))
        torch.testing.assert_close(p[0, t], prev[0])
    assert ((p[0] > 0.5) == (mask > 0)).all()  # the object stays where it was given


def test_hard_feedback_hands_on_the_thresholded_mask():
    torch.manual_seed(0)
    model = build_model("tiny", matching=False, hard_feedback=True).eval()
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 10:30, 20:50] = 1
    with torch.no_grad():
        p = torch.sigmoid(model(torch.rand(1, 4, 3, 64, 96), mask))
    # untrained, each frame is the previous mask alone, fed back as 0 or 1 (never drifting
    # towards 0.5 as soft feedback does): p_t = sigmoid(3 (2 [p_{t-1} > 0.5] - 1)) for all t
    for t in range(4):
        torch.testing.assert_close(p[0, t], torch.sigmoid(3.0 * (2 * mask[0] - 1)))
    with pytest.raises(ValueError, match="hard_feedback needs feedback"):
        build_model("tiny", feedback=False, matching=False, hard_feedback=True)


def test_matching_finds_the_first_frame_object_wherever_it_moves():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    assert model.cfg.matching and not build_model("paper").cfg.matching
    b, t, h, w = 1, 3, 8, 12  # 1/8 maps of a 64x96 clip
    feat8 = torch.rand(b * t, model.cfg.widths[2], h, w)
    # the object's features sit at rows 0-1, cols 0-3 on frame 0 and move to rows 4-5, cols 6-9
    obj = torch.rand(model.cfg.widths[2], 2, 4) + 5
    feat8[0, :, 0:2, 0:4] = obj
    feat8[1:, :, 4:6, 6:10] = obj
    mask = torch.zeros(1, 1, 64, 96)
    mask[..., 0:16, 0:32] = 1  # rows 0-1, cols 0-3 at 1/8
    with torch.no_grad():
        m = model.match_first_frame(feat8, mask, b, t)
    assert m.shape == (1, t, 2, h, w)
    torch.testing.assert_close(m[0, 0, 0, 0:2, 0:4], torch.ones(2, 4))  # itself: cosine 1
    torch.testing.assert_close(m[0, 1:, 0, 4:6, 6:10], torch.ones(2, 2, 4))  # moved, still found
    assert (m[0, 0, 1][mask[0, 0, ::8, ::8] == 0] > 0.999).all()  # background matches itself
    with pytest.raises(ValueError, match="matching needs skips"):
        build_model("tiny", skips=False)


def test_tiny_config_is_small_and_shapes_flow():
    model = build_model("tiny")
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    frames, mask = torch.rand(2, 4, 3, 64, 96), (torch.rand(2, 1, 64, 96) > 0.5).float()
    out = model(frames, mask)
    assert out.shape == (2, 4, 1, 64, 96)
    assert model.encode(frames).shape == (2, 4, 64, 2, 3)  # 1/32 resolution, 64 channels
    other = model(frames, 1 - mask)  # the initial state carries the object: masks matter
    # with He initialisation the mask's signal reaches the output from scratch (PyTorch's
    # default init shrinks it below 1e-6 through the deep decoder)
    assert (out - other).abs().max() > 1e-3


def test_paper_config_uses_torchvision_vgg16():
    import torchvision

    model = build_model("paper")
    ref = torchvision.models.vgg16(weights=None).features
    # the initializer is built by our own loop (4 input channels): VGG16's layout otherwise,
    # so that ImageNet weights load into it by index
    ours = {k: v.shape for k, v in model.initializer.state_dict().items()}
    theirs = {k: v.shape for k, v in ref.state_dict().items()}
    assert ours.pop("0.weight") == (64, 4, 3, 3) and theirs.pop("0.weight") == (64, 3, 3, 3)
    assert ours == theirs
    assert [type(m) for m in model.initializer] == [type(m) for m in ref]
    assert model.lstm.hidden_channels == 512 and model.lstm.gates.kernel_size == (3, 3)
    ups = [stage[0] for stage in model.decoder.stages]
    assert len(ups) == 5 and all(m.kernel_size == (5, 5) for m in ups)
    with torch.no_grad():
        out = model(torch.rand(1, 2, 3, 64, 64), torch.ones(1, 1, 64, 64))
    assert out.shape == (1, 2, 1, 64, 64)
    assert CONFIGS["paper"].input_size == (256, 448)


def test_objects_of_one_video_share_the_encoding():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    frames = torch.rand(1, 3, 3, 64, 96)
    masks = (torch.rand(3, 1, 64, 96) > 0.5).float()
    with torch.no_grad():
        together = model(frames, masks)
        alone = torch.cat([model(frames, m[None]) for m in masks])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-4)


def test_join_keeps_the_channels_last_layout():
    x = torch.randn(2, 4, 5, 6).to(memory_format=torch.channels_last)
    parts = [x, torch.rand(2, 1, 5, 6), torch.rand(2, 3, 5, 6)]
    joined = ConcatChannelsLast()(parts)
    assert torch.equal(joined, torch.cat(parts, dim=1))
    assert joined.is_contiguous(memory_format=torch.channels_last)
    assert not torch.cat(parts, dim=1).is_contiguous(memory_format=torch.channels_last)


def test_bad_sizes_are_clear_errors():
    model = build_model("tiny")
    with pytest.raises(ValueError, match="multiple of 32"):
        model(torch.rand(1, 2, 3, 50, 96), torch.ones(1, 1, 50, 96))
    with pytest.raises(ValueError, match="2 clips but 3 masks"):
        model(torch.rand(2, 2, 3, 64, 96), torch.ones(3, 1, 64, 96))
    with pytest.raises(ValueError, match="unknown model config 'huge'"):
        build_model("huge")


def test_pretrained_weights_from_a_local_file(tmp_path):
    import torchvision

    vgg = torchvision.models.vgg16(weights=None)
    path = tmp_path / "vgg16.pth"
    torch.save(vgg.state_dict(), path)
    model = build_model("paper", pretrained=path)
    torch.testing.assert_close(model.encoder[28].weight, vgg.features[28].weight)
    w0 = model.initializer[0].weight
    torch.testing.assert_close(w0[:, :3], vgg.features[0].weight)
    assert w0[:, 3].abs().max() == 0  # the mask channel starts at zero
    with pytest.raises(ValueError, match="nothere.pth: pretrained weights file not found"):
        build_model("paper", pretrained=tmp_path / "nothere.pth")
    with pytest.raises(ValueError, match="VGG16 widths"):
        build_model("tiny", pretrained=path)
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pth: not a readable torch state dict"):
        build_model("paper", pretrained=tmp_path / "junk.pth")


def test_mac_counting_by_hand():
    conv = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
    assert count_macs(conv, torch.zeros(1, 3, 10, 10)) == {"0": 8 * 10 * 10 * 3 * 9}
    up = nn.Sequential(nn.ConvTranspose2d(4, 8, 5, stride=2, padding=2, output_padding=1))
    assert count_macs(up, torch.zeros(1, 4, 5, 5)) == {"0": 4 * 25 * 8 * 25}


def test_model_summary_cli(capsys):
    assert main(["model-summary", "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    n = sum(p.numel() for p in build_model("tiny").parameters())
    assert f"{n:,d}" in out and "GMACs per frame" in out and "once per object" in out


def test_receptive_field_and_shape_trace():
    from vostutorial.models.summary import receptive_field, trace_shapes

    assert receptive_field(build_model("paper").encoder)[-1][1:] == (212, 32)  # VGG16 at pool5
    model = build_model("tiny")
    shapes = dict(trace_shapes(model, torch.rand(2, 3, 3, 64, 96), torch.rand(2, 1, 64, 96)))
    assert shapes["encoder stage 5 (pool)"] == (6, 128, 2, 3)  # B*T frames at 1/32
    assert shapes["init_h (1x1 conv)"] == (2, 64, 2, 3)  # one state per clip
    assert shapes["decoder up 5"] == (2, 16, 64, 96)  # with feedback: frame by frame
    assert shapes["model output"] == (2, 3, 1, 64, 96)


def test_the_paper_config_builds_exactly_the_paper_network():
    import inspect

    import torchvision

    from vostutorial.models import S2S, TrackingS2S

    paper = build_model("paper")
    assert type(paper) is S2S and type(build_model("tiny")) is TrackingS2S
    # encoder: VGG16's 13 conv layers and 5 pools, layer for layer torchvision's vgg16().features
    vgg = torchvision.models.vgg16(weights=None).features
    assert [type(m) for m in paper.encoder] == [type(m) for m in vgg]
    assert [tuple(m.weight.shape) for m in paper.encoder if isinstance(m, nn.Conv2d)] == [
        tuple(m.weight.shape) for m in vgg if isinstance(m, nn.Conv2d)
    ]
    # initializer: the same trunk on 4 channels (RGB + mask), then 1x1 convs to h0 and c0
    convs = [m for m in paper.initializer if isinstance(m, nn.Conv2d)]
    assert len(convs) == 13 and convs[0].in_channels == 4
    assert paper.init_h.kernel_size == paper.init_c.kernel_size == (1, 1)
    # memory: a 512-channel ConvLSTM with 3x3 kernels; decoder: 5 stride-2 5x5 deconvolutions
    assert paper.lstm.hidden_channels == 512 and paper.lstm.gates.kernel_size == (3, 3)
    ups = [stage[0] for stage in paper.decoder.stages]
    assert len(ups) == 5 and all(u.kernel_size == (5, 5) and u.stride == (2, 2) for u in ups)
    assert paper.decoder.out.kernel_size == (5, 5) and paper.decoder.out.out_channels == 1
    # one map per frame from h_t alone: (K, T, 1, H, W), the memory at 1/32
    frames, mask = torch.rand(1, 2, 3, 64, 96), torch.ones(1, 1, 64, 96)
    with torch.no_grad():
        logits, hs = paper(frames, mask, return_hidden=True)
    assert logits.shape == (1, 2, 1, 64, 96) and hs.shape == (1, 2, 512, 2, 3)
    assert len(inspect.getsource(S2S).splitlines()) <= 160  # readable beside the paper


COMBOS = [
    dict(skips=s, feedback=f, matching=m)
    for s in (False, True)
    for f in (False, True)
    for m in (False, True)
    if s or not m  # matching needs skips
]


@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(k for k, v in c.items() if v))
def test_every_option_combination_trains_and_its_fast_path_equals_the_plain_one(combo):
    torch.manual_seed(0)
    model = build_model("tiny", input_size=(64, 96), **combo)
    nn.init.normal_(model.decoder.out.weight, std=0.05)  # tiny's feedback starts it at zero
    frames = torch.rand(1, 3, 3, 64, 96)
    masks = torch.zeros(2, 1, 64, 96)
    masks[0, :, 10:30, 20:50] = 1
    masks[1, :, 35:60, 50:90] = 1
    logits = model(frames.expand(2, -1, -1, -1, -1), masks)
    logits.sum().backward()  # every parameter takes part
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        plain = model(frames, masks)
    fast = speed_up(copy.deepcopy(model))
    # the speed-ups are modules swapped in, visible in print(model); the plain model keeps its own
    assert type(fast.normalise) is NormaliseChannelsLast
    assert type(getattr(fast, "join", ConcatChannelsLast())) is ConcatChannelsLast
    assert "ChannelsLast" not in repr(model)
    with torch.inference_mode():
        quick = fast(frames, masks)
    assert plain.shape == (2, 3, 1, 64, 96)
    torch.testing.assert_close(quick, plain, atol=1e-4, rtol=1e-4)
    assert fast.state_dict().keys() == model.state_dict().keys()


def test_checkpoints_with_the_flat_decoder_of_earlier_versions_still_load(tmp_path):
    from vostutorial.checkpoint import load_weights, model_state

    torch.manual_seed(0)
    model = build_model("tiny", input_size=(64, 96))
    nn.init.normal_(model.decoder.out.weight, std=0.05)
    # before named stages the decoder was one nn.Sequential: up, ReLU, up, ReLU, ..., conv
    n = len(model.decoder.stages)
    old = {}
    for key, value in model_state(model).items():
        for i in range(n):
            key = key.replace(f"decoder.stages.{i}.0.", f"decoder.{2 * i}.")
        old[key.replace("decoder.out.", f"decoder.{2 * n}.")] = value
    assert "decoder.0.weight" in old and f"decoder.{2 * n}.weight" in old
    fresh = build_model("tiny", input_size=(64, 96))
    load_weights(fresh, old)
    frames, mask = torch.rand(1, 3, 3, 64, 96), torch.ones(1, 1, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(fresh(frames, mask), model(frames, mask), atol=0, rtol=0)


def test_the_fast_path_predicts_the_same_labels_as_the_plain_one(synth_root, weights):
    from vostutorial.checkpoint import load_model
    from vostutorial.data import YTVOSSplit
    from vostutorial.inference import merge, predict_objects

    valid = YTVOSSplit(synth_root, "valid")
    plain = load_model(weights)
    fast = speed_up(load_model(weights))
    for video in valid.videos:
        sample = valid.read_video(video)
        a, b = predict_objects(plain, sample), predict_objects(fast, sample)
        for oid in a:
            np.testing.assert_allclose(a[oid], b[oid], atol=1e-5)
        size = sample.frames.shape[1:3]
        la = merge(a, sample.first_masks, size=size)
        lb = merge(b, sample.first_masks, size=size, fast=True)
        assert (la != lb).mean() < 1e-4  # float ties between classes at most
