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
from matplotlib.patches import Circle, Rectangle

__all__ = ["build_explorer", "desk_scene_explorer", "draw_desk_scene"]


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


def draw_desk_scene(intention: str, saliency: float) -> tuple[Figure, dict[str, Any]]:
    """The desk (objects shaded by their weight) beside a bar chart of the weights."""
    from helpers.cues import DESK_OBJECTS, desk_scene_weights

    weights = desk_scene_weights(intention, saliency)  # (5,)
    winner = DESK_OBJECTS[int(weights.argmax())]
    fig = Figure(figsize=(8, 2.8))
    ax_desk, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    ax_desk.add_patch(Rectangle((0, 0), 10, 5, color="burlywood", alpha=0.35))
    places = [(0.4, 2.8), (2.3, 0.6), (4.4, 2.8), (6.3, 0.6), (7.9, 2.9)]
    for (x, y), name, w in zip(places, DESK_OBJECTS, weights.tolist()):
        edge = 1 + 6 * w
        if name == "red coffee cup":
            ax_desk.add_patch(Circle((x + 0.7, y + 0.8), 0.7, fc="red", ec="black", lw=edge))
        else:
            ax_desk.add_patch(Rectangle((x, y), 1.6, 1.9, fc="white", ec="black", lw=edge))
        ax_desk.text(x + 0.8, y - 0.35, f"{name}\n{w:.2f}", ha="center", va="top", fontsize=7)
    ax_desk.set_xlim(-0.2, 10.2)
    ax_desk.set_ylim(-0.9, 5.2)
    ax_desk.set_aspect("equal")
    ax_desk.axis("off")
    ax_desk.set_title(f"intention: {intention}; saliency {saliency:.1f}", fontsize=9)
    colors = ["tab:red" if n == winner else "tab:gray" for n in DESK_OBJECTS]
    ax_bar.barh(list(DESK_OBJECTS), weights.tolist(), color=colors)
    ax_bar.set_xlim(0, 1)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("attention weight")
    ax_bar.set_title(f"most attention: {winner}", fontsize=9)
    fig.tight_layout()
    return fig, {"weights": weights.tolist(), "winner": winner}


def desk_scene_explorer(intention: str = "read a book", saliency: float = 1.0) -> widgets.VBox:
    """Pick an intention (volitional cue) and a saliency strength (non-volitional cue)."""
    from helpers.cues import DESK_INTENTIONS, desk_scene_scores

    desk_scene_scores(intention, saliency)  # a clear ValueError/TypeError for bad arguments
    controls = {
        "intention": widgets.Dropdown(
            options=list(DESK_INTENTIONS), value=intention, description="intention"
        ),
        "saliency": widgets.FloatSlider(
            value=saliency, min=0.0, max=5.0, step=0.1, description="saliency"
        ),
    }
    return build_explorer(controls, draw_desk_scene, title="Which object gets the attention?")


# ---------------------------------------------------------------------------------------------
# Chapters 02-03: Nadaraya-Watson explorers (kernel / bandwidth / query; loss as a function of w)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05: self-attention stepper and scoring explorers
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07: multi-head and seq2seq explorers
# ---------------------------------------------------------------------------------------------
