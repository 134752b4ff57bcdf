"""The book's interactive explorers (ipywidgets + inline matplotlib).

Each explorer is a function that builds and returns a widget box. What it draws is computed by
plain functions (tested directly), and every box exposes `controls` (name -> control widget),
`figure` (the matplotlib figure last drawn) and `state` (the numbers last drawn), so tests can move
a control and check what changed without a browser. Only the ipywidgets API common to 7.7 (Colab)
and 8.x is used; figures are drawn inline (no ipympl).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

__all__ = ["build_explorer"]


def build_explorer(
    controls: dict[str, widgets.Widget],
    draw: Callable[..., tuple[Figure, dict[str, Any]]],
    title: str | None = None,
) -> widgets.VBox:
    """A box with `controls` above an output area; `draw(**values)` -> (figure, state) redraws it.

    `draw` is called once now and again whenever a control's value changes.
    """
    out = widgets.Output()
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    box = widgets.VBox([*header, widgets.HBox(list(controls.values())), out])
    box.controls = controls
    box.figure = None
    box.state = {}

    def refresh(_change=None) -> None:
        values = {name: w.value for name, w in controls.items()}
        fig, state = draw(**values)
        if box.figure is not None and box.figure is not fig:
            plt.close(box.figure)
        box.figure, box.state = fig, state
        with out:
            out.clear_output(wait=True)
            display(fig)

    for w in controls.values():
        w.observe(refresh, names="value")
    box.refresh = refresh
    refresh()
    return box


# ---------------------------------------------------------------------------------------------
# Chapter 00: the desk scene
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 02-03: Nadaraya-Watson explorers (kernel / bandwidth / query; loss as a function of w)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05: self-attention stepper and scoring explorers
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07: multi-head and seq2seq explorers
# ---------------------------------------------------------------------------------------------
