"""Chapter 6, multi-head attention: the head explorer and the exercises' self-checks.

The weights the explorer draws come from `helpers.attention` (`MultiHeadAttention` and the
chapter's hand-made `two_head_example`); this module only draws them and checks the reader's
answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import nn

from helpers.attention import (
    EXAMPLE_TEXT,
    MultiHeadAttention,
    position_letter_tokens,
    two_head_example,
)
from helpers.plotting import to_numpy
from helpers.ui.checks import ReaderError, as_tensor, check, matches, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_first_token_head",
    "check_folded_index",
    "check_mha_parameters",
    "check_next_token_head",
    "check_weight_counts",
    "head_explorer",
]


# ---------------------------------------------------------------------------------------------
# The head explorer
# ---------------------------------------------------------------------------------------------


def head_explorer(
    weights: Any,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    head_names: Sequence[str] | None = None,
) -> widgets.VBox:
    """Pick a head and a query; see that head's weights and the query's row as bars.

    weights: (num_heads, n_q, n_k) for one example (e.g. `MultiHeadAttention.head_weights[0]`).
    Heads and queries are counted from 0. State: `head`, `query`, `weights` (the row drawn, n_k).
    """
    w = to_numpy(weights).astype(float)
    if w.ndim != 3:
        raise ValueError(f"weights must be (num_heads, n_q, n_k), got shape {tuple(w.shape)}")
    h, n_q, n_k = w.shape
    query_labels = list(query_labels) if query_labels is not None else [str(i) for i in range(n_q)]
    key_labels = list(key_labels) if key_labels is not None else [str(i) for i in range(n_k)]
    head_names = list(head_names) if head_names is not None else [f"head {i}" for i in range(h)]
    if (len(query_labels), len(key_labels), len(head_names)) != (n_q, n_k, h):
        raise ValueError(
            f"need {n_q} query labels, {n_k} key labels and {h} head names for weights of shape "
            f"{tuple(w.shape)}; got {len(query_labels)}, {len(key_labels)}, {len(head_names)}"
        )
    # Ticks name each position with its index, so they agree with the query slider (from 0).
    q_ticks = [f"{i} {s}" if s != str(i) else s for i, s in enumerate(query_labels)]
    k_ticks = [f"{s}\n{i}" if s != str(i) else s for i, s in enumerate(key_labels)]

    # The bars share the heatmap's columns, so one row of key labels serves both panels.
    fig = Figure(figsize=(4.8, 4.6))
    ax_map = fig.add_axes((0.2, 0.45, 0.6, 0.48))
    ax_bar = fig.add_axes((0.2, 0.16, 0.6, 0.18), sharex=ax_map)
    image = ax_map.imshow(w[0], cmap="Reds", vmin=0, vmax=1, aspect="auto")
    frame = Rectangle((-0.5, -0.5), n_k, 1, fill=False, edgecolor="black", linewidth=2)
    ax_map.add_patch(frame)
    ax_map.set_yticks(range(n_q), q_ticks)
    ax_map.set_ylabel("queries")
    ax_map.tick_params(labelbottom=False)
    map_title = ax_map.set_title("")
    bars = ax_bar.bar(range(n_k), w[0, 0], color="tab:red", width=0.8)
    ax_bar.set_xticks(range(n_k), k_ticks)
    ax_bar.set_xlim(-0.5, n_k - 0.5)
    ax_bar.set_ylim(0, 1)
    ax_bar.set_yticks([0, 0.5, 1])
    ax_bar.set_xlabel("keys")
    ax_bar.set_ylabel("weight")
    bar_title = ax_bar.set_title("", fontsize=10)

    def draw(head: int, query: int) -> tuple[Figure, dict[str, Any]]:
        row = w[head, query]  # (n_k,)
        image.set_data(w[head])
        frame.set_y(query - 0.5)
        for bar, value in zip(bars, row, strict=True):
            bar.set_height(value)
        map_title.set_text(head_names[head])
        bar_title.set_text(f"query {q_ticks[query]}: its row of weights")
        return fig, {"head": head, "query": query, "weights": row.copy()}

    controls = {
        "head": widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(head_names)], value=0, description="head"
        ),
        "query": widgets.IntSlider(
            value=0, min=0, max=n_q - 1, description="query", continuous_update=True
        ),
    }
    return build_explorer(controls, draw, title="Which keys does each head attend to?")


def _demo_head_explorer() -> widgets.VBox:
    """The explorer on section 6.6's two hand-made heads."""
    model = two_head_example()
    text = list(EXAMPLE_TEXT)
    return head_explorer(
        model.head_weights[0].detach(),
        query_labels=text,
        key_labels=text,
        head_names=["head 0: previous position", "head 1: same letter"],
    )


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"heads": _demo_head_explorer}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


