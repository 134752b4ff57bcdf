"""Chapter 04: the stepper explorer and the self-checks, against hand-worked and float64 numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check

from helpers.attention import worked_example
from helpers.ui import ch04
from helpers.ui.checks import REPLACE_NONE

# The worked example by hand (NumPy, float64): x (3, 4), W_q, W_k, W_v (4, 3).
X = np.array([[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]], dtype=float)
WQ = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]], dtype=float)
WK = np.array([[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
WV = np.array([[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]], dtype=float)


def _softmax(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _attend(x, wq, wk, wv, scale=False):
    scores = (x @ wq) @ (x @ wk).T
    if scale:
        scores = scores / math.sqrt(wk.shape[1])
    weights = _softmax(scores)
    return scores, weights, weights @ (x @ wv)


# --- the stepper -----------------------------------------------------------------------------


def test_stepper_draws_every_query_with_and_without_scaling():
    box = ch04.self_attention_stepper(*worked_example())
    fig = box.figure
    ax_s, ax_w, ax_v = fig.axes
    for scale in (False, True):
        box.controls["scale"].value = scale
        scores, weights, outputs = _attend(X, WQ, WK, WV, scale)
        for q in range(3):
            box.controls["query"].value = q
            assert box.figure is fig
            np.testing.assert_allclose(box.state["scores"], scores[q], atol=1e-12)
            np.testing.assert_allclose(box.state["weights"], weights[q], atol=1e-12)
            np.testing.assert_allclose(box.state["output"], outputs[q], atol=1e-12)
            np.testing.assert_allclose([b.get_height() for b in ax_s.patches], scores[q])
            np.testing.assert_allclose([b.get_height() for b in ax_w.patches], weights[q])
            # the stacked bars of the weighted values add up to the output marks
            parts = np.array([b.get_height() for b in ax_v.patches]).reshape(3, 3)
            np.testing.assert_allclose(parts, weights[q][:, None] * (X @ WV), atol=1e-12)
            np.testing.assert_allclose(ax_v.lines[0].get_ydata(), outputs[q], atol=1e-12)
            titles = [
                f"scores of query {q}" + (" / √d" if scale else ""),
                f"output {q} = Σ weighted values",
            ]
            assert box.state["titles"] == titles
            shown = [t.get_text() for ax in (ax_s, ax_v) for t in ax.texts if t.get_visible()]
            assert set(titles) <= set(shown)
    assert [t.get_text() for t in ax_s.get_xticklabels()] == ["key 0", "key 1", "key 2"]


def test_stepper_edits_one_entry_and_keeps_earlier_edits():
    box = ch04.self_attention_stepper(*worked_example())
    c = box.controls
    assert c["entry"].value == ("x", 0, 0) and c["value"].value == 1.0
    assert box.state["title"] == "query 0; edited entry: x[0, 0] = 1"
    c["entry"].value = ("W_k", 1, 0)
    assert c["value"].value == 1.0
    c["value"].value = -2.0  # W_k[1, 0]: 1 -> -2
    wk = WK.copy()
    wk[1, 0] = -2.0
    np.testing.assert_allclose(box.state["weights"], _attend(X, WQ, wk, WV)[1][0], atol=1e-12)
    assert box.state["title"] == "query 0; edited entry: W_k[1, 0] = -2 (was 1)"
    assert box.state["matrices"]["W_k"] == wk.tolist()
    # picking another entry shows its own value, and the earlier edit stays
    c["entry"].value = ("x", 2, 3)
    assert c["value"].value == 1.0
    assert box.state["title"] == "query 0; edited entry: x[2, 3] = 1"
    c["value"].value = 3.0
    x = X.copy()
    x[2, 3] = 3.0
    c["query"].value = 2
    _, weights, outputs = _attend(x, WQ, wk, WV)
    np.testing.assert_allclose(box.state["weights"], weights[2], atol=1e-12)
    np.testing.assert_allclose(box.state["output"], outputs[2], atol=1e-12)
    c["entry"].value = ("W_k", 1, 0)
    assert c["value"].value == -2.0
    # W_v changes the output but not the weights
    c["entry"].value = ("W_v", 0, 0)
    before = box.state["weights"]
    c["value"].value = 2.5
    wv = WV.copy()
    wv[0, 0] = 2.5
    assert box.state["weights"] == before
    np.testing.assert_allclose(box.state["output"], _attend(x, WQ, wk, wv)[2][2], atol=1e-12)
    # the last drawn state always equals the controls
    name, r, col = c["entry"].value
    assert box.state["matrices"][name][r][col] == c["value"].value


def test_stepper_rejects_bad_inputs():
    x, wq, wk, wv = worked_example()
    with pytest.raises(ValueError, match="entry"):
        ch04.self_attention_stepper(x, wq, wk, wv, entry=("W_o", 0, 0))
    with pytest.raises(ValueError, match="w_key"):
        ch04.self_attention_stepper(x, wq, wk[:3], wv)
    with pytest.raises(ValueError, match="x must be"):
        ch04.self_attention_stepper(x[None], wq, wk, wv)


def test_entry_options_name_every_entry_from_0():
    opts = ch04.entry_options({"x": (1, 2), "W_q": (2, 1)})
    assert opts == [
        ("x[0, 0]", ("x", 0, 0)),
        ("x[0, 1]", ("x", 0, 1)),
        ("W_q[0, 0]", ("W_q", 0, 0)),
        ("W_q[1, 0]", ("W_q", 1, 0)),
    ]


def test_demo_builds():
    box = ch04.EXPLORER_DEMOS["stepper"]()
    assert box.png.startswith(b"\x89PNG")
    assert set(box.controls) == {"query", "scale", "entry", "value"}


# --- the self-checks -------------------------------------------------------------------------


def test_flattening_divisor(capsys):
    # query 1 has the scores [4, 16, 12] and stays peaked longest: its top weight is 1/2 when
    # e^(16/c) = e^(4/c) + e^(12/c), i.e. t^3 = t^2 + 1 for t = e^(4/c) (a cubic, solved by NumPy)
    roots = np.roots([1.0, -1.0, 0.0, -1.0])
    t = float(roots[np.abs(roots.imag) < 1e-12].real[0])
    want = 4 / math.log(t)
    assert want == pytest.approx(10.4645, abs=1e-3)
    assert _attend(X, WQ, WK, WV)[0][1].tolist() == [4, 16, 12]
    assert _softmax(_attend(X, WQ, WK, WV)[0] / want).max() == pytest.approx(0.5)
    assert run_check(ch04.check_flattening_divisor, want, capsys)[0]
    assert run_check(ch04.check_flattening_divisor, torch.tensor(10.45), capsys)[0]
    # sqrt(3); query 0 alone (never above 0.5); query 2's own threshold; a round guess
    q2 = next(
        c for c in np.arange(1, 20, 0.001) if _softmax(np.array([4, 12, 10]) / c).max() <= 0.5
    )
    for wrong in (math.sqrt(3), 1.0, q2, 10.0, 11.0):
        ok, out = run_check(ch04.check_flattening_divisor, wrong, capsys)
        assert not ok and "Hint" in out and "10.4" not in out and "16" not in out
    for bad in (0, -3.0):
        ok, out = run_check(ch04.check_flattening_divisor, bad, capsys)
        assert not ok and "positive" in out
    ok, out = run_check(ch04.check_flattening_divisor, "ten", capsys)
    assert not ok and "number" in out
    assert run_check(ch04.check_flattening_divisor, None, capsys) == (False, REPLACE_NONE + "\n")


def test_doubled_query_weight(capsys):
    # scores of query 0 double: [4, 8, 8] -> weight of key 0 = e^-4 / (2 + e^-4)
    want = math.exp(-4) / (2 + math.exp(-4))
    assert _attend(X, 2 * WQ, WK, WV)[1][0, 0] == pytest.approx(want)
    assert run_check(ch04.check_doubled_query_weight, want, capsys)[0]
    assert run_check(ch04.check_doubled_query_weight, round(want, 4), capsys)[0]
    wrong_ideas = (
        0.01,  # "about 0.01": a guess from the order of magnitude
        math.exp(-2) / (2 + math.exp(-2)),  # W_q not doubled: 0.0634
        0.0,  # dropped to zero, like the copied answer
        0.5,
        math.exp(-4) / (1 + math.exp(-4)),  # one rival instead of two
        math.exp(-8) / (2 + math.exp(-8)),  # scores quadrupled
        2 * math.exp(-2) / (2 + math.exp(-2)),  # doubled weight
    )
    for wrong in wrong_ideas:
        ok, out = run_check(ch04.check_doubled_query_weight, wrong, capsys)
        assert not ok and "Hint" in out and "0.009" not in out, wrong
    ok, out = run_check(ch04.check_doubled_query_weight, 2, capsys)
    assert not ok and "between 0 and 1" in out
    assert run_check(ch04.check_doubled_query_weight, None, capsys) == (False, REPLACE_NONE + "\n")


def _over_one_hot_keys(wk: np.ndarray) -> np.ndarray:
    """(3, 4): the weights of x's queries over the keys of z = eye(4), by hand in float64."""
    return _softmax((X @ WQ) @ (np.eye(4) @ wk).T)


