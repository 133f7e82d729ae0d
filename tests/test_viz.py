import numpy as np
import pytest

from vostutorial.data import PALETTE
from vostutorial.viz import VideoViewer, overlay, overlay_strip


def _clip(t=4, h=20, w=30):
    frames = np.full((t, h, w, 3), 100, np.uint8)
    masks = np.zeros((t, h, w), np.uint8)
    for i in range(t):
        masks[i, 5:12, 2 + 4 * i : 10 + 4 * i] = 1
        masks[i, 14:18, 20:26] = 2
    return frames, masks


def test_overlay_blends_palette_colour_inside_and_leaves_outside():
    frames, masks = _clip()
    out = overlay(frames[0], masks[0], alpha=0.5, contour=False)
    assert out[8, 5].tolist() == [114, 50, 50]  # 0.5 * 100 + 0.5 * (128, 0, 0)
    assert out[0, 0].tolist() == [100, 100, 100]
    only2 = overlay(frames[0], masks[0], ids=[2], contour=False)
    assert only2[8, 5].tolist() == [100, 100, 100]
    assert only2[15, 22].tolist() == (0.5 * 100 + 0.5 * PALETTE[2]).astype(int).tolist()
    outlined = overlay(frames[0], masks[0])
    assert outlined[11, 5].tolist() == PALETTE[1].tolist()  # bottom edge of object 1
    assert overlay_strip(frames, masks).shape == (20, 120, 3)


def test_viewer_slider_changes_the_shown_frame():
    frames, masks = _clip()
    v = VideoViewer(frames, gt=masks, pred=np.roll(masks, 1, axis=2))
    assert len(v.images) == 2 and set(v.toggles) == {1, 2}
    first = [im.value for im in v.images]
    v.slider.value = 3
    assert v.frame == 3 and v.label.value.endswith("(4/4)")
    assert all(a != im.value for a, im in zip(first, v.images, strict=True))
    assert np.array_equal(v.render(3)[0], overlay(frames[3], masks[3], 0.5, ids=[1, 2]))
    v.show(0)
    assert v.slider.value == 0 and [im.value for im in v.images] == first


def test_viewer_object_toggle_hides_its_mask():
    frames, masks = _clip()
    v = VideoViewer(frames, gt=masks)
    before = v.images[0].value
    v.toggles[1].value = False
    assert v.visible[1] is False
    shown = v.render(0)[0]
    assert shown[8, 5].tolist() == [100, 100, 100]  # object 1 no longer painted
    assert shown[15, 22].tolist() != [100, 100, 100]
    assert v.images[0].value != before


def test_viewer_rejects_mismatched_masks():
    frames, masks = _clip()
    with pytest.raises(ValueError, match="gt masks"):
        VideoViewer(frames, gt=masks[:, :10])


def test_plot_training_log_draws_loss_lr_and_validation(tmp_path):
    import json

    import matplotlib

    matplotlib.use("Agg")
    from vostutorial.viz import plot_training_log

    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "loss": 1.0 / s, "lr": 0.1 * s} for s in range(1, 31)]
    rows[9]["val_J"], rows[29]["val_J"] = 0.2, 0.6
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    loss_ax, lr_ax, val_ax = plot_training_log(log)
    assert list(lr_ax.get_lines()[0].get_ydata()) == [0.1 * s for s in range(1, 31)]
    raw, mean = loss_ax.get_lines()
    assert list(raw.get_ydata()) == [1.0 / s for s in range(1, 31)]
    assert len(mean.get_xdata()) == 30 - 25 + 1  # running mean of 25
    assert mean.get_ydata()[0] == pytest.approx(sum(1.0 / s for s in range(1, 26)) / 25)
    (val,) = val_ax.get_lines()
    assert list(val.get_xdata()) == [10, 30] and list(val.get_ydata()) == [0.2, 0.6]


def test_architecture_diagram_is_drawn_from_the_model():
    import matplotlib

    matplotlib.use("Agg")
    from vostutorial.models import build_model
    from vostutorial.viz import draw_architecture

    texts = {t.get_text() for t in draw_architecture(build_model("tiny")).texts}
    assert {"h0, c0: 64x4x7", "3x128x224", "4x128x224", "16x128x224"} <= texts
    assert {"enc 1", "init 1", "lstm", "up 5", "logits"} <= texts  # every stage has its box
    narrow = build_model("tiny", hidden=32)  # a config change shows up in the picture
    assert "h0, c0: 32x4x7" in {t.get_text() for t in draw_architecture(narrow).texts}


def test_protocol_timeline_marks_given_scored_and_absent_frames(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from helpers import write_split

    from vostutorial.data import YTVOSSplit
    from vostutorial.viz import plot_protocol

    frames = np.zeros((4, 8, 8, 3), np.uint8)
    ids = np.zeros((4, 8, 8), np.uint8)
    ids[:, :2, :2] = 1  # object 1 on every frame
    ids[1, 5:, 5:] = 2  # object 2 from frame 1, gone on frame 3
    ids[2, 5:, 5:] = 2
    split = YTVOSSplit(write_split(tmp_path, "valid", {"v": (frames, ids)}, heldout=True), "valid")
    ax = plot_protocol(split, "v")
    bars = [(round(p.get_y() + p.get_height() / 2), int(p.get_x()), p.get_facecolor()[:3])
            for p in ax.patches]  # fmt: skip
    leg = ax.get_legend()
    colours = {t.get_text(): h.get_facecolor()[:3]
               for h, t in zip(leg.legend_handles, leg.get_texts(), strict=True)}  # fmt: skip
    by = {(row, t): c for row, t, c in bars}
    assert by[(0, 0)] == colours["given"] and by[(0, 3)] == colours["scored, present"]
    assert (1, 0) not in by and by[(1, 1)] == colours["given"]  # late: nothing before
    assert by[(1, 3)] == colours["scored, absent"]


def test_j_over_time_aligns_late_curves_to_the_end_and_applies_styles():
    import matplotlib

    matplotlib.use("Agg")
    from vostutorial.viz import plot_j_over_time

    names = [f"{i:05d}" for i in range(0, 25, 5)]
    curves = {"early": np.array([0.2, 0.4, 0.6, 0.8]), "late": np.array([0.5, 0.7])}
    styles = {"late": {"color": "red", "linestyle": "--"}}
    ax = plot_j_over_time(curves, names, styles=styles)
    early, late = ax.get_lines()
    # a curve scores the frames after its given one: the last len(j) frames
    assert list(early.get_xdata()) == [1, 2, 3, 4] and list(late.get_xdata()) == [3, 4]
    assert late.get_color() == "red" and late.get_linestyle() == "--"
    assert early.get_linestyle() == "-"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["early (mean 0.50)", "late (mean 0.60)"]
