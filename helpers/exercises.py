"""Self-checks for the exercises: they say whether an answer is right and hint, never answer."""

from __future__ import annotations

__all__ = ["check"]


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


# ---------------------------------------------------------------------------------------------
# Chapters 00-01
# ---------------------------------------------------------------------------------------------


def _unanswered(answer) -> bool:
    if answer is None:
        print("Replace None with your answer, then run the cell again.")
        return True
    return False


def check_desk_winner(intention: str, saliency: float, answer: str) -> bool:
    """Chapter 00: which object of the desk scene gets the most weight for this cue setting?"""
    from helpers.cues import DESK_OBJECTS, desk_scene_weights

    if _unanswered(answer):
        return False
    if answer not in DESK_OBJECTS:
        print(f"Not yet. Hint: answer with one of {list(DESK_OBJECTS)}.")
        return False
    winner = DESK_OBJECTS[int(desk_scene_weights(intention, saliency).argmax())]
    return check(
        answer == winner,
        "the winner has the largest score query·key + saliency; set the explorer to this "
        "intention and saliency and look at the bars.",
    )


def check_cup_takeover(answer: float) -> bool:
    """Chapter 00: the saliency at which the red cup's weight equals the book's when reading."""
    from helpers.cues import DESK_OBJECTS, desk_scene_scores

    if _unanswered(answer):
        return False
    scores = desk_scene_scores("read a book", 0.0)
    # The cup's score grows by exactly `saliency`; the weights tie where the scores tie.
    tie = float(scores[DESK_OBJECTS.index("book")] - scores[DESK_OBJECTS.index("red coffee cup")])
    return check(
        abs(float(answer) - tie) < 0.05,
        "two objects get equal weight exactly when their scores are equal; write both scores "
        "as functions of the saliency.",
    )


def check_row_sum(answer: float) -> bool:
    """Chapter 00: what does every row of an attention-weight heatmap add up to?"""
    if _unanswered(answer):
        return False
    return check(
        abs(float(answer) - 1.0) < 1e-9,
        "each row holds the weights one query gives to all keys; what does a softmax sum to?",
    )


def check_average_pooling_mse(answer: float, data) -> bool:
    """Chapter 01: test MSE of average pooling against the truth for the given data."""
    if _unanswered(answer):
        return False
    y_hat = data.y_train.double().mean()
    mse = float(((data.y_truth.double() - y_hat) ** 2).mean())
    return check(
        abs(float(answer) - mse) <= 1e-3 * max(1.0, abs(mse)),
        "the prediction is the same number for every test point; average the squared "
        "differences to y_truth over the test grid.",
    )


def check_best_constant(answer: float, data) -> bool:
    """Chapter 01: the constant c that minimises the training squared error sum (y_i - c)^2."""
    if _unanswered(answer):
        return False
    best = float(data.y_train.double().mean())
    return check(
        abs(float(answer) - best) <= 1e-3,
        "set the derivative of sum_i (y_i - c)^2 with respect to c to zero.",
    )


# ---------------------------------------------------------------------------------------------
# Chapters 02-03
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05
# ---------------------------------------------------------------------------------------------

import math  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

__all__ += [
    "check_cross_attention",
    "check_gaussian_bias",
    "check_masked_row",
    "check_permuted_outputs",
    "check_scaled_weights",
    "check_score_variance",
]


def _matches(answer: Any, want: torch.Tensor, atol: float = 1e-4) -> bool:
    """True when `answer` (tensor or nested list) has want's shape and values within atol."""
    try:
        got = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        return False
    want = want.detach().cpu().double()
    return got.shape == want.shape and bool(torch.allclose(got, want, atol=atol, rtol=0))


def check_scaled_weights(weights: Any) -> bool:
    """Chapter 04, exercise 1: the worked example's weights with scores divided by √d_k."""
    from helpers.attention import self_attention_steps, worked_example

    want = self_attention_steps(*worked_example(torch.float64), scale=True).weights
    if not _matches(weights, want):
        try:
            shape = tuple(torch.as_tensor(weights).shape)
        except (TypeError, ValueError, RuntimeError):
            shape = None
        hint = (
            f"expected a (3, 3) tensor, one row per query, got {type(weights).__name__}"
            + (f" of shape {shape}. " if shape else ". ")
            if shape != (3, 3)
            else "divide every score by the square root of the key width (3) *before* softmax. "
        )
        return check(False, hint + "Each row must still sum to 1.")
    return check(True, "", "Correct! Scaling flattens the weights: compare with the unscaled ones.")


def check_permuted_outputs(outputs: Any, order: Any) -> bool:
    """Chapter 04, exercise 2: self-attention outputs for x[order], predicted, not recomputed."""
    from helpers.attention import self_attention_steps, worked_example

    x, wq, wk, wv = worked_example(torch.float64)
    want = self_attention_steps(x[list(order)], wq, wk, wv).outputs
    return check(
        _matches(outputs, want),
        "reorder the rows of the outputs you already have, the way the inputs were reordered.",
        "Correct! Self-attention is permutation equivariant: shuffle inputs, outputs follow.",
    )


