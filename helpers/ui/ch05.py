"""Chapter 5, attention scoring functions: the scoring explorer and the exercises' self-checks.

The scores and weights it draws come from `helpers.attention` (`scoring_weights`, the modules'
`scores` methods); this module only draws them and checks the reader's answers.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from helpers import attention
from helpers.attention import (
    SCORING_FUNCTIONS,
    AdditiveAttention,
    masked_softmax,
    scoring_weights,
    unscaled_max_weight,
)
from helpers.ui.checks import ReaderError, as_number, check, matches, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "MASKED_ROWS",
    "check_causal_lengths",
    "check_masked_row",
    "check_score_variance",
    "check_unscaled_max_weight",
    "masked_title",
    "scoring_explorer",
]


# ---------------------------------------------------------------------------------------------
# The scoring explorer
# ---------------------------------------------------------------------------------------------


def masked_title(scoring: str, valid_len: int, n_k: int) -> str:
    """The explorer's title: which keys (counted from 0, as the ticks are) are masked."""
    if valid_len >= n_k:
        return f"{scoring}: no key masked"
    if valid_len == 0:
        return f"{scoring}: every key masked, all weights 0"
    if valid_len == n_k - 1:
        return f"{scoring}: key {n_k - 1} masked"
    return f"{scoring}: keys {valid_len}–{n_k - 1} masked"


def scoring_explorer(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    additive: AdditiveAttention,
    valid_len: int | None = None,
) -> widgets.VBox:
    """Heatmap of the weights of queries (n_q, d) over keys (n_k, d) per scoring function.

    values: (n_k, d_v); additive: an `AdditiveAttention` sized for these queries and keys.
    Controls: the scoring function and the number of valid keys (keys from that index on are
    masked). State: `weights` (n_q, n_k), `outputs` (n_q, d_v) = weights @ values, `masked` (the
    masked key indices) and `title`.
    """
    for name, t in (("queries", queries), ("keys", keys), ("values", values)):
        if not isinstance(t, torch.Tensor) or t.dim() != 2:
            raise ValueError(f"{name} must be a 2-D tensor (n, d), got {getattr(t, 'shape', t)}")
    if keys.shape[0] != values.shape[0]:
        raise ValueError(
            f"keys {tuple(keys.shape)} and values {tuple(values.shape)} need the same n_k"
        )
    n_q, n_k = queries.shape[0], keys.shape[0]
    q, k = queries.detach()[None], keys.detach()[None]  # (1, n_q, d), (1, n_k, d)
    v = values.detach().double()  # (n_k, d_v)

    fig = Figure(figsize=(6.0, 2.6))
    ax = fig.add_axes((0.09, 0.2, 0.72, 0.64))
    cax = fig.add_axes((0.85, 0.2, 0.025, 0.64))
    image = ax.imshow(torch.zeros(n_q, n_k).numpy(), cmap="Reds", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, cax=cax, label="weight", ticks=[0, 0.5, 1])  # few labels: fast redraws
    boundary = ax.axvline(n_k - 0.5, color="k", lw=1.5, ls="--")
    ax.set_xticks(range(n_k))
    ax.set_yticks(range(n_q))
    ax.set_xlabel("keys")
    ax.set_ylabel("queries")
    title = ax.set_title("")

    def draw(scoring: str, valid_len: int) -> tuple[Figure, dict[str, Any]]:
        with torch.no_grad():
            lens = torch.tensor([valid_len], device=q.device)
            weights = scoring_weights(q, k, scoring, lens, additive)[0].cpu().double()  # (n_q, n_k)
        outputs = weights @ v  # (n_q, n_k) @ (n_k, d_v) -> (n_q, d_v)
        image.set_data(weights.numpy())
        boundary.set_xdata([valid_len - 0.5, valid_len - 0.5])
        boundary.set_visible(valid_len < n_k)
        title.set_text(masked_title(scoring, valid_len, n_k))
        return fig, {
            "weights": weights.tolist(),
            "outputs": outputs.tolist(),
            "masked": list(range(min(valid_len, n_k), n_k)),
            "title": title.get_text(),
        }

    controls = {
        "scoring": widgets.Dropdown(
            options=list(SCORING_FUNCTIONS), value=SCORING_FUNCTIONS[0], description="scoring"
        ),
        "valid_len": widgets.IntSlider(
            value=n_k if valid_len is None else valid_len,
            min=0,
            max=n_k,
            description="valid keys",
            continuous_update=True,
        ),
    }
    return build_explorer(controls, draw, title="Scoring functions side by side")