FOLD_EXAMPLE = dict(batch=3, steps=4, num_hiddens=20, num_heads=4, index=(2, 1, 13))  # exercise 1


def _whole_numbers(answer: Any, count: int, what: str) -> tuple[int, ...]:
    """`count` whole numbers from a tuple, list or 1-d tensor; a reader-facing message otherwise."""
    if isinstance(answer, torch.Tensor):
        answer = answer.tolist()
    if not isinstance(answer, (tuple, list)) or len(answer) != count:
        raise ReaderError(f"write {what} as a tuple of {count} whole numbers.")
    out = []
    for a in answer:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or float(a) != int(a):
            raise ReaderError(f"write {what} as a tuple of {count} whole numbers, got {answer!r}.")
        out.append(int(a))
    return tuple(out)


@self_check
def check_folded_index(index: Any) -> bool:
    """Exercise 1: where Q[2, 1, 13] of Q (3, 4, 20) lands in transpose_qkv(Q) with 4 heads."""
    got = _whole_numbers(index, 3, "the index (row, position, feature)")
    ex = FOLD_EXAMPLE
    shape = (ex["batch"], ex["steps"], ex["num_hiddens"])
    Q = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape)  # every entry unique
    folded = MultiHeadAttention(ex["num_hiddens"], ex["num_heads"]).transpose_qkv(Q)
    want = tuple(int(i) for i in (folded == Q[ex["index"]]).nonzero()[0])
    if got == want:
        return check(True, "", "Correct: the head is feature // p, the row example * h + head, "
                     "the feature within the head feature % p; the position does not move.")
    return check(
        False,
        "follow the three steps: the reshape splits the 20 features into 4 heads of p = 5 (which "
        "head owns feature 13, and which feature of that head is it?), the permute moves the head "
        "before the position, and the fold numbers the rows example by example, head by head.",
    )


WEIGHT_COUNT_EXAMPLE = dict(num_hiddens=64, batch=2, n_q=50, n_k=30, heads=(1, 4, 16))  # ex. 2


@self_check
def check_weight_counts(counts: Any) -> bool:
    """Exercise 2 (predict first): head_weights.numel() of MultiHeadAttention(64, h) for h = 1, 4,
    16 after one call on 2 examples of 50 queries and 30 keys."""
    ex = WEIGHT_COUNT_EXAMPLE
    got = _whole_numbers(counts, len(ex["heads"]), "the three counts")
    want = []
    for h in ex["heads"]:
        mha = MultiHeadAttention(ex["num_hiddens"], h)
        with torch.no_grad():
            mha(torch.zeros(ex["batch"], ex["n_q"], 8), torch.zeros(ex["batch"], ex["n_k"], 8),
                torch.zeros(ex["batch"], ex["n_k"], 8))
        want.append(mha.head_weights.numel())
    if got == tuple(want):
        return check(True, "", "Correct: every head has its own (n_q, n_k) weights, so the "
                     "attention maps grow with h, while with p = p_o / h, as here, the "
                     "parameters do not (exercise 3).")
    hint = "each head computes its own softmax over the keys for every query of every example."
    if len({g / h for g, h in zip(got, ex["heads"])}) != 1:
        hint += " Your three counts are not in the ratio 1 : 4 : 16 of the head counts."
    return check(False, hint)


MHA_COUNT_EXAMPLE = dict(d=32, p=16, p_o=64, heads=(4, 8))  # exercise 3