def test_one_hot_key_row(capsys):
    # the keys of one-hot z are the rows of W_k; query 0's scores over them are [2, 1, 0, 1]
    assert np.array_equal(np.eye(4) @ WK, WK)
    np.testing.assert_allclose((X @ WQ)[0] @ WK.T, [2, 1, 0, 1])
    good = WK.copy()
    good[2] = [3.0, -4.0, 0.0]  # query 0 scores it 3; queries 1 and 2 score it -2 and 2
    w = _over_one_hot_keys(good)
    assert w[0].argmax() == 2 and w[1].argmax() != 2 and w[2].argmax() != 2
    assert run_check(ch04.check_one_hot_key_row, good, capsys)[0]
    assert run_check(ch04.check_one_hot_key_row, torch.tensor(good, dtype=torch.float32),
                     capsys)[0]
    other = WK.copy()
    other[2] = [10.0, -20.0, 0.0]  # another aim that works
    assert run_check(ch04.check_one_hot_key_row, other, capsys)[0]
    for row in ([5.0, 5.0, 5.0], [0.0, 0.0, 4.0], [0.0, -2.0, 2.0], [2.0, -3.0, 0.0]):
        bad = WK.copy()
        bad[2] = row  # too long (wins every query), or aimed so that query 2 prefers it, or a tie
        w = _over_one_hot_keys(bad)
        assert not (w[0, 2] > np.delete(w[0], 2).max() and w[1, 2] < np.delete(w[1], 2).max()
                    and w[2, 2] < np.delete(w[2], 2).max())
        ok, out = run_check(ch04.check_one_hot_key_row, bad, capsys)
        assert not ok and "Hint" in out and "row 2" not in out, row
    for r in (0, 1, 3):  # a row that is not key 2 cannot make key 2 win
        bad = WK.copy()
        bad[r] = [0.0, 0.0, -5.0]
        ok, out = run_check(ch04.check_one_hot_key_row, bad, capsys)
        assert not ok and f"row {r}" in out and "row 2" not in out
    two = good.copy()
    two[0] = [0.0, 0.0, 0.0]
    ok, out = run_check(ch04.check_one_hot_key_row, two, capsys)
    assert not ok and "exactly one row" in out
    ok, out = run_check(ch04.check_one_hot_key_row, WK, capsys)
    assert not ok and "exactly one row" in out
    ok, out = run_check(ch04.check_one_hot_key_row, _over_one_hot_keys(good), capsys)
    assert not ok and "shape" in out  # the weights are not the answer asked for
    ok, out = run_check(ch04.check_one_hot_key_row, "w_key", capsys)
    assert not ok and "tensor" in out
    assert run_check(ch04.check_one_hot_key_row, None, capsys) == (False, REPLACE_NONE + "\n")