def _demo_scoring_explorer() -> widgets.VBox:
    """The explorer on inputs like the chapter's: 4 queries, 10 keys of width 2, 6 valid."""
    gen = torch.Generator().manual_seed(0)
    queries = torch.randn(4, 2, generator=gen)  # (n_q, d)
    keys = torch.randn(10, 2, generator=gen)  # (n_k, d)
    values = torch.arange(40, dtype=torch.float32).reshape(10, 4)  # (n_k, d_v)
    torch.manual_seed(0)
    additive = AdditiveAttention(num_hiddens=8).eval()
    with torch.no_grad():
        additive(queries[None], keys[None], values[None])  # size the lazy layers
    return scoring_explorer(queries, keys, values, additive, valid_len=6)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"scoring": _demo_scoring_explorer}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


# Exercise 1's rows: (scores, valid length); the last two are the edge cases of section 5.2
MASKED_ROWS = (
    ([1.0, 2.0, 3.0, 4.0], 2),
    ([0.5, -1.0, 2.0], 3),
    ([3.0, 1.0, 2.0, 0.0, 5.0], 1),
    ([2.0, 2.0, 7.0, -3.0], 3),
    ([1.0, 2.0, 3.0], 0),
    ([2.0, 0.0, 1.0], 5),
)


def _masked_row_reference(scores: list[float], valid_len: int) -> list[float]:
    """The weights of one row, from the definition: a softmax over the first valid_len scores."""
    n = min(valid_len, len(scores))
    exps = [math.exp(s) for s in scores[:n]]
    return [e / sum(exps) for e in exps] + [0.0] * (len(scores) - n)


@contextlib.contextmanager
def _without_masked_softmax(fn: Callable[..., Any]):
    """While the reader's fn runs, `masked_softmax` (in fn's globals and in helpers.attention)
    raises a ReaderError: the exercise asks for the weights without it."""

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise ReaderError("exercise 1 asks for the weights without masked_softmax: use math.exp "
                          "on the valid scores.")

    namespaces = [vars(attention)]
    fn_globals = getattr(fn, "__globals__", None)
    if isinstance(fn_globals, dict) and fn_globals is not vars(attention):
        namespaces.append(fn_globals)
    saved = [(ns, ns["masked_softmax"]) for ns in namespaces if "masked_softmax" in ns]
    try:
        for ns, _ in saved:
            ns["masked_softmax"] = unavailable
        yield
    finally:
        for ns, original in saved:
            ns["masked_softmax"] = original


@self_check
def check_masked_row(masked_weights: Any) -> bool:
    """Exercise 1: `masked_weights(scores, valid_len)`, the attention weights of one row of scores
    (a list) with valid length valid_len, written with math.exp and without masked_softmax.

    Tried on the rows of MASKED_ROWS, with masked_softmax unavailable while it runs.
    """
    if not callable(masked_weights):
        raise ReaderError("pass your function masked_weights itself (no parentheses).")
    ok = True
    with _without_masked_softmax(masked_weights):
        for scores, valid_len in MASKED_ROWS:
            got = masked_weights(list(scores), valid_len)
            want = torch.tensor(_masked_row_reference(scores, valid_len), dtype=torch.float64)
            ok = ok and matches(got, want, atol=1e-6, name="your weights")
    return check(
        ok,
        "your function is tried on several rows, short and long lengths included. One weight per "
        "score; keys from index valid_len on get exactly 0, and the valid ones are a softmax over "
        "the valid scores only. Section 5.2 says what a length of 0, or one larger than the row, "
        "must give.",
        "Correct! Masked keys get exactly zero; the valid ones share all the weight, and a row "
        "with no valid key gets no weight at all.",
    )


UNSCALED_COPIES_ATOL = 0.0003  # exercise 2's tolerance, stated in the exercise


@functools.lru_cache(maxsize=8)
def _copies_reference(d: int, copies: int) -> tuple[float, float, float]:
    """Exercise 2's measurements, averaged over seeds 0-9: the mean largest weight with 10 keys,
    with 10 keys in `copies` copies each, and with 10 * copies fresh keys (seed 0)."""
    seeds = range(10)
    few = sum(unscaled_max_weight(d, n_k=10, seed=s) for s in seeds) / len(seeds)
    copied = sum(unscaled_max_weight(d, n_k=10, copies=copies, seed=s) for s in seeds) / len(seeds)
    return few, copied, unscaled_max_weight(d, n_k=10 * copies)


