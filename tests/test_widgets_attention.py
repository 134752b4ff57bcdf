"""Headless tests of the chapter 04-05 explorers and self-checks: move a control, check numbers."""

from __future__ import annotations

import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from helpers import exercises, widgets  # noqa: E402
from helpers.attention import AdditiveAttention, worked_example  # noqa: E402

E = math.exp
# Worked example by hand (see tests/test_attention.py): scores per query and the values
HAND_SCORES = [[2, 4, 4], [4, 16, 12], [4, 12, 10]]
HAND_VALUES = [[1, 2, 3], [2, 8, 0], [2, 6, 3]]


def _softmax(row: list[float]) -> list[float]:
    top = max(row)
    e = [E(v - top) for v in row]
    return [v / sum(e) for v in e]


def _close(got, want, atol: float = 1e-6) -> None:
    """Assert two (nested) lists of numbers agree within atol."""
    f64 = torch.float64
    torch.testing.assert_close(
        torch.tensor(got, dtype=f64), torch.tensor(want, dtype=f64), atol=atol, rtol=0
    )


def _bar_heights(ax) -> list[float]:
    return [p.get_height() for p in ax.patches]


def test_stepper_draws_the_chosen_query():
    box = widgets.self_attention_stepper(*worked_example())
    assert box.state["query"] == 0
    assert box.state["scores"] == [2.0, 4.0, 4.0]
    want_w = [E(-2) / (2 + E(-2)), 1 / (2 + E(-2)), 1 / (2 + E(-2))]
    assert box.state["weights"] == pytest.approx(want_w, abs=1e-6)
    out1 = [
        (E(-2) + 4) / (2 + E(-2)),
        (2 * E(-2) + 14) / (2 + E(-2)),
        (3 * E(-2) + 3) / (2 + E(-2)),
    ]
    assert box.state["output"] == pytest.approx(out1, abs=1e-6)

    box.controls["query"].value = 2
    assert box.state["query"] == 2 and box.state["scores"] == [4.0, 12.0, 10.0]
    want_w = _softmax([4, 12, 10])
    assert box.state["weights"] == pytest.approx(want_w, abs=1e-6)
    parts = [[w * v for v in HAND_VALUES[j]] for j, w in enumerate(want_w)]
    _close(box.state["weighted_values"], parts, atol=1e-5)
    assert box.state["output"] == pytest.approx(
        [sum(c) for c in zip(*parts, strict=True)], abs=1e-5
    )
    ax_scores, ax_weights = box.figure.axes[:2]
    assert _bar_heights(ax_scores) == pytest.approx([4, 12, 10])
    assert _bar_heights(ax_weights) == pytest.approx(want_w, abs=1e-6)


def test_stepper_scaling_divides_the_scores_by_sqrt_d():
    box = widgets.self_attention_stepper(*worked_example())
    box.controls["query"].value = 1
    box.controls["scale"].value = True
    r3 = math.sqrt(3)
    assert box.state["scores"] == pytest.approx([4 / r3, 16 / r3, 12 / r3], abs=1e-5)
    assert box.state["weights"] == pytest.approx(_softmax([4 / r3, 16 / r3, 12 / r3]), abs=1e-6)
    assert "√d" in box.figure.axes[0].get_title()


def test_stepper_rejects_bad_query():
    with pytest.raises(ValueError, match="query must be in 0..2"):
        widgets.self_attention_step_figure(*worked_example(), query=3)


@pytest.fixture
def toy():
    g = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(3, 2, generator=g),
        torch.randn(5, 2, generator=g),
        torch.randn(5, 4, generator=g),
    )
    torch.manual_seed(0)
    additive = AdditiveAttention(6).eval()
    additive(q[None], k[None], v[None])  # size the lazy layers
    return q, k, v, additive


def _reference_scores(q, k, scoring, additive) -> list[list[float]]:
    """float64 loops over each scoring function's formula."""
    q, k = q.double(), k.double()
    rows = []
    for i in range(q.shape[0]):
        row = []
        for j in range(k.shape[0]):
            if scoring == "dot product":
                row.append(float(q[i] @ k[j]))
            elif scoring == "scaled dot product":
                row.append(float(q[i] @ k[j]) / math.sqrt(q.shape[1]))
            elif scoring == "gaussian":
                row.append(-float(((q[i] - k[j]) ** 2).sum()) / 2)
            else:
                W_q, W_k = (
                    additive.W_q.weight.detach().double(),
                    additive.W_k.weight.detach().double(),
                )
                w_v = additive.w_v.weight.detach().double()[0]
                row.append(float(w_v @ torch.tanh(W_q @ q[i] + W_k @ k[j])))
        rows.append(row)
    return rows


