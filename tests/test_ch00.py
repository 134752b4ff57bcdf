"""Chapter 00: the desk-scene explorer and the self-checks, against softmaxes worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check
from matplotlib.colors import to_rgba

from helpers import cues
from helpers.cues import DESK_INTENTIONS, DESK_OBJECTS
from helpers.ui import ch00
from helpers.ui.checks import REPLACE_NONE

# The scene written out by hand: (intention features, saliency of each object).
_KEYS = [[1, 0, 0, 0], [1, 0.5, 0, 0], [0, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]]
_STANDS_OUT = [0, 0, 0, 0, 1]
_INTENT = {
    "nothing in particular": [0, 0, 0, 0],
    "read a book": [1, 2, 0, 0],
    "take notes": [0, 0, 3, 0],
    "drink coffee": [0, 0, 0, 3],
}


def _weights_by_hand(intention, s):
    q = _INTENT[intention]
    scores = [sum(a * b for a, b in zip(q, k)) + s * o for k, o in zip(_KEYS, _STANDS_OUT)]
    e = [math.exp(a) for a in scores]
    return [v / sum(e) for v in e]


# --- the explorer ----------------------------------------------------------------------------


def test_explorer_draws_the_weights_in_place_for_every_control():
    box = ch00.desk_scene_explorer(intention="read a book", saliency=1.0)
    fig = box.figure
    ax_desk, ax_bar = fig.axes
    for intention in DESK_INTENTIONS:
        box.controls["intention"].value = intention
        for s in (0.0, 2.5, 5.0):
            box.controls["saliency"].value = s
            assert box.figure is fig
            want = _weights_by_hand(intention, s)
            np.testing.assert_allclose(box.state["weights"], want, atol=1e-6)
            assert box.state["query"] == [*_INTENT[intention], s]
            widths = [bar.get_width() for bar in ax_bar.patches]
            np.testing.assert_allclose(widths, want, atol=1e-6)
            winner = DESK_OBJECTS[int(np.argmax(want))] if max(want) - min(want) > 1e-9 else None
            if winner is not None:
                assert box.state["winner"] == winner
                red = [
                    DESK_OBJECTS[i]
                    for i, b in enumerate(ax_bar.patches)
                    if b.get_facecolor() == to_rgba("tab:red")
                ]
                assert red == [winner]
                assert box.state["titles"][1] == f"most attention: {winner}"
            # the outlines: 1 + 6 * weight, objects are the desk's patches after the desk itself
            outlines = [p.get_linewidth() for p in ax_desk.patches[1:]]
            np.testing.assert_allclose(outlines, [1 + 6 * w for w in want], atol=1e-6)
            desk_title = box.state["titles"][0]
            assert f"{s:.1f}" in desk_title and intention in desk_title
            assert desk_title in [t.get_text() for t in ax_desk.texts if t.get_visible()]


def test_explorer_reads_the_cup_overtaking_the_book_at_strength_3():
    box = ch00.desk_scene_explorer(intention="read a book", saliency=2.9)
    assert box.state["winner"] == "book"
    box.controls["saliency"].value = 3.1
    assert box.state["winner"] == "red coffee cup"


def test_explorer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="intention"):
        ch00.desk_scene_explorer(intention="sleep")
    with pytest.raises(ValueError, match="saliency"):
        ch00.desk_scene_explorer(saliency=-1.0)


def test_demo_builds():
    box = ch00.EXPLORER_DEMOS["desk scene"]()
    assert box.png.startswith(b"\x89PNG") and set(box.controls) == {"intention", "saliency"}


# --- the self-checks -------------------------------------------------------------------------


def _letter_weights_by_hand(q):
    """Softmax over the five objects for a query q (five numbers), written out."""
    scores = [sum(a * b for a, b in zip(q, [*k, o])) for k, o in zip(_KEYS, _STANDS_OUT)]
    e = [math.exp(a) for a in scores]
    return [v / sum(e) for v in e]


def test_letter_weights(capsys):
    # write a letter: blank pages 2, hot drink 1; s = 1.5. Scores 0, 0, 2, 0, 1 + 1.5.
    e2, e25 = math.exp(2.0), math.exp(2.5)
    z = 3 + e2 + e25
    want = [1 / z, 1 / z, e2 / z, 1 / z, e25 / z]
    assert want == pytest.approx(_letter_weights_by_hand([0, 0, 2, 1, 1.5]))
    assert ch00.LETTER_INTENTION == (0, 0, 2, 1) and ch00.LETTER_SALIENCY == 1.5
    assert max(range(5), key=want.__getitem__) == 4  # the cup wins, as the praise says
    assert run_check(ch00.check_letter_weights, want, capsys)[0]
    assert run_check(ch00.check_letter_weights, [round(w, 4) for w in want], capsys)[0]
    assert run_check(ch00.check_letter_weights, torch.tensor(want), capsys)[0]
    # the named intentions pasted from desk_scene_weights, the saliency or the drink forgotten
    wrongs = [
        _weights_by_hand("take notes", 1.5),
        _weights_by_hand("drink coffee", 1.5),
        _letter_weights_by_hand([0, 0, 2, 1, 0]),
        _letter_weights_by_hand([0, 0, 2, 0, 1.5]),
        _letter_weights_by_hand([0, 0, 1, 2, 1.5]),
        [0.2] * 5,
    ]
    for wrong in wrongs:
        ok, out = run_check(ch00.check_letter_weights, wrong, capsys)
        assert not ok and "Hint" in out and "dot product" in out and f"{want[4]:.3f}" not in out
    ok, out = run_check(ch00.check_letter_weights, [0, 0, 2, 0, 2.5], capsys)  # the scores
    assert not ok and "add up to 1" in out
    ok, out = run_check(ch00.check_letter_weights, want[:4], capsys)
    assert not ok and "shape" in out
    assert run_check(ch00.check_letter_weights, None, capsys) == (False, REPLACE_NONE + "\n")


def _cup_share(n_papers, s):
    """The cup's weight with no intention: n papers score 0, the cup scores s."""
    return math.exp(s) / (n_papers + math.exp(s))


