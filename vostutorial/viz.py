"""Looking at videos and masks: overlays (numpy, matplotlib) and `VideoViewer` (ipywidgets)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .data.palette import PALETTE


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
    ax=None,
    names: Sequence[str] | None = None,
):
    """Plot `overlay_strip` with matplotlib, labelling each frame; returns the axes."""
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

    def _ipython_display_(self):
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


def plot_training_log(log_path, axes=None, smooth: int = 25):
    """Loss (per step and a running mean) and validation J of a ``log.jsonl`` written by
    `vostutorial.train`, on two matplotlib axes (made when not given). Returns the axes."""
    import json

    import matplotlib.pyplot as plt

    log = [json.loads(line) for line in Path(log_path).read_text().splitlines()]
    steps = np.array([r["step"] for r in log])
    loss = np.array([r["loss"] for r in log])
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(11, 3))[1]
    k = min(smooth, len(loss))
    axes[0].plot(steps, loss, alpha=0.3, label="per step")
    axes[0].plot(
        steps[k - 1 :], np.convolve(loss, np.ones(k) / k, mode="valid"), label=f"mean of {k}"
    )
    axes[0].set(xlabel="step", ylabel="training loss", yscale="log", title="training loss")
    axes[0].legend()
    val = [(r["step"], r["val_J"]) for r in log if "val_J" in r]
    if val:
        axes[1].plot(*zip(*val, strict=True), "o-")
    axes[1].set(xlabel="step", ylabel="J", ylim=(0, 1), title="validation J (held-out videos)")
    return axes