@self_check
def check_unscaled_max_weight(prediction: Any, d: int = 64, copies: int = 100) -> bool:
    """Exercise 2 (predict first): the mean largest weight of the unscaled dot product when each
    query's 10 random keys of width d appear `copies` times each (1000 keys, 10 distinct).

    Every copy of a key gets the same score, so the softmax splits each distinct key's weight
    evenly among its copies: the answer is the 10-key value divided by `copies`, 0.00867 for
    d = 64 (the mean over ten seeds). The tolerance, 0.0003, accepts chapter 4's 0.863 / 100 and
    every seed's measurement (0.0085-0.0088), and rejects the 10-key value itself ("same"), that
    value over 10 or over 1000, uniform weights (1/1000), the value for 1000 fresh keys (and it
    over 100), scaled scores, and the 10-key values of d = 16 or 256 over 100.
    """
    got = as_number(prediction, "your prediction")
    if not 0 <= got <= 1:
        raise ReaderError(f"a mean largest weight lies between 0 and 1, got {got}.")
    few, want, fresh = _copies_reference(d, copies)
    return check(
        abs(got - want) <= UNSCALED_COPIES_ATOL,
        "a copy of a key has the same score as the key. Write the softmax of one query over its "
        f"{10 * copies} scores as a sum over the 10 distinct keys: how many equal terms does each "
        "give, and which of the weights change?",
        f"Correct! Copies tie exactly, so the weight a key had with 10 keys is split evenly "
        f"among its {copies} copies: about {few:.3f} / {copies} = {want:.5f}. With "
        f"{10 * copies} fresh random keys the mean largest weight falls only to about "
        f"{fresh:.2f}: no two fresh keys tie, but the more keys there are, the closer the "
        "runners-up come to the top score, and the softmax, which sees only differences of "
        "scores, shares the weight among them.",
    )


def _scaled_score_variance(d: int = 64) -> float:
    """Var(q kᵀ / √d) for q with mean-0, variance-1 entries and k with mean-1, variance-1 entries.

    Each product q_i k_i has mean 0 and variance E[q_i²] E[k_i²] = 1 * (1 + 1) = 2.
    """
    return 2.0 * d / d


@self_check
def check_score_variance(variance: Any, d: int = 64) -> bool:
    """Exercise 3: Var(q kᵀ/√d) when q's entries have mean 0 and k's mean 1, all variance 1.

    The tolerance (0.1) fits a simulation of 10,000 pairs (q, k), whose estimate has a standard
    error of about 1.5 %, as well as the exact value.
    """
    return check(
        abs(as_number(variance, "your variance") - _scaled_score_variance(d)) <= 0.1,
        "q kᵀ is a sum of d independent products q_i k_i, so start from the variance of one "
        "product. With centred keys it is 1; ask what a key's mean of 1 adds to it (the "
        "variance of a product is not the product of the variances). If you simulate, use at "
        "least 10,000 pairs and divide each score by √d.",
        "Correct! Keys that are not centred double the variance the 1/√d was sized for: one "
        "reason Transformers normalise their inputs.",
    )


@self_check
def check_causal_lengths(valid_lens: Any) -> bool:
    """Exercise 4: per-query valid lengths (1, 4) for the last 4 of 6 positions, causally."""
    if isinstance(valid_lens, torch.Tensor) and valid_lens.is_floating_point():
        raise ReaderError("valid lengths count keys: use whole numbers (an integer tensor).")
    ok = matches(valid_lens, torch.tensor([[3, 4, 5, 6]]), atol=0, name="valid_lens")
    if ok:  # also run it: the lengths must give the bottom-right-aligned causal mask
        scores = torch.zeros(1, 4, 6)
        keep = masked_softmax(scores, torch.as_tensor(valid_lens)) > 0  # (1, 4, 6)
        ok = bool(torch.equal(keep[0], torch.ones(4, 6, dtype=torch.bool).tril(diagonal=2)))
    return check(
        ok,
        "one row per query, shape (1, 4). Count from 0: a query at position p may see the keys "
        "0, 1, ..., p. At which positions do the last four of six tokens sit?",
        "Correct! The queries' mask is aligned to the bottom-right corner; is_causal=True in "
        "PyTorch aligns it to the top-left, which is right only when n_q = n_k.",
    )
