"""Looking at videos and masks: overlays (numpy, matplotlib) and `VideoViewer` (ipywidgets)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .data.palette import PALETTE

if TYPE_CHECKING:  # names for the signatures only: matplotlib and torch load when drawing
    from matplotlib.axes import Axes

    from .data.ytvos import YTVOSSplit
    from .models import S2S


def overlay(
    frame: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    ids: Sequence[int] | None = None,
    contour: bool = True,
) -> np.ndarray:
    """Paint an id mask over a frame.

    ``frame`` ``(H, W, 3)`` uint8, ``mask`` ``(H, W)`` of object ids; each id gets its DAVIS
    palette colour blended with weight ``alpha``, with a solid outline when ``contour``.
    ``ids`` restricts which objects are drawn. Returns ``(H, W, 3)`` uint8.
    """
    mask = np.asarray(mask)
    if ids is not None:
        mask = np.where(np.isin(mask, list(ids)), mask, 0)
    out = frame.astype(np.float32)
    fg = mask > 0
    colour = PALETTE[mask].astype(np.float32)
    out[fg] = (1 - alpha) * out[fg] + alpha * colour[fg]
    if contour:  # inner boundary: a pixel of an object with a 4-neighbour of another id
        pad = np.pad(mask, 1, mode="edge")
        edge = fg & (
            (pad[:-2, 1:-1] != mask)
            | (pad[2:, 1:-1] != mask)
            | (pad[1:-1, :-2] != mask)
            | (pad[1:-1, 2:] != mask)
        )
        out[edge] = PALETTE[mask[edge]]
    return out.clip(0, 255).astype(np.uint8)


def overlay_strip(
    frames: np.ndarray, masks: np.ndarray, step: int = 1, alpha: float = 0.5
) -> np.ndarray:
    """Overlays of every ``step``-th frame side by side: ``(H, T' * W, 3)`` uint8."""
    return np.concatenate(
        [overlay(f, m, alpha) for f, m in zip(frames[::step], masks[::step], strict=True)], axis=1
    )


def show_strip(
    frames: np.ndarray,
    masks: np.ndarray,
    step: int = 1,
    title: str | None = None,
    ax: Axes | None = None,
    names: Sequence[str] | None = None,
    legend: dict[int, str] | None = None,
) -> Axes:
    """Plot `overlay_strip` with matplotlib, labelling each frame; ``legend`` maps object ids
    to labels shown in their palette colours. Returns the axes."""
    import matplotlib.pyplot as plt

    strip = overlay_strip(frames, masks, step)
    if ax is None:
        n = len(frames[::step])
        _, ax = plt.subplots(figsize=(min(2.2 * n, 16), 2.2 * frames.shape[1] / frames.shape[2]))
    ax.imshow(strip)
    w = frames.shape[2]
    if names is not None:
        ax.set_xticks([w * (i + 0.5) for i in range(len(names[::step]))], list(names[::step]))
    else:
        ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    if legend:
        from matplotlib.patches import Patch

        handles = [Patch(color=PALETTE[k] / 255, label=v) for k, v in sorted(legend.items())]
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return ax


def plot_protocol(split: YTVOSSplit, video: str, ax: Axes | None = None) -> Axes:
    """The YouTube-VOS protocol of one video as a timeline per object: the frame its mask is
    given on, the frames scored after it, and where the object is absent (scored too: an
    empty prediction is right there). ``split`` is a `data.YTVOSSplit`. Returns the axes."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    info = split.videos[video]
    names = info.frames
    if ax is None:
        ax = plt.subplots(figsize=(11, 0.6 + 0.45 * len(info.objects)))[1]
    colours = {"given": "C2", "scored, present": "C0", "scored, absent": "0.8"}
    objects = [obj for _, obj in sorted(info.objects.items())]
    for row, obj in enumerate(objects):
        present, t0 = set(obj.frames), names.index(obj.frames[0])
        for t, name in enumerate(names[t0:], start=t0):
            seen = "scored, present" if name in present else "scored, absent"
            kind = "given" if t == t0 else seen
            ax.barh(row, 1, left=t, color=colours[kind], edgecolor="w")
    ax.set_yticks(
        range(len(info.objects)),
        [f"object {o} ({obj.category})" for o, obj in sorted(info.objects.items())],
    )
    step = max(1, len(names) // 10)
    ax.set_xticks([t + 0.5 for t in range(0, len(names), step)], names[::step], fontsize=8)
    ax.set(xlim=(0, len(names)), xlabel="frame", title=f"{video}: what is given, what is scored")
    ax.invert_yaxis()
    ax.legend(
        handles=[Patch(color=c, label=k) for k, c in colours.items()],
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.0, 1.0),
    )
    return ax


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class VideoViewer:
    """An ipywidgets viewer: frame slider and play button, one toggle per object, and ground
    truth beside the prediction when both are given.

    ``frames`` ``(T, H, W, 3)`` uint8; ``gt`` and ``pred`` ``(T, H, W)`` id masks (either may
    be None). Display it by leaving it last in a cell (or ``display(viewer.widget)``). The
    state (``frame``, ``visible``) lives in plain attributes and `render` is plain numpy, so
    the logic is testable without a kernel.
    """

    def __init__(
        self,
        frames: np.ndarray,
        gt: np.ndarray | None = None,
        pred: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        alpha: float = 0.5,
        fps: int = 4,
    ):
        import ipywidgets as w

        self.frames, self.gt, self.pred, self.alpha = frames, gt, pred, alpha
        self.names = list(names) if names is not None else [str(i) for i in range(len(frames))]
        for label, m in (("gt", gt), ("pred", pred)):
            if m is not None and m.shape != frames.shape[:3]:
                raise ValueError(f"{label} masks {m.shape} do not match frames {frames.shape[:3]}")
        ids = sorted(
            set().union(*(np.unique(m).tolist() for m in (gt, pred) if m is not None)) - {0}
        )
        self.visible = {i: True for i in ids}
        last = len(frames) - 1
        self.slider = w.IntSlider(0, 0, last, description="frame", continuous_update=True)
        self.play = w.Play(value=0, min=0, max=last, interval=int(1000 / fps), description="play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        self.toggles = {i: w.ToggleButton(value=True, description=f"object {i}") for i in ids}
        self.label = w.Label()
        self.images = [w.Image(format="png") for m in (gt, pred) if m is not None] or [
            w.Image(format="png")
        ]
        titles = [t for t, m in (("ground truth", gt), ("prediction", pred)) if m is not None]
        panels = [
            w.VBox([w.Label(t), im])
            for t, im in zip(titles or ["frames"], self.images, strict=True)
        ]
        self.widget = w.VBox(
            [
                w.HBox([self.play, self.slider, self.label]),
                w.HBox(list(self.toggles.values())),
                w.HBox(panels),
            ]
        )
        self.slider.observe(lambda change: self.show(change["new"]), names="value")
        for i, t in self.toggles.items():
            t.observe(lambda change, i=i: self.set_visible(i, change["new"]), names="value")
        self.show(0)

    @property
    def frame(self) -> int:
        return self.slider.value

    def render(self, t: int) -> list[np.ndarray]:
        """The images shown for frame ``t``: one overlay per mask set (or the bare frame)."""
        ids = [i for i, on in self.visible.items() if on]
        masks = [m for m in (self.gt, self.pred) if m is not None]
        if not masks:
            return [self.frames[t]]
        return [overlay(self.frames[t], m[t], self.alpha, ids=ids) for m in masks]

    def show(self, t: int) -> None:
        """Display frame ``t`` (also what moving the slider does)."""
        if self.slider.value != t:
            self.slider.value = t  # its observer calls back here
            return
        for im, arr in zip(self.images, self.render(t), strict=True):
            im.value = _png(arr)
        self.label.value = f"{self.names[t]} ({t + 1}/{len(self.frames)})"

    def set_visible(self, obj: int, on: bool) -> None:
        """Show or hide one object's mask."""
        self.visible[obj] = on
        if self.toggles[obj].value != on:
            self.toggles[obj].value = on
        self.show(self.frame)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def boundary_picture(pred: np.ndarray, gt: np.ndarray, bound_th: float = 0.008) -> np.ndarray:
    """How F sees a prediction: ``(H, W, 3)`` uint8 with the truth's tolerance band in grey, the
    true boundary in black, and predicted boundary pixels green where matched, red where not."""
    from .metrics import boundary_map, dilate_disk, disk_radius

    r = disk_radius(gt.shape, bound_th)
    bp, bg = boundary_map(pred), boundary_map(gt)
    band = dilate_disk(bg[None], r)[0]
    img = np.full((*gt.shape, 3), 255, np.uint8)
    img[band] = (205, 205, 205)
    img[bg] = (0, 0, 0)
    img[bp & band] = (0, 170, 0)
    img[bp & ~band] = (220, 0, 0)
    return img


def plot_training_log(
    log_path: str | os.PathLike, axes: Sequence[Axes] | None = None, smooth: int = 25
) -> Sequence[Axes]:
    """Loss (per step and a running mean), learning rate and validation J of a ``log.jsonl``
    written by `vostutorial.train`, on three matplotlib axes (made when not given). Returns
    the axes."""
    import json

    import matplotlib.pyplot as plt

    log = [json.loads(line) for line in Path(log_path).read_text().splitlines()]
    steps = np.array([r["step"] for r in log])
    loss = np.array([r["loss"] for r in log])
    if axes is None:
        axes = plt.subplots(1, 3, figsize=(14, 3))[1]
    k = min(smooth, len(loss))
    axes[0].plot(steps, loss, alpha=0.3, label="per step")
    axes[0].plot(
        steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}"
    )
    axes[0].set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    axes[0].legend()
    axes[1].plot(steps, [r.get("lr", np.nan) for r in log])
    axes[1].set(xlabel="step", ylabel="learning rate", title="warm-up, then cosine decay")
    val = [(r["step"], r["val_J"]) for r in log if "val_J" in r]
    if val:
        axes[2].plot(*zip(*val, strict=True), "o-")
    axes[2].set(xlabel="step", ylabel="J", ylim=(0, 1), title="validation J (held-out videos)")
    return axes


