"""Chapter 0, attention cues: the desk-scene explorer and the exercises' self-checks.

The scores and weights it draws come from `helpers.cues`; this module only draws them and checks
the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from helpers.cues import (
    DESK_INTENTIONS,
    DESK_KEYS,
    DESK_OBJECTS,
    LOOKUP_KEYS,
    desk_query,
    desk_scene_weights,
)
from helpers.plotting import freeze_background
from helpers.ui.checks import ReaderError, as_number, as_tensor, check, matches, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "CROWDED_DESKS",
    "EXPLORER_DEMOS",
    "LETTER_INTENTION",
    "LETTER_SALIENCY",
    "THREE_CUPS_SALIENCY",
    "check_crowded_desk_saliency",
    "check_letter_weights",
    "check_soft_lookup",
    "check_three_cups_share",
    "desk_scene_explorer",
]


# ---------------------------------------------------------------------------------------------
# The desk-scene explorer
# ---------------------------------------------------------------------------------------------

_PLACES = [(0.4, 2.8), (2.3, 0.6), (4.4, 2.8), (6.3, 0.6), (7.9, 2.9)]  # lower-left corners


def desk_scene_explorer(intention: str = "read a book", saliency: float = 1.0) -> widgets.VBox:
    """Pick an intention (volitional cue) and a saliency strength; see who gets the attention.

    Left: the desk, each object's outline as thick as its weight. Right: the weights as bars, the
    winner in red. State: `query` (5,), `weights` (5,), `winner` and `titles` (desk, bars).
    """
    desk_query(intention, saliency)  # a clear ValueError/TypeError for bad arguments
    fig = Figure(figsize=(8.0, 2.8))
    ax_desk = fig.add_axes((0.01, 0.02, 0.46, 0.86))
    ax_bar = fig.add_axes((0.66, 0.18, 0.31, 0.7))
    ax_desk.add_patch(Rectangle((0, 0), 10, 5, color="burlywood", alpha=0.35))
    shapes, labels = [], []
    for (x, y), name in zip(_PLACES, DESK_OBJECTS):
        if name == "red coffee cup":
            shape = Circle((x + 0.7, y + 0.8), 0.7, fc="red", ec="black", lw=1)
        else:
            shape = Rectangle((x, y), 1.6, 1.9, fc="white", ec="black", lw=1)
        shapes.append(ax_desk.add_patch(shape))
        labels.append(ax_desk.text(x + 0.8, y - 0.35, name, ha="center", va="top", fontsize=7))
    ax_desk.set_xlim(-0.2, 10.2)
    ax_desk.set_ylim(-0.9, 5.2)
    ax_desk.set_aspect("equal")
    ax_desk.axis("off")
    # Titles as plain texts (they change), bars at numeric positions with fixed tick labels.
    title_style = {"ha": "center", "va": "bottom", "fontsize": 9}
    desk_title = ax_desk.text(0.5, 1.02, "", transform=ax_desk.transAxes, **title_style)
    n = len(DESK_OBJECTS)
    bars = ax_bar.barh(range(n), [0.0] * n, color="tab:gray")
    ax_bar.set_yticks(range(n), DESK_OBJECTS, fontsize=8)
    ax_bar.set_xlim(0, 1)
    ax_bar.set_xticks([0, 0.5, 1])
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("attention weight")
    bar_title = ax_bar.text(0.5, 1.02, "", transform=ax_bar.transAxes, **title_style)
    # Axes, ticks and the desk itself are drawn once; each redraw draws only what changes.
    freeze_background(fig, [*shapes, *labels, *bars, desk_title, bar_title], dpi=EXPLORER_DPI)

    def draw(intention: str, saliency: float) -> tuple[Figure, dict[str, Any]]:
        weights = desk_scene_weights(intention, saliency)  # (5,)
        winner = DESK_OBJECTS[int(weights.argmax())]
        for shape, label, bar, name, w in zip(shapes, labels, bars, DESK_OBJECTS, weights.tolist()):
            shape.set_linewidth(1 + 6 * w)
            label.set_text(f"{name}\n{w:.2f}")
            bar.set_width(w)
            bar.set_color("tab:red" if name == winner else "tab:gray")
        desk_title.set_text(f"intention: {intention}; saliency strength {saliency:.1f}")
        bar_title.set_text(f"most attention: {winner}")
        state = {
            "query": desk_query(intention, saliency).tolist(),
            "weights": weights.tolist(),
            "winner": winner,
            "titles": [desk_title.get_text(), bar_title.get_text()],
        }
        return fig, state

    controls = {
        "intention": widgets.Dropdown(
            options=list(DESK_INTENTIONS), value=intention, description="intention"
        ),
        "saliency": widgets.FloatSlider(
            value=saliency,
            min=0.0,
            max=5.0,
            step=0.1,
            description="saliency",
            continuous_update=True,
        ),
    }
    return build_explorer(controls, draw, title="Which object gets the attention?")


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"desk scene": desk_scene_explorer}

# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


# Exercise 1: the intention "write a letter" (blank pages 2, hot drink 1), not in DESK_INTENTIONS.
LETTER_INTENTION = (0.0, 0.0, 2.0, 1.0)
LETTER_SALIENCY = 1.5


@self_check
def check_letter_weights(weights: Any) -> bool:
    """Exercise 1: the five weights for "write a letter" at saliency strength 1.5, by hand."""
    query = torch.tensor([*LETTER_INTENTION, LETTER_SALIENCY])  # (5,), written out
    want = torch.softmax(DESK_KEYS @ query, dim=0)  # (5, 5) @ (5,) -> (5,)
    if not matches(weights, want, atol=1e-3, name="your weights"):
        got = as_tensor(weights, "your weights")  # (5,), the shape matched
        if (got < 0).any() or abs(got.sum().item() - 1) > 1e-3:
            hint = (
                "weights are non-negative and add up to 1: divide each exp by the sum of all five."
            )
        else:
            hint = (
                "the query has five entries: the four of the intention (printed text, long read, "
                "blank pages, hot drink), then the saliency strength. An object's score is the "
                "dot product of the query with its key: the cup's key has two 1s."
            )
        return check(False, hint)
    return check(
        True,
        "",
        "Correct! The cup wins although blank pages matter twice as much as the drink: its score "
        "adds the drink's 1 to the saliency's 1.5 and overtakes the notebook's 2.",
    )


# Exercise 2: desks with this many black-and-white papers and one red cup.
CROWDED_DESKS = (4, 9, 99)


@self_check
def check_crowded_desk_saliency(prediction: Any) -> bool:
    """Exercise 2 (predict first): for 4, 9 and 99 papers, the strength s giving the cup half."""
    got = as_tensor(prediction, "your prediction", torch.float64)
    if got.shape != (len(CROWDED_DESKS),):
        raise ReaderError(
            f"your prediction has shape {tuple(got.shape)}; give three strengths, one for each "
            f"desk {CROWDED_DESKS} (papers), in that order."
        )
    if not torch.isfinite(got).all() or (got < 0).any():
        raise ReaderError("a saliency strength is a finite number, at least 0.")
    want = torch.tensor([math.log(n) for n in CROWDED_DESKS], dtype=torch.float64)  # (3,)
    return check(
        bool(((got - want).abs() <= 0.01).all()),
        "with no intention every paper scores 0 and the cup scores s. Write the cup's weight as "
        "its exp over the sum of all the exps, with n papers, and set it to 1/2.",
        "Correct! The cup's exp must match all the papers' exps together: the more there is to "
        "ignore, the stronger the pull has to be, but it grows only like the log of the crowd.",
    )


@self_check
def check_soft_lookup(query: Any) -> bool:
    """Exercise 3: a query (4,) whose softmax over LOOKUP_KEYS gives key 1 at least 0.9."""
    q = as_tensor(query, "the query", torch.float32)
    if q.shape != (4,):
        raise ReaderError(f"the query has shape {tuple(q.shape)}; the keys need shape (4,).")
    if not torch.isfinite(q).all():
        raise ReaderError("the query has entries that are not finite numbers.")
    weights = torch.softmax(LOOKUP_KEYS @ q, dim=0)  # (4, 4) @ (4,) -> (4,)
    return check(
        weights[1].item() >= 0.9,
        "key 1 must win, and by a margin: its score q·k_1 has to exceed the other three scores "
        "by enough that its exp is at least 9 times their exps together. Scale the query up.",
        "Correct! The larger the gap between the matching score and the others, the closer a "
        "soft match comes to an exact lookup.",
    )


# Exercise 4: the desk with two more red cups, no intention, saliency strength 2.
THREE_CUPS_SALIENCY = 2.0


@self_check
def check_three_cups_share(share: Any) -> bool:
    """Exercise 4: the weight of three identical red cups together among four papers, at s = 2."""
    got = as_number(share, "your share")
    e = math.exp(THREE_CUPS_SALIENCY)  # each cup's exp; each paper scores 0, exp 1
    want = 3 * e / (3 * e + 4)
    return check(
        abs(got - want) <= 1e-3,
        "with no intention every paper scores 0 and every red cup scores s. The softmax now runs "
        "over seven objects: add the three cups' weights, each its exp over the sum of all seven.",
        "Correct! Together the cups take more than the lone cup did, each one less: with keys "
        "that describe each object alone, more red on the desk draws more attention.",
    )
