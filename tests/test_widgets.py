"""Explorers driven headlessly: move a control, check what is drawn against hand-worked numbers."""

import math

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from helpers.cues import DESK_OBJECTS  # noqa: E402
from helpers.widgets import desk_scene_explorer  # noqa: E402


def softmax_by_hand(scores):
    e = [math.exp(s) for s in scores]
    return [v / sum(e) for v in e]


def drawn_bar_widths(box):
    bar_ax = box.figure.axes[1]
    return [p.get_width() for p in bar_ax.patches]


def test_desk_explorer_initial_drawing():
    box = desk_scene_explorer(intention="read a book", saliency=1.0)
    # read a book: scores newspaper 1, paper 2, notebook 0, book 3, cup 0 + 1
    assert drawn_bar_widths(box) == pytest.approx(softmax_by_hand([1, 2, 0, 3, 1]), abs=1e-6)
    assert box.state["winner"] == "book"


def test_desk_explorer_saliency_slider_moves_the_weight_to_the_cup():
    box = desk_scene_explorer(intention="read a book", saliency=1.0)
    before = drawn_bar_widths(box)
    box.controls["saliency"].value = 4.0
    after = drawn_bar_widths(box)
    assert after == pytest.approx(softmax_by_hand([1, 2, 0, 3, 4]), abs=1e-6)
    cup = DESK_OBJECTS.index("red coffee cup")
    assert after[cup] > before[cup]
    assert box.state["winner"] == "red coffee cup"
    assert "saliency 4.0" in box.figure.axes[0].get_title()


def test_desk_explorer_intention_dropdown():
    box = desk_scene_explorer(intention="read a book", saliency=0.0)
    box.controls["intention"].value = "take notes"
    assert drawn_bar_widths(box) == pytest.approx(softmax_by_hand([0, 0, 3, 0, 0]), abs=1e-6)
    assert box.state["winner"] == "notebook"
    box.controls["intention"].value = "nothing in particular"
    assert drawn_bar_widths(box) == pytest.approx([0.2] * 5, abs=1e-6)


def test_desk_explorer_rejects_unknown_intention():
    with pytest.raises(Exception, match="sleep"):
        desk_scene_explorer(intention="sleep")