@pytest.mark.parametrize("scoring", widgets.SCORING_FUNCTIONS)
def test_scoring_explorer_follows_its_controls(toy, scoring):
    q, k, v, additive = toy
    box = widgets.scoring_explorer(q, k, v, additive)
    box.controls["scoring"].value = scoring
    box.controls["valid_len"].value = 3
    ref = _reference_scores(q, k, scoring, additive)
    want = [_softmax(r[:3]) + [0.0, 0.0] for r in ref]
    _close(box.state["weights"], want)
    vals = v.double().tolist()
    want_out = [[sum(w[j] * vals[j][c] for j in range(5)) for c in range(4)] for w in want]
    _close(box.state["outputs"], want_out, atol=1e-5)
    drawn = box.figure.axes[0].images[0].get_array()
    _close(drawn.tolist(), want)
    box.controls["valid_len"].value = 5
    want = [_softmax(r) for r in ref]
    _close(box.state["weights"], want)


def test_scoring_explorer_zero_valid_keys_gives_zero_weights(toy):
    box = widgets.scoring_explorer(*toy)
    box.controls["valid_len"].value = 0
    assert box.state["weights"] == [[0.0] * 5] * 3 and box.state["outputs"] == [[0.0] * 4] * 3


def test_scoring_weights_rejects_bad_arguments(toy):
    q, k, _, _ = toy
    with pytest.raises(ValueError, match="scoring must be one of"):
        widgets.scoring_weights(q, k, "cosine")
    with pytest.raises(ValueError, match="needs an AdditiveAttention"):
        widgets.scoring_weights(q, k, "additive")


# ---------------------------------------------------------------------------------------------
# Self-checks: right answers pass, wrong ones fail, and no hint reveals the answer
# ---------------------------------------------------------------------------------------------


def test_check_scaled_weights(capsys):
    r3 = math.sqrt(3)
    right = [_softmax([s / r3 for s in row]) for row in HAND_SCORES]
    assert exercises.check_scaled_weights(torch.tensor(right)) is True
    assert exercises.check_scaled_weights(right) is True
    unscaled = [_softmax(row) for row in HAND_SCORES]
    assert exercises.check_scaled_weights(torch.tensor(unscaled)) is False
    assert exercises.check_scaled_weights(None) is False
    out = capsys.readouterr().out
    assert "Hint" in out and f"{right[0][0]:.3f}" not in out


def test_check_permuted_outputs(capsys):
    e2, e4, e8, e12 = E(-2), E(-4), E(-8), E(-12)
    d1, d2, d3 = 2 + e2, 1 + e12 + e4, 1 + e8 + e2
    outputs = [
        [(e2 + 4) / d1, (2 * e2 + 14) / d1, (3 * e2 + 3) / d1],
        [(e12 + 2 + 2 * e4) / d2, (2 * e12 + 8 + 6 * e4) / d2, (3 * e12 + 3 * e4) / d2],
        [(e8 + 2 + 2 * e2) / d3, (2 * e8 + 8 + 6 * e2) / d3, (3 * e8 + 3 * e2) / d3],
    ]
    order = [1, 2, 0]
    assert exercises.check_permuted_outputs([outputs[i] for i in order], order) is True
    assert exercises.check_permuted_outputs(outputs, order) is False
    assert exercises.check_permuted_outputs("no idea", order) is False
    assert "Hint" in capsys.readouterr().out


def test_check_cross_attention():
    z = torch.eye(4)
    # one-hot inputs: query i is row i of w_query; keys and values are the hand-worked ones
    w_query = [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
    hand_keys = [[0, 1, 1], [4, 4, 0], [2, 3, 1]]
    right = []
    for qrow in w_query:
        w = _softmax([sum(a * b for a, b in zip(qrow, kk, strict=True)) for kk in hand_keys])
        right.append([sum(w[j] * HAND_VALUES[j][c] for j in range(3)) for c in range(3)])
    assert exercises.check_cross_attention(torch.tensor(right), z) is True
    assert exercises.check_cross_attention(torch.tensor(right)[:3], z) is False


def test_check_masked_row(capsys):
    assert exercises.check_masked_row([E(1) / (E(1) + E(2)), E(2) / (E(1) + E(2)), 0, 0]) is True
    assert exercises.check_masked_row(_softmax([1, 2, 3, 4])) is False
    assert exercises.check_masked_row([0.5, 0.5]) is False
    assert "0.269" not in capsys.readouterr().out


def test_check_score_variance():
    assert exercises.check_score_variance(64) is True
    assert exercises.check_score_variance(8.0) is False  # the standard deviation, not the variance
    assert exercises.check_score_variance(16, d=16) is True
    assert exercises.check_score_variance("sixty-four") is False


def test_check_gaussian_bias():
    keys = torch.tensor([[0.0, 1.0], [2.0, -1.0], [1.0, 1.0]])
    assert exercises.check_gaussian_bias([-0.5, -2.5, -1.0], keys) is True
    assert exercises.check_gaussian_bias([9.5, 7.5, 9.0], keys) is True  # a shared shift is fine
    assert exercises.check_gaussian_bias([-1.0, -5.0, -2.0], keys) is False  # forgot the 1/2
    assert exercises.check_gaussian_bias(None, keys) is False