def _mha_parameter_count(d: int, h: int, p: int, p_o: int) -> int:
    """Parameters of h heads of width p on inputs of width d, output width p_o, no biases: the
    three input projections (all heads side by side) and W_o, counted from nn.Linear layers."""
    layers = [nn.Linear(d, h * p, bias=False) for _ in range(3)] + [
        nn.Linear(h * p, p_o, bias=False)
    ]
    return sum(w.numel() for layer in layers for w in layer.parameters())


@self_check
def check_mha_parameters(counts: Any) -> bool:
    """Exercise 3: parameters of multi-head attention with heads of p = 16 on inputs of width 32,
    output width p_o = 64, no biases, for h = 4 and h = 8 heads (a pair)."""
    ex = MHA_COUNT_EXAMPLE
    got = _whole_numbers(counts, len(ex["heads"]), "the two counts (h = 4, h = 8)")
    want = tuple(_mha_parameter_count(ex["d"], h, ex["p"], ex["p_o"]) for h in ex["heads"])
    if got == want:
        return check(True, "", "Correct! With p fixed, every head brings its own three (32, 16) "
                     "matrices and 16 more rows of W_o, so the count doubles with h. With "
                     "p = p_o / h, as in MultiHeadAttention, the heads split the same matrices "
                     "and the count does not depend on h.")
    hint = ("list every matrix with its shape (rows: the numbers it reads, columns: the numbers "
            "it writes): three per head, and W_o, which reads all heads' outputs side by side "
            "and writes p_o numbers.")
    if got[0] == want[0]:
        hint += " Your count for 4 heads is right; what changes in each shape with 8?"
    return check(False, hint)


def _attends(weights: torch.Tensor, targets: Sequence[int], rows: Sequence[int]) -> bool:
    """True when each row's largest weight is on its target key and exceeds 0.5."""
    w = weights[list(rows)]  # (rows, n_k)
    target = torch.tensor(list(targets))
    return bool((w.argmax(-1) == target).all() and (w[torch.arange(len(rows)), target] > 0.5).all())


@self_check
def check_next_token_head(head0_query: Any) -> bool:
    """Exercise 4: the (8, 8) block of W_q that makes head 0 attend to the next position."""
    block = as_tensor(head0_query, "head0_query", torch.float32)
    if block.shape != (8, 8):
        raise ReaderError(
            f"head0_query has shape {tuple(block.shape)}; the block W_q.weight[0:8, 0:8] is (8, 8)."
        )
    weights = two_head_example(head0_query=block).head_weights[0, 0]  # (8, 8), head 0
    return check(
        _attends(weights, targets=range(1, 8), rows=range(7)),
        "column j of the block is the query of position j, and it is compared with the keys "
        "e_0 ... e_7. Which key should position j find? Keep the factor 20 for a sharp softmax.",
        "Correct! The last token has no next position: its row has no match and stays uniform.",
    )


@self_check
def check_first_token_head(projections: Any) -> bool:
    """Exercise 5: (W_q rows, W_k rows), each (8, 12), of a head that attends to position 0."""
    if not isinstance(projections, (tuple, list)) or len(projections) != 2:
        raise ReaderError("give a pair (w_query, w_key) of two (8, 12) tensors.")
    tokens, _ = position_letter_tokens()  # (1, 8, 12)
    mats = [torch.as_tensor(m, dtype=torch.float32) for m in projections]
    for name, m in zip(("w_query", "w_key"), mats, strict=True):
        if m.shape != (8, 12):
            raise ReaderError(f"{name} has shape {tuple(m.shape)}; it should be (8, 12).")
    q = tokens[0] @ mats[0].T  # (8, 12) @ (12, 8) -> (8, 8): one query per token
    k = tokens[0] @ mats[1].T  # (8, 8): one key per token
    weights = torch.softmax(q @ k.T / math.sqrt(8), dim=-1)  # (8 queries, 8 keys)
    ok = matches(weights.argmax(-1), torch.zeros(8), atol=0) and bool((weights[:, 0] > 0.5).all())
    return check(
        ok,
        "the keys must single out position 0 (feature 0 of a token is 1 only there), and "
        "every query, whatever its position, must ask for that feature, strongly enough for "
        "the softmax to put more than half the weight there.",
        "Correct! Heads like this one ('attend to the start') are common in trained models.",
    )
