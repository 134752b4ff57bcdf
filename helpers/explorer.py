"""What every explorer and every self-check shares.

An explorer is a box of controls above a picture. Its figure is made once; each control change
calls `draw(**values)`, which updates the figure's artists in place and returns the numbers it drew,
and the figure is sent to the page as a PNG in an `ipywidgets.Image` (no re-layout, no tight-bbox
double render). That keeps a redraw well under 100 ms, fast enough for a dragged slider.

A self-check takes the reader's answer and prints whether it is right, with a hint when it is not.
`self_check` gives every check the same contract: the untouched placeholder `None` asks for an
answer, an exception raised by the reader's code is caught and explained, and the answer is never
printed.

Only the ipywidgets API common to 7.7 (Colab) and 8.x is used.
"""

from __future__ import annotations

import functools
import inspect
import io
import math
import time
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "CHECKS",
    "REPLACE_NONE",
    "as_number",
    "build_explorer",
    "check",
    "figure_png",
    "matches",
    "self_check",
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
# Self-checks
# ---------------------------------------------------------------------------------------------

REPLACE_NONE = "Replace None with your answer, then run the cell again."

CHECKS: list[Callable[..., bool]] = []  # every check made with `self_check`, for the tests


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


class _ReaderError(Exception):
    """The reader's answer (or function) raised while being checked."""


def self_check(fn: Callable[..., bool]) -> Callable[..., bool]:
    """Give a check the book's contract. Its first argument is the reader's answer.

    - `None` (the untouched placeholder): prints `REPLACE_NONE` and returns False, nothing else;
    - an exception from the reader's function or from a malformed answer: explained, returns False;
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
        except _ReaderError as err:
            print(f"Not yet: {err}")
            return False
        except Exception as err:  # the reader's code may fail in any way
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
        raise _ReaderError(f"{name} should be a number, not {answer!r}.")
    try:
        value = float(answer)
    except (TypeError, ValueError, RuntimeError):
        raise _ReaderError(
            f"{name} should be a number (int or float), got {type(answer).__name__}."
        ) from None
    if not math.isfinite(value):
        raise _ReaderError(f"{name} should be a finite number, got {value}.")
    return value


def matches(answer: Any, want: Any, atol: float = 1e-4, name: str = "your answer") -> bool:
    """True when `answer` (tensor, array or nested list) has want's shape and values within atol.

    A shape mismatch raises a reader-facing message that names both shapes.
    """
    import torch

    try:
        got = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise _ReaderError(
            f"{name} should be a tensor or a list of numbers, got {type(answer).__name__}."
        ) from None
    want = torch.as_tensor(want).detach().cpu().double()
    if got.shape != want.shape:
        raise _ReaderError(
            f"{name} has shape {tuple(got.shape)}; the exercise asks for shape "
            f"{tuple(want.shape)}."
        )
    return bool(torch.allclose(got, want, atol=atol, rtol=0))
