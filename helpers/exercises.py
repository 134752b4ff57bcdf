"""Self-checks for the exercises: they say whether an answer is right and give a hint, never the answer."""

from __future__ import annotations

__all__ = ["check"]


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


# ---------------------------------------------------------------------------------------------
# Chapters 00-01
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 02-03
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05
# ---------------------------------------------------------------------------------------------


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