def check_cross_attention(outputs: Any, y: Any) -> bool:
    """Chapter 04, exercise 3: queries from y (m, 4); keys and values from the worked example."""
    from helpers.attention import worked_example

    x, wq, wk, wv = worked_example(torch.float64)
    y = torch.as_tensor(y, dtype=torch.float64)
    weights = torch.softmax((y @ wq) @ (x @ wk).T, dim=-1)  # (m, 3)
    return check(
        _matches(outputs, weights @ (x @ wv)),
        "queries come from the new rows times w_query; keys and values from x times w_key "
        "and w_value; the result has one row per query.",
        "Correct! One output per query: the keys' sequence only sets how many values are mixed.",
    )


def check_masked_row(weights: Any) -> bool:
    """Chapter 05, exercise 1: masked softmax of the scores [1, 2, 3, 4] with valid length 2."""
    want = torch.tensor([math.exp(1), math.exp(2), 0.0, 0.0]) / (math.exp(1) + math.exp(2))
    return check(
        _matches(weights, want),
        "four weights; keys past the valid length get exactly 0, the others are a softmax "
        "over the valid scores only.",
    )


def check_score_variance(variance: Any, d: int = 64) -> bool:
    """Chapter 05, exercise 2: Var(qᵀk) for independent q, k with mean-0, variance-1 entries."""
    try:
        ok = abs(float(variance) - d) < 0.5
    except (TypeError, ValueError):
        ok = False
    return check(
        ok,
        "qᵀk is a sum of d independent products q_i k_i; each has mean 0 and variance "
        "E[q_i²] E[k_i²].",
        "Correct! That is why the scores are divided by √d: it brings the variance back to 1.",
    )


def check_gaussian_bias(bias: Any, keys: Any) -> bool:
    """Chapter 05, exercise 3: the per-key bias b so that softmax(qᵀk + b) = Gaussian weights."""
    k = torch.as_tensor(keys, dtype=torch.float64)
    try:
        b = torch.as_tensor(bias, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        b = torch.empty(0, dtype=torch.float64)
    # a softmax ignores a constant added to every score, so compare b up to a shift
    want = -(k**2).sum(-1) / 2  # (n_k,)
    ok = b.shape == want.shape and bool(torch.allclose(b - b.mean(), want - want.mean(), atol=1e-4))
    return check(
        ok,
        "expand -‖q - k‖²/2 and keep only the terms that change from key to key.",
        "Correct! The ‖q‖² term is the same for every key, so the softmax cancels it.",
    )


# ---------------------------------------------------------------------------------------------
# Chapters 06-07
# ---------------------------------------------------------------------------------------------


def check_head_width(p) -> bool:
    """Chapter 6: the per-head width p for num_hiddens = 100 and num_heads = 5."""
    return check(
        isinstance(p, int) and not isinstance(p, bool) and p * 5 == 100,
        "every head gets the same share of the num_hiddens output features.",
        "Correct: p_q = p_k = p_v = p_o / h.",
    )


def check_transpose_qkv_shape(shape) -> bool:
    """Chapter 6: the shape of transpose_qkv's output for a (2, 7, 12) input and 3 heads."""
    ok = tuple(shape) == (2 * 3, 7, 12 // 3) if hasattr(shape, "__len__") else False
    return check(
        ok,
        "the heads are folded into the batch axis; the sequence axis is untouched; each head "
        "keeps num_hiddens / num_heads features.",
        "Correct: batch * heads, sequence, features per head.",
    )


def check_cost_crossover(n) -> bool:
    """Chapter 6: the length at which self-attention's n^2 d equals a recurrent layer's n d^2
    for d = 512."""
    return check(
        n == 512,
        "set n^2 * d equal to n * d^2 and solve for n.",
        "Correct: below that length self-attention does less arithmetic per layer than an RNN.",
    )


def check_mirror_position(fn) -> bool:
    """Chapter 7: fn(t, n) -> the source position (0-based) that target step t of a reversal
    must read, for a source of length n."""
    try:
        ok = all(fn(t, n) == n - 1 - t for n in range(1, 12) for t in range(n))
    except Exception as err:  # the reader's function may fail in any way
        print(f"Your function raised {type(err).__name__}: {err}")
        return False
    return check(
        ok,
        "the first output token is the last input token; every later step moves one position "
        "towards the start.",
        "Correct: that is the anti-diagonal of the heatmap.",
    )


def check_attention_parameters(count, num_hiddens: int = 64) -> bool:
    """Chapter 7: the number of parameters the additive attention adds (no biases)."""
    H = num_hiddens
    return check(
        count == 2 * H * H + H,
        "W_q maps the decoder state (H) to H features, W_k maps an encoder output (H) to H, "
        "and w_v maps H features to one score.",
        "Correct: the difference between the two models' parameter counts.",
    )
