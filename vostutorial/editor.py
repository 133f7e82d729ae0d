"""A mask editor for JupyterLab: paint the objects of one frame, to track them through a clip.

Brush and eraser with a size, polygons, several objects (each an id with its DAVIS palette
colour), undo, clear and zoom. The mask and every edit are plain numpy (`MaskEditor.dab`,
`click_polygon`, `undo`: testable without a browser); ipycanvas only shows the frame under the
mask and brings the mouse's events to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .data.palette import PALETTE

if TYPE_CHECKING:  # widgets load when an editor is made: the package imports without them
    from ipywidgets import VBox

TOOLS = ("brush", "eraser", "polygon")


class MaskEditor:
    """``MaskEditor(frame (H, W, 3) uint8, mask (H, W) ids or None)``; ``editor.widget`` shows
    it, ``editor.mask`` is the result (uint8 object ids, 0 = background)."""

    def __init__(
        self, frame: np.ndarray, mask: np.ndarray | None = None, objects: int = 4, zoom: float = 1
    ):
        self.frame = np.asarray(frame, np.uint8)
        h, w = self.frame.shape[:2]
        self.mask = np.zeros((h, w), np.uint8) if mask is None else np.array(mask, np.uint8)
        if self.mask.shape != (h, w):
            raise ValueError(f"mask is {self.mask.shape}, the frame {(h, w)}")
        self.object, self.tool, self.size = 1, "brush", max(2, min(h, w) // 25)
        self.polygon: list[tuple[float, float]] = []
        self.history: list[np.ndarray] = []  # masks before each edit, for undo
        self._last: tuple[float, float] | None = None  # the stroke's previous point
        self.widget = self._build(objects, zoom)

    # --- editing: plain numpy ---------------------------------------------------------------
    def begin(self, x: float, y: float) -> None:
        """Mouse down: a stroke starts (brush, eraser) or a polygon gets a vertex."""
        if self.tool == "polygon":
            self.click_polygon(x, y)
            return
        self.history.append(self.mask.copy())
        self._last = None
        self.dab(x, y)

    def dab(self, x: float, y: float) -> None:
        """Paint (or erase) a disc of diameter ``size`` at ``(x, y)``, joined to the stroke's
        previous point so that a fast mouse leaves no gaps."""
        value = 0 if self.tool == "eraser" else self.object
        x0, y0 = self._last if self._last is not None else (x, y)
        steps = max(1, int(np.hypot(x - x0, y - y0) / max(1, self.size / 3)))
        yy, xx = np.ogrid[: self.mask.shape[0], : self.mask.shape[1]]
        for t in np.linspace(0, 1, steps + 1):
            cx, cy = x0 + t * (x - x0), y0 + t * (y - y0)
            self.mask[(xx - cx) ** 2 + (yy - cy) ** 2 <= (self.size / 2) ** 2] = value
        self._last = (x, y)

    def end(self) -> None:
        """Mouse up: the stroke is over."""
        self._last = None

    def click_polygon(self, x: float, y: float) -> None:
        """A vertex; a click near the first one (within ``size``) closes and fills it."""
        if len(self.polygon) >= 3 and np.hypot(*np.subtract((x, y), self.polygon[0])) <= self.size:
            self.history.append(self.mask.copy())
            img = Image.new("L", self.mask.shape[::-1], 0)
            ImageDraw.Draw(img).polygon(self.polygon, fill=1, outline=1)
            self.mask[np.asarray(img, bool)] = self.object
            self.polygon = []
        else:
            self.polygon.append((x, y))

    def undo(self) -> None:
        """Back to the mask before the last stroke, polygon or clear."""
        if self.history:
            self.mask[:] = self.history.pop()
        self.polygon = []

    def clear(self) -> None:
        self.history.append(self.mask.copy())
        self.mask[:] = 0
        self.polygon = []

    def overlay(self, alpha: float = 0.55) -> np.ndarray:
        """The frame with each object's pixels tinted in its palette colour ``(H, W, 3)``."""
        tint = np.where(self.mask[..., None] > 0, alpha, 0.0)
        return (self.frame * (1 - tint) + PALETTE[self.mask] * tint).astype(np.uint8)

    # --- display: ipycanvas and ipywidgets --------------------------------------------------
    def _build(self, objects: int, zoom: float) -> VBox:
        import ipywidgets as w
        from ipycanvas import Canvas

        h, w_ = self.mask.shape
        self.canvas = Canvas(width=w_, height=h, layout=w.Layout(width=f"{w_ * zoom:.0f}px"))
        self.canvas.on_mouse_down(self._down)
        self.canvas.on_mouse_move(self._move)
        self.canvas.on_mouse_up(self._up)
        self.canvas.on_mouse_out(self._up)
        self._pressed = False
        colours = [(f"object {i}", i) for i in range(1, objects + 1)]
        pick = w.Dropdown(options=colours, value=1, description="object")
        tool = w.ToggleButtons(options=TOOLS, value="brush")
        size = w.IntSlider(value=self.size, min=1, max=max(4, min(h, w_) // 4), description="size")
        scale = w.FloatSlider(value=zoom, min=0.5, max=4, step=0.25, description="zoom")
        undo, clear = w.Button(description="undo"), w.Button(description="clear")
        pick.observe(lambda c: setattr(self, "object", c["new"]), "value")
        tool.observe(lambda c: setattr(self, "tool", c["new"]), "value")
        size.observe(lambda c: setattr(self, "size", c["new"]), "value")
        scale.observe(
            lambda c: setattr(self.canvas.layout, "width", f"{w_ * c['new']:.0f}px"), "value"
        )
        undo.on_click(lambda _: (self.undo(), self.redraw()))
        clear.on_click(lambda _: (self.clear(), self.redraw()))
        self.redraw()
        controls = w.HBox([pick, tool, size, scale, undo, clear], layout=w.Layout(flex_flow="wrap"))
        return w.VBox([controls, self.canvas])

    def _down(self, x: float, y: float) -> None:
        self._pressed = self.tool != "polygon"
        self.begin(x, y)
        self.redraw()

    def _up(self, x: float, y: float) -> None:
        self._pressed = False
        self.end()

    def _move(self, x: float, y: float) -> None:
        if self._pressed:
            self.dab(x, y)
            self.redraw()

    def redraw(self) -> None:
        """Show the frame under the current mask (and the polygon's vertices so far)."""
        self.canvas.put_image_data(self.overlay(), 0, 0)
        if self.polygon:
            self.canvas.stroke_style = "white"
            self.canvas.stroke_lines(self.polygon)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
