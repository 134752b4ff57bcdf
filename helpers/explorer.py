"""What every explorer and every self-check shares.

An explorer is a box of controls above a picture. Its figure is made once; each control change
calls `draw(**values)`, which updates the figure's artists in place and returns the numbers it drew,
and the figure is sent to the page as a PNG in an `ipywidgets.Image` (no re-layout, no tight-bbox
double render). That keeps a redraw well under 100 ms, fast enough for a dragged slider.

A self-check takes the reader's answer and prints whether it is right, with a hint when it is not.
`self_check` gives every check the same contract: the untouched placeholder `None` asks for an
answer, a malformed answer (`ReaderError`) or an exception raised by the reader's own code is
caught and explained, and the answer is never printed. An exception from the check's own code is
not a wrong answer: it propagates, so a broken check can never pass as a rejection.

Only the ipywidgets API common to 7.7 (Colab) and 8.x is used.
"""

from __future__ import annotations

import base64
import functools
import inspect
import io
import math
import os
import sysconfig
import time
import warnings
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "CHECKS",
    "ReaderError",
    "REPLACE_NONE",
    "as_choice",
    "as_number",
    "as_tensor",
    "build_explorer",
    "check",
    "explorer_by_model_id",
    "figure_png",
    "matches",
    "self_check",
    "sweep_frames",
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


# ---------------------------------------------------------------------------------------------
# Frames for a page without a kernel (the static site)
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------

REPLACE_NONE = "Replace None with your answer, then run the cell again."

CHECKS: list[Callable[..., bool]] = []  # every check made with `self_check`, for the tests


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


class ReaderError(Exception):
    """Raised inside a check to tell the reader what is wrong with the form of an answer (type,
    shape); `self_check` prints the message after "Not yet:"."""


_HELPERS_DIR = os.path.dirname(os.path.abspath(__file__))
_LIBRARY_DIRS = tuple(
    {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib",
                                                         "platlib")}
)


def _raised_in_reader_code(err: BaseException) -> bool:
    """True when a frame of err's traceback is the reader's code (a notebook cell or a file of
    theirs), not this package, the standard library or an installed library."""
    tb = err.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith("<frozen"):
            path = os.path.abspath(name)
            if not path.startswith(_HELPERS_DIR) and not path.startswith(_LIBRARY_DIRS):
                return True
        tb = tb.tb_next
    return False


def self_check(fn: Callable[..., bool]) -> Callable[..., bool]:
    """Give a check the book's contract. Its first argument is the reader's answer.

    - `None` (the untouched placeholder): prints `REPLACE_NONE` and returns False, nothing else;
    - a malformed answer (the check raises `ReaderError`) or an exception raised inside the
      reader's own function: explained, returns False;
    - any other exception is the check's own failure and propagates (never a silent "wrong");
    - otherwise the check itself decides and prints praise or a hint (never the answer).

    Every check must be callable with the answer alone (other parameters have defaults), so one
    test can hold all of them to this contract.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(answer: Any = None, *args: Any, **kwargs: Any) -> bool:
        signature.bind(answer, *args, **kwargs)  # a wrong call is the notebook's bug: let it raise
        if answer is None:
            print(REPLACE_NONE)
            return False
        try:
            return bool(fn(answer, *args, **kwargs))
        except ReaderError as err:
            print(f"Not yet: {err}")
            return False
        except Exception as err:
            if not _raised_in_reader_code(err):
                raise  # the check itself failed: a bug in the book, not a wrong answer
            print(
                f"Not yet: checking your answer raised {type(err).__name__}: {err}. "
                "Look at its type and shape, then try again."
            )
            return False

    CHECKS.append(wrapper)
    return wrapper


def as_number(answer: Any, name: str = "your answer") -> float:
    """A finite float from an int, float, 0-d tensor or array; a clear message otherwise."""
    if isinstance(answer, bool):
        raise ReaderError(f"{name} should be a number, not {answer!r}.")
    try:
        value = float(answer)
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a number (int or float), got {type(answer).__name__}."
        ) from None
    if not math.isfinite(value):
        raise ReaderError(f"{name} should be a finite number, got {value}.")
    return value


def as_tensor(answer: Any, name: str = "your answer", dtype: Any = None):
    """A tensor (float64 unless `dtype`) from a tensor, array or nested list; a clear message
    otherwise."""
    import torch

    try:
        return torch.as_tensor(answer, dtype=dtype or torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a tensor or a (nested) list of numbers, got "
            f"{type(answer).__name__}."
        ) from None


def as_choice(answer: Any, options: tuple[str, ...], name: str = "your answer") -> str:
    """One of `options` (lower case), from a string in any case with any surrounding spaces."""
    if not isinstance(answer, str) or answer.strip().lower() not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ReaderError(f"{name} should be one of the strings {listed}, got {answer!r}.")
    return answer.strip().lower()


def matches(answer: Any, want: Any, atol: float = 1e-4, name: str = "your answer") -> bool:
    """True when `answer` (tensor, array or nested list) has want's shape and values within atol.

    A shape mismatch raises a reader-facing message that names both shapes.
    """
    import torch

    try:
        got = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a tensor or a list of numbers, got {type(answer).__name__}."
        ) from None
    want = torch.as_tensor(want).detach().cpu().double()
    if got.shape != want.shape:
        raise ReaderError(
            f"{name} has shape {tuple(got.shape)}; the exercise asks for shape "
            f"{tuple(want.shape)}."
        )
    return bool(torch.allclose(got, want, atol=atol, rtol=0))
