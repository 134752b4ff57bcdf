"""Frames for a page without a kernel (the static site): every value a control can offer,
rendered once, so a static page can swap pictures when the reader moves a control."""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from helpers.ui.explorer import EXPLORER_DPI

__all__ = ["sweep_frames"]


def _control_values(w: widgets.Widget, max_values: int) -> tuple[str, list[Any], list[str]] | None:
    """(kind, values, labels) a static page can offer for control `w`; None if it cannot."""
    if isinstance(w, (widgets.Checkbox, widgets.ToggleButton)):
        return "checkbox", [False, True], ["off", "on"]
    if hasattr(w, "_options_values"):  # Dropdown, RadioButtons, ToggleButtons, SelectionSlider
        values, labels = list(w._options_values), [str(x) for x in w._options_labels]
        if isinstance(w, widgets.SelectionSlider) and len(values) > max_values:
            keep = sorted(
                {round(i * (len(values) - 1) / (max_values - 1)) for i in range(max_values)}
            )
            keep = _with_default(keep, values.index(w.value))
            values, labels = [values[i] for i in keep], [labels[i] for i in keep]
            return "range", values, labels
        kind = "range" if isinstance(w, widgets.SelectionSlider) else "select"
        return kind, values, labels
    if isinstance(w, widgets.FloatLogSlider):
        grid = [
            w.base**e for e in _grid(w.min, w.max, w.step, math.log(w.value, w.base), max_values)
        ]
        return "range", grid, [f"{v:.3g}" for v in grid]
    if isinstance(
        w,
        (widgets.IntSlider, widgets.FloatSlider, widgets.BoundedIntText, widgets.BoundedFloatText),
    ):
        grid = _grid(w.min, w.max, w.step, w.value, max_values)
        if isinstance(w, (widgets.IntSlider, widgets.BoundedIntText)):
            grid = sorted({int(round(v)) for v in grid})
            return "range", grid, [str(v) for v in grid]
        digits = max(0, -math.floor(math.log10(w.step))) if w.step and w.step > 0 else 3
        return "range", grid, [f"{v:.{digits}f}" for v in grid]
    return None


def _with_default(indexes: list[int], default: int) -> list[int]:
    """`indexes` with the one nearest to `default` replaced by it (so the default is a frame)."""
    if default in indexes:
        return indexes
    nearest = min(range(len(indexes)), key=lambda i: abs(indexes[i] - default))
    return sorted({*indexes[:nearest], default, *indexes[nearest + 1 :]})


def _grid(lo: float, hi: float, step: float, default: float, max_values: int) -> list[float]:
    """At most `max_values` values from lo to hi on the slider's step grid, default included."""
    step = step if step and step > 0 else (hi - lo) / (max_values - 1)
    n_steps = int(round((hi - lo) / step))
    picks = sorted({round(i * n_steps / (max_values - 1)) for i in range(max_values)})
    if n_steps + 1 <= max_values:
        picks = list(range(n_steps + 1))
    picks = _with_default(picks, int(round((default - lo) / step)))
    values = [min(hi, lo + i * step) for i in picks]
    # the default exactly as the widget holds it, also when it is off the step grid
    nearest = min(range(len(values)), key=lambda i: abs(values[i] - default))
    values[nearest] = default
    return values


def _frame(box: widgets.Widget) -> bytes:
    """The PNG the box shows now: rendered from its figure with full compression when it has one."""
    fig = getattr(box, "figure", None)
    if isinstance(fig, Figure):
        if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
            FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(
            buf, format="png", dpi=EXPLORER_DPI, facecolor="white", pil_kwargs={"optimize": True}
        )
        return buf.getvalue()
    return bytes(box.png)


def sweep_frames(box: widgets.Widget, max_values: int = 12) -> dict[str, Any]:
    """Every frame of `box` when one control at a time moves away from its current value.

    For pages without a kernel: sliders take at most `max_values` values across their range (the
    current one included), dropdowns and checkboxes all their options. Returns a JSON-ready dict:
    `title`; `controls`, a list of {name, label, kind ("range", "select" or "checkbox"), labels,
    default (index into labels), fixed (True when the page cannot move it)}; `images`, distinct
    frames as base64 PNGs; and `frames`, mapping a key (the comma-joined label index of every
    control) to an index into `images`. The box is left as it was found.
    """
    if max_values < 2:
        raise ValueError(f"max_values must be at least 2, got {max_values}")
    controls = getattr(box, "controls", None)
    if not isinstance(controls, dict) or not callable(getattr(box, "refresh", None)):
        raise TypeError(f"box must come from build_explorer, got {type(box).__name__}")
    start = {name: w.value for name, w in controls.items()}
    specs = []
    for name, w in controls.items():
        found = _control_values(w, max_values)
        kind, values, labels = found if found else ("fixed", [w.value], [str(w.value)])
        default = min(range(len(values)), key=lambda i: _distance(values[i], w.value))
        specs.append(
            {
                "name": name,
                "label": getattr(w, "description", "") or name,
                "kind": kind,
                "labels": labels,
                "values": values,
                "default": default,
            }
        )
    images: list[str] = []
    seen: dict[bytes, int] = {}
    frames: dict[str, int] = {}

    def record(indexes: list[int]) -> None:
        png = _frame(box)
        if png not in seen:
            seen[png] = len(images)
            images.append(base64.b64encode(png).decode("ascii"))
        frames[",".join(map(str, indexes))] = seen[png]

    defaults = [spec["default"] for spec in specs]
    try:
        box.refresh()
        record(defaults)
        for c, (spec, w) in enumerate(zip(specs, controls.values())):
            for i, value in enumerate(spec["values"]):
                if i == spec["default"]:
                    continue
                w.value = value  # the box redraws through its observer
                record([*defaults[:c], i, *defaults[c + 1 :]])
            w.value = start[spec["name"]]
    finally:
        for name, w in controls.items():
            if w.value != start[name]:
                w.value = start[name]
        box.refresh()
    title = None
    children = getattr(box, "children", ())
    if children and isinstance(children[0], widgets.HTML):
        title = children[0].value
    return {
        "title": title,
        "controls": [
            {k: spec[k] for k in ("name", "label", "kind", "labels", "default")}
            | {"fixed": spec["kind"] == "fixed"}
            for spec in specs
        ],
        "images": images,
        "frames": frames,
    }


def _distance(a: Any, b: Any) -> float:
    if a == b:
        return 0.0
    try:
        return abs(float(a) - float(b))
    except (TypeError, ValueError):
        return math.inf