def test_crowded_desk_saliency(capsys):
    # e^s / (n + e^s) = 1/2  <=>  e^s = n, found by bisection rather than by the formula
    want = []
    for n in (4, 9, 99):
        lo, hi = 0.0, 20.0
        for _ in range(200):
            lo, hi = (
                ((lo + hi) / 2, hi) if _cup_share(n, (lo + hi) / 2) < 0.5 else (lo, (lo + hi) / 2)
            )
        want.append(lo)
    assert ch00.CROWDED_DESKS == (4, 9, 99)
    assert _weights_by_hand("nothing in particular", want[0])[4] == pytest.approx(0.5)
    assert run_check(ch00.check_crowded_desk_saliency, want, capsys)[0]
    assert run_check(ch00.check_crowded_desk_saliency, torch.tensor(want), capsys)[0]
    assert run_check(ch00.check_crowded_desk_saliency, [1.39, 2.2, 4.6], capsys)[0]
    wrongs = (
        [math.log(5), math.log(10), math.log(100)],  # counted the cup among the papers
        [want[0], want[0], want[0]],  # the desk above, read off the slider, three times
        [want[0], want[1], 4.5],
        [2.0, 4.5, 49.5],  # n / 2
    )
    for wrong in wrongs:
        ok, out = run_check(ch00.check_crowded_desk_saliency, wrong, capsys)
        assert not ok and "Hint" in out and "1.39" not in out and "log" not in out
    ok, out = run_check(ch00.check_crowded_desk_saliency, want[0], capsys)
    assert not ok and "three strengths" in out
    ok, out = run_check(ch00.check_crowded_desk_saliency, [1.4, -1, 4.6], capsys)
    assert not ok and "at least 0" in out
    ok, out = run_check(ch00.check_crowded_desk_saliency, ["a", "b", "c"], capsys)
    assert not ok and "tensor" in out
    assert run_check(ch00.check_crowded_desk_saliency, None, capsys) == (False, REPLACE_NONE + "\n")


def test_soft_lookup(capsys):
    # key 1 gets e^b / (e^b + 3) >= 0.9 for b >= log 27 ~ 3.30
    assert run_check(ch00.check_soft_lookup, [0, 3.4, 0, 0], capsys)[0]
    assert run_check(ch00.check_soft_lookup, torch.tensor([-1.0, 5.0, -1.0, 0.0]), capsys)[0]
    for wrong in ([0, 3.2, 0, 0], [0, 0, 2, 0], [1, 1, 1, 1]):
        ok, out = run_check(ch00.check_soft_lookup, wrong, capsys)
        assert not ok and "Hint" in out
    ok, out = run_check(ch00.check_soft_lookup, [0, 5, 0], capsys)
    assert not ok and "shape" in out
    ok, out = run_check(ch00.check_soft_lookup, [0, float("nan"), 0, 0], capsys)
    assert not ok and "finite" in out
    assert run_check(ch00.check_soft_lookup, None, capsys) == (False, REPLACE_NONE + "\n")


def test_lookup_database():
    assert torch.equal(cues.LOOKUP_KEYS, torch.eye(4))
    assert cues.LOOKUP_VALUES.tolist() == [10, 20, 30, 40]


def test_three_cups_share(capsys):
    # seven objects: four papers score 0, three identical red cups score s = 2
    e = math.exp(2.0)
    want = 3 * e / (4 + 3 * e)
    lone = _weights_by_hand("nothing in particular", 2.0)[4]  # the one-cup desk of section 0.6
    assert want > lone and want / 3 < lone  # together more, each less, as the praise says
    assert ch00.THREE_CUPS_SALIENCY == 2.0
    assert run_check(ch00.check_three_cups_share, want, capsys)[0]
    assert run_check(ch00.check_three_cups_share, round(want, 3), capsys)[0]
    assert run_check(ch00.check_three_cups_share, torch.tensor(want), capsys)[0]
    # the lone cup; one cup of the three; three lone cups' shares added; the six-object desk
    for wrong in (lone, want / 3, 3 * lone - 1, 2 * e / (4 + 2 * e), 3 / 7, 0.5):
        ok, out = run_check(ch00.check_three_cups_share, wrong, capsys)
        assert not ok and "Hint" in out and f"{want:.3f}" not in out
    ok, out = run_check(ch00.check_three_cups_share, [want, want], capsys)
    assert not ok and "number" in out
    assert run_check(ch00.check_three_cups_share, None, capsys) == (False, REPLACE_NONE + "\n")
