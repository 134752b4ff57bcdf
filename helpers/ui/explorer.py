"""Explorer rendering: a box of controls above a picture.

An explorer's figure is made once; each control change calls `draw(**values)`, which updates the
figure's artists in place and returns the numbers it drew, and the figure is sent to the page as a
PNG in an `ipywidgets.Image` (no re-layout, no tight-bbox double render). That keeps a redraw well
under 100 ms, fast enough for a dragged slider.

Only the ipywidgets API common to 7.7 (Colab) and 8.x is used.
"""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "EXPLORER_DPI",
    "build_explorer",
    "control_values",
    "explorer_by_model_id",
    "figure_png",
]

EXPLORER_DPI = 80  # enough for a figure of 8-11 inches in a notebook column; small PNGs


def figure_png(fig: Figure, dpi: int = EXPLORER_DPI) -> bytes:
    """The figure as PNG bytes, rendered once at its own size (no tight bounding box)."""
    if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
        FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # compress_level 1: a few ms instead of ~10 for the default, for PNGs about as small
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def build_explorer(
    controls: dict[str, widgets.Widget],
    draw: Callable[..., tuple[Figure, dict[str, Any]]],
    title: str | None = None,
) -> widgets.VBox:
    """A box with `controls` above the figure that `draw(**values) -> (figure, state)` updates.

    `draw` should return the same figure on every call, updated in place (make the figure and its
    artists once, then set their data); a new figure each call works but is slower. The box
    exposes `controls`, `figure`, `state` (the numbers last drawn), `png` (the bytes last shown),
    `refresh()` and `redraw_times` (seconds per redraw, PNG included), so tests and benchmarks
    can move a control and check what changed without a browser.
    """
    image = widgets.Image(format="png")
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    box = widgets.VBox([*header, widgets.HBox(list(controls.values())), image])
    box.controls = controls
    box.image = image
    box.figure = None
    box.state = {}
    box.png = b""
    box.redraw_times = []

    def refresh(_change=None) -> None:
        start = time.perf_counter()
        values = {name: w.value for name, w in controls.items()}
        fig, state = draw(**values)
        box.figure, box.state = fig, state
        box.png = figure_png(fig)
        image.value = box.png
        box.redraw_times.append(time.perf_counter() - start)

    for w in controls.values():
        w.observe(refresh, names="value")
    box.refresh = refresh
    refresh()
    return box


def control_values(control: widgets.Widget, n: int) -> list:
    """Values of a control in order, covering its whole range from end to end: every option of
    a dropdown, both values of a checkbox, every value of an integer slider that has at most `n`,
    else `n` evenly spaced values (on the slider's step; evenly in the exponent for a log
    slider). Tests sweep a control through them; benchmarks time the redraws."""
    if getattr(control, "options", None):
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    if isinstance(control.value, bool):
        return [False, True]
    lo, hi = control.min, control.max
    if isinstance(control.value, int):
        every = list(range(lo, hi + 1, getattr(control, "step", 1) or 1))
        if len(every) <= n:
            return every
        return sorted({every[round(i)] for i in np.linspace(0, len(every) - 1, n)})
    grid = np.linspace(lo, hi, n)
    if hasattr(control, "base"):  # FloatLogSlider: min and max are exponents
        grid = control.base**grid
    elif getattr(control, "step", None):  # values the slider can hold
        grid = np.unique(lo + np.round((grid - lo) / control.step) * control.step)
    return [float(v) for v in grid]


def explorer_by_model_id(model_id: str) -> widgets.Widget | None:
    """The live explorer box whose widget model has this id (as a notebook output names it)."""
    from ipywidgets.widgets import widget as _widget

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        registry = getattr(_widget, "_instances", None)  # ipywidgets 8
        if registry is None:
            registry = widgets.Widget.widgets  # ipywidgets 7
    box = registry.get(model_id)
    if box is None or not isinstance(getattr(box, "controls", None), dict):
        return None
    return box