def plot_j_over_time(
    curves: dict[str, np.ndarray],
    names: Sequence[str],
    ax: Axes | None = None,
    title: str = "",
    styles: dict[str, dict] | None = None,
) -> Axes:
    """Per-frame J of several methods, ``{label: (T,)}``, over the frame names they score;
    one line each, with the method's mean in the legend. ``styles`` maps a label to
    ``ax.plot`` keywords (e.g. one colour per object, dashed before and solid after).
    Returns the axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        ax = plt.subplots(figsize=(11, 3))[1]
    x = np.arange(len(names))
    for label, j in curves.items():
        style = (styles or {}).get(label, {})
        ax.plot(x[-len(j) :], j, label=f"{label} (mean {np.mean(j):.2f})", **style)
    step = max(1, len(names) // 12)
    ax.set_xticks(x[::step], [names[i] for i in x[::step]], fontsize=8)
    ax.set(xlabel="frame", ylabel="J", ylim=(0, 1.02), title=title)
    ax.legend(fontsize=8, loc="lower left", ncol=2 if len(curves) > 4 else 1)
    return ax


def plot_object_curves(
    curves: dict[int, tuple[np.ndarray, np.ndarray]],
    names: Sequence[str],
    axes: Sequence[Axes] | None = None,
) -> Sequence[Axes]:
    """Each object's area and the model's confidence over the frames (`video.object_curves`),
    in its palette colour, on two matplotlib axes (made when not given): where tracking is in
    doubt when there is no ground truth. Returns the axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        axes = plt.subplots(2, 1, figsize=(10, 3.6), sharex=True)[1]
    x = np.arange(len(names))
    for oid, (area, conf) in sorted(curves.items()):
        colour = PALETTE[oid] / 255
        axes[0].plot(x, area, color=colour, label=f"object {oid}")
        axes[1].plot(x, conf, color=colour)
    axes[0].set(ylabel="area (of frame)")
    axes[1].set(ylabel="confidence", ylim=(0.5, 1.0), xlabel="frame")
    step = max(1, len(names) // 12)
    axes[1].set_xticks(x[::step], [names[i] for i in x[::step]], fontsize=8)
    axes[0].legend(fontsize=8, loc="upper right")
    return axes


def _draw_skips(ax: Axes, main: list[str], xs: dict[str, float]) -> None:
    """Dashed arcs: encoder maps at 1/16 .. 1/2 join the decoder stages of their size."""
    enc = [n for n in main if n.startswith("encoder stage")][-2::-1]
    dec = [n for n in main if n.startswith("decoder up")]
    arc = {"arrowstyle": "->", "ls": "--", "color": "C0", "alpha": 0.5}
    for a, b in zip(enc, dec, strict=False):
        ax.annotate(
            "",
            (xs[b], -0.15),
            (xs[a], -0.15),
            arrowprops=arc | {"connectionstyle": "arc3,rad=0.25"},
        )


def _architecture_layout(
    names: list[str],
) -> tuple[list[str], list[str], dict[str, float], dict[str, float]]:
    """The diagram's two rows of stage names (the initializer's, the frames' path) and each
    stage's x and y: the initializer's row ends above the ConvLSTM."""
    init = ["frame 0 + mask"] + [n for n in names if n.startswith("initializer")]
    init += ["init_h (1x1 conv)"]
    main = ["input frames"] + [n for n in names if n.startswith("encoder")]
    main += ["lstm (h per step)"] + [n for n in names if n.startswith("decoder")]
    xs: dict[str, float] = {n: i for i, n in enumerate(main)}
    lstm_x = xs["lstm (h per step)"]
    for i, n in enumerate(init):
        xs[n] = lstm_x - len(init) + i + 0.0
    rows = {n: (1.0 if n in init else 0.0) for n in xs}
    return init, main, xs, rows


def draw_architecture(model: S2S, ax: Axes | None = None) -> Axes:
    """A block diagram of an S2S model drawn from the model itself: every stage that
    `models.summary.trace_shapes` sees on a one-object, two-frame pass at the model's input
    size, with the tensor shape (C x H x W, batch and time left out) on each arrow. The
    initializer's row feeds the ConvLSTM's first state; with ``skips`` dashed arrows join encoder
    stages to the decoder stages of the same resolution. Returns the axes."""
    import matplotlib.pyplot as plt
    import torch

    from .models.summary import trace_shapes

    h, w = model.cfg.input_size
    stages = trace_shapes(model.eval(), torch.zeros(1, 2, 3, h, w), torch.zeros(1, 1, h, w))
    shape = dict(stages) | {"frame 0 + mask": (4, h, w)}

    def label(s: tuple) -> str:
        return "x".join(map(str, s[-3:]))

    init, main, xs, rows = _architecture_layout([n for n, _ in stages])
    if ax is None:
        ax = plt.subplots(figsize=(max(12, 1.25 * len(main)), 3.6))[1]

    def box(n: str, colour: str) -> None:
        title = n.split(" (")[0].replace("encoder stage", "enc").replace("decoder up", "up")
        title = title.replace("initializer stage", "init").replace("decoder logits", "logits")
        ax.text(
            xs[n],
            rows[n],
            title.replace("_", " "),
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round", "fc": colour, "ec": "0.3"},
        )

    def arrow(a: str, b: str, text: str, style: str = "-") -> None:
        (x0, y0), (x1, y1) = (xs[a], rows[a]), (xs[b], rows[b])
        ax.annotate(
            "",
            (x1 - 0.3 * (x1 > x0), y1 - 0.15 * (y1 < y0)),
            (x0 + 0.3 * (x1 > x0), y0),
            arrowprops={"arrowstyle": "->", "ls": style, "color": "0.3"},
        )
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.12, text, ha="center", fontsize=6.5, color="C3")

    colours = {"input": "w", "frame": "w", "enc": "#cfe3f6", "lstm": "#fde2a6", "dec": "#d5efcf"}
    for n in main:
        kind = next((k for k in colours if n.startswith(k)), "dec")
        box(n, colours[kind])
    for n in init:
        box(n, "w" if n == init[0] else "#f4d0e0")
    for a, b in zip(main, main[1:], strict=False):
        arrow(a, b, label(shape[a]))
    for a, b in zip(init, init[1:], strict=False):
        arrow(a, b, label(shape[a]))
    arrow(init[-1], "lstm (h per step)", "h0, c0: " + label(shape["init_h (1x1 conv)"]))
    if model.cfg.skips:
        _draw_skips(ax, main, xs)
    ax.set(xlim=(min(xs.values()) - 1.6, max(xs.values()) + 0.8), ylim=(-1.3, 1.5))
    ax.set_title(
        f"S2S '{model.cfg.name}' at {h}x{w}: shapes are channels x height x width"
        + (" (dashed: skips)" if model.cfg.skips else ""),
        fontsize=10,
    )
    ax.axis("off")
    return ax