def test_self_attending_key(capsys):
    good = WK.copy()
    good[1, 0] = -2.0  # lowers keys 1 and 2, not key 0 (input 0 has no entry 1)
    assert _attend(X, WQ, good, WV)[1][0].argmax() == 0
    assert run_check(ch04.check_self_attending_key, good, capsys)[0]
    assert run_check(ch04.check_self_attending_key, torch.tensor(good), capsys)[0]
    for r, c, v in [(0, 2, 3.0), (2, 1, 3.0), (1, 0, 0.0)]:  # rows 0, 2 cannot; too small
        bad = WK.copy()
        bad[r, c] = v
        ok, out = run_check(ch04.check_self_attending_key, bad, capsys)
        assert not ok and "Hint" in out and "-2" not in out and "Rows 0 and 2" not in out
    two = good.copy()
    two[3, 0] = 0.0
    ok, out = run_check(ch04.check_self_attending_key, two, capsys)
    assert not ok and "exactly one entry" in out
    ok, out = run_check(ch04.check_self_attending_key, WK, capsys)
    assert not ok and "exactly one entry" in out
    ok, out = run_check(ch04.check_self_attending_key, WK[:3], capsys)
    assert not ok and "shape" in out
    assert run_check(ch04.check_self_attending_key, None, capsys) == (False, REPLACE_NONE + "\n")
