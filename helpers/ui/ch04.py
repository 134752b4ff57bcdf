"""Chapter 4, self-attention step by step: the stepper explorer and the exercises' self-checks.

The numbers it draws come from `helpers.attention.self_attention_steps`; this module only draws
them and checks the reader's answers. Inputs, queries and keys are counted from 0.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure

from helpers.attention import self_attention_steps, worked_example
from helpers.plotting import freeze_background
from helpers.ui.checks import ReaderError, as_number, as_tensor, check, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_doubled_query_weight",
    "check_flattening_divisor",
    "check_one_hot_key_row",
    "check_self_attending_key",
    "entry_options",
    "self_attention_stepper",
]


def entry_options(shapes: dict[str, tuple[int, int]]) -> list[tuple[str, tuple[str, int, int]]]:
    """Dropdown options ("W_k[1, 2]", ("W_k", 1, 2)) for every entry of matrices of these shapes."""
    return [
        (f"{name}[{r}, {c}]", (name, r, c))
        for name, (rows, cols) in shapes.items()
        for r in range(rows)
        for c in range(cols)
    ]


def self_attention_stepper(
    x: torch.Tensor,
    w_query: torch.Tensor,
    w_key: torch.Tensor,
    w_value: torch.Tensor,
    entry: tuple[str, int, int] = ("x", 0, 0),
) -> widgets.VBox:
    """Steps 4-7 for one query of x (n, d_in), with one entry of x, W_q, W_k or W_v editable.

    w_query, w_key: (d_in, d_k); w_value: (d_in, d_v). Controls: the query, √d scaling, the entry
    to edit and its value (each entry keeps its edited value when another is picked). Left: the
    query's scores; middle: its softmax weights; right: the output as a stack of weighted values.
    State: `query`, `scores` (n,), `weights` (n,), `weighted_values` (n, d_v), `output` (d_v,),
    `matrices` (name -> edited matrix as lists), `title` (the edit) and `titles` (the panels').
    """
    self_attention_steps(x, w_query, w_key, w_value)  # a clear error for bad shapes or dtypes
    if x.dim() != 2:
        raise ValueError(f"x must be (n, d_in), got shape {tuple(x.shape)}")
    originals = {"x": x, "W_q": w_query, "W_k": w_key, "W_v": w_value}
    mats = {name: t.detach().cpu().double().clone() for name, t in originals.items()}
    options = entry_options({name: tuple(t.shape) for name, t in mats.items()})
    if entry not in [v for _, v in options]:
        raise ValueError(f"entry must name an entry of x, W_q, W_k or W_v, got {entry!r}")
    n, d_v = x.shape[0], w_value.shape[1]
    colors = [f"C{j}" for j in range(n)]

    fig = Figure(figsize=(10.0, 2.9))
    ax_s = fig.add_axes((0.05, 0.14, 0.22, 0.68))
    ax_w = fig.add_axes((0.33, 0.14, 0.22, 0.68))
    ax_v = fig.add_axes((0.61, 0.14, 0.22, 0.68))
    # numeric positions with fixed tick labels (categorical axes are slow to draw)
    keys, dims = list(range(n)), list(range(d_v))
    for ax, labels in ((ax_s, "key"), (ax_w, "key"), (ax_v, "dim")):
        count = d_v if labels == "dim" else n
        ax.set_xticks(range(count), [f"{labels} {j}" for j in range(count)])
    title_style = {"ha": "center", "va": "bottom", "fontsize": 12}
    score_bars = ax_s.bar(keys, [0.0] * n, color="tab:blue")
    s_zero = ax_s.axhline(0, color="k", lw=0.6)
    s_title = ax_s.text(0.5, 1.02, "", transform=ax_s.transAxes, **title_style)
    weight_bars = ax_w.bar(keys, [0.0] * n, color="tab:red")
    weight_texts = [ax_w.text(j, 0, "", ha="center", fontsize=8) for j in range(n)]
    ax_w.set_ylim(0, 1.12)
    ax_w.text(0.5, 1.02, "softmax weights", transform=ax_w.transAxes, **title_style)
    stacks = [ax_v.bar(dims, [0.0] * d_v, color=colors[j], label=" ") for j in range(n)]
    (out_marks,) = ax_v.plot(dims, [0.0] * d_v, "k_", markersize=20, mew=2, label="output (sum)")
    v_zero = ax_v.axhline(0, color="k", lw=0.6)
    v_title = ax_v.text(0.5, 1.02, "", transform=ax_v.transAxes, **title_style)
    # A hand-made legend (plain texts are much cheaper to draw than a Legend): one line per value.
    key_texts = [
        fig.text(0.85, 0.78 - 0.1 * j, "", color=colors[j], fontsize=8, weight="bold")
        for j in range(n)
    ]
    out_label = fig.text(0.85, 0.78 - 0.1 * n, "— output (sum)", fontsize=8)
    # Numbers on the bars instead of y tick labels: an axis with ticks costs far more to redraw.
    score_texts = [ax_s.text(j, 0, "", ha="center", fontsize=8) for j in range(n)]
    out_texts = [ax_v.text(c, 0, "", ha="center", fontsize=8) for c in range(d_v)]
    for ax in (ax_s, ax_w, ax_v):
        ax.set_yticks([])
    suptitle = fig.suptitle("", fontsize=9)
    # Axes, tick labels and fixed titles are drawn once; each redraw draws only what changes.
    dynamic = [*score_bars, *score_texts, s_zero, s_title, *weight_bars, *weight_texts]
    dynamic += [r for rects in stacks for r in rects]
    dynamic += [out_marks, *out_texts, v_zero, v_title, *key_texts, suptitle]
    freeze_background(fig, dynamic, dpi=EXPLORER_DPI)
    out_label.set_visible(False)  # a figure-level text: it is in the background now

    def draw(
        query: int, scale: bool, entry: tuple[str, int, int], value: float
    ) -> tuple[Figure, dict[str, Any]]:
        name, r, c = entry
        mats[name][r, c] = value
        steps = self_attention_steps(mats["x"], mats["W_q"], mats["W_k"], mats["W_v"], scale=scale)
        scores = steps.scores[query]  # (n_k,)
        weights = steps.weights[query]  # (n_k,)
        parts = steps.weighted_values[query]  # (n_k, d_v)
        output = steps.outputs[query]  # (d_v,)
        lo, hi = min(0.0, scores.min().item()), max(0.0, scores.max().item())
        pad = 0.15 * (hi - lo) + 0.5
        ax_s.set_ylim(lo - pad, hi + pad)
        for j, (bar, text, s) in enumerate(zip(score_bars, score_texts, scores.tolist())):
            bar.set_height(s)
            text.set_position((j, s + (0.03 if s >= 0 else -0.1) * (hi - lo + 1)))
            text.set_text(f"{s:.2f}")
        s_title.set_text(f"scores of query {query}" + (" / √d" if scale else ""))
        for j, (bar, text, w) in enumerate(zip(weight_bars, weight_texts, weights.tolist())):
            bar.set_height(w)
            text.set_position((j, w + 0.03))
            text.set_text(f"{w:.3f}")
        # stacked bars: positive parts stack upwards from 0, negative ones downwards
        up = torch.zeros(d_v, dtype=torch.float64)
        down = torch.zeros(d_v, dtype=torch.float64)
        for j, rects in enumerate(stacks):
            for c_, rect in enumerate(rects):
                h = parts[j, c_].item()
                base = up if h >= 0 else down
                rect.set_y(base[c_].item())
                rect.set_height(h)
                base[c_] += h
            key_texts[j].set_text(f"{weights[j].item():.2f} × value {j}")
        out_marks.set_ydata(output.tolist())
        v_lo, v_hi = down.min().item(), up.max().item()
        ax_v.set_ylim(v_lo - 0.15 * (v_hi - v_lo) - 0.5, v_hi + 0.15 * (v_hi - v_lo) + 0.5)
        for c_, text in enumerate(out_texts):
            text.set_position((c_, up[c_].item() + 0.04 * (v_hi - v_lo + 1)))
            text.set_text(f"{output[c_].item():.2f}")
        v_title.set_text(f"output {query} = Σ weighted values")
        was = originals[name][r, c].item()
        edit = f"{name}[{r}, {c}] = {value:g}" + ("" if value == was else f" (was {was:g})")
        suptitle.set_text(f"query {query}; edited entry: {edit}")
        state = {
            "query": query,
            "scores": scores.tolist(),
            "weights": weights.tolist(),
            "weighted_values": parts.tolist(),
            "output": output.tolist(),
            "matrices": {k: t.tolist() for k, t in mats.items()},
            "title": suptitle.get_text(),
            "titles": [s_title.get_text(), v_title.get_text()],
        }
        return fig, state

    value = widgets.FloatSlider(
        value=mats[entry[0]][entry[1], entry[2]].item(),
        min=-3.0,
        max=3.0,
        step=0.5,
        description="value",
        continuous_update=True,
    )
    pick = widgets.Dropdown(options=options, value=entry, description="edit entry")

    def show_entry(change: dict[str, Any]) -> None:
        """A newly picked entry: the slider shows its current value (this redraws once)."""
        name, r, c = change["new"]
        value.value = mats[name][r, c].item()

    pick.observe(show_entry, names="value")  # registered first, so it runs before the redraw
    controls = {
        "query": widgets.Dropdown(
            options=[(f"input {i}", i) for i in range(n)], value=0, description="query"
        ),
        "scale": widgets.Checkbox(value=False, description="divide scores by √d"),
        "entry": pick,
        "value": value,
    }
    return build_explorer(controls, draw, title="Self-attention, one query at a time")


def _demo_stepper() -> widgets.VBox:
    """The stepper on the chapter's worked example."""
    return self_attention_stepper(*worked_example())


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"stepper": _demo_stepper}

# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def _flattening_divisor() -> float:
    """Smallest c > 0 for which softmax(scores / c) of the worked example has no weight > 1/2."""
    scores = self_attention_steps(*worked_example(torch.float64)).scores  # (3, 3)
    lo, hi = 1.0, 1000.0  # the largest weight falls as c grows: bisect on c
    for _ in range(100):
        mid = (lo + hi) / 2
        if torch.softmax(scores / mid, dim=-1).max() > 0.5:
            lo = mid
        else:
            hi = mid
    return hi


@self_check
def check_flattening_divisor(divisor: Any) -> bool:
    """Exercise 1: the smallest divisor of the scores that leaves no weight above 0.5."""
    got = as_number(divisor, "your divisor")
    if got <= 0:
        raise ReaderError("divide by a positive number: a divisor <= 0 flips or breaks the scores.")
    return check(
        abs(got - _flattening_divisor()) <= 0.05,
        "divide all nine scores by c before the softmax: the larger c, the flatter every row. "
        "The row that stays peaked longest decides: the one whose top score stands farthest above "
        "its others. Set its largest weight to 1/2 and solve for c (bisection in code is fine).",
        "Correct! Dividing by √3 ≈ 1.73, as scaled attention does, leaves these weights far "
        "sharper than that: scaling only undoes the growth of scores with width.",
    )


def _doubled_query_weight() -> float:
    """Weight of key 0 for query 0 when every entry of W_q is doubled."""
    x, wq, wk, wv = worked_example(torch.float64)
    return self_attention_steps(x, 2 * wq, wk, wv).weights[0, 0].item()


DOUBLED_QUERY_RTOL = 0.02  # exercise 2: rejects "about 0.01" (10 % off) and e^-2 / (2 + e^-2)


@self_check
def check_doubled_query_weight(prediction: Any) -> bool:
    """Exercise 2 (predict first): query 0's weight on key 0 after doubling every entry of W_q,
    e^-4 / (2 + e^-4) = 0.00907, to within 2 %."""
    got = as_number(prediction, "your prediction")
    if not 0 <= got <= 1:
        raise ReaderError("a weight lies between 0 and 1.")
    want = _doubled_query_weight()
    return check(
        abs(got - want) <= DOUBLED_QUERY_RTOL * want,
        "doubling W_q doubles every query, so every score of query 0 doubles. Start from the "
        "scores of step 4, subtract the largest, and take the softmax; round only at the end "
        "(the check asks for 2 %).",
        "Correct! Larger queries sharpen the softmax: the small weight shrinks further. A "
        "learned W_q can set how peaked attention is.",
    )


def _one_hot_key_row_solves(w_key: torch.Tensor) -> bool:
    """Over the keys eye(4) @ w_key, query 0 of the worked example puts its largest weight on
    key 2, and queries 1 and 2 each put more weight on some other key than on key 2."""
    x, wq, _, _ = worked_example(torch.float64)
    z = torch.eye(4, dtype=torch.float64)
    weights = torch.softmax((x @ wq) @ (z @ w_key).T, dim=-1)  # (3, 4): x's queries, z's keys
    others = weights[:, [0, 1, 3]].max(dim=1).values  # (3,): each query's best other key
    margin = 1e-9
    return bool(
        weights[0, 2] > others[0] + margin
        and weights[1, 2] < others[1] - margin
        and weights[2, 2] < others[2] - margin
    )


@self_check
def check_one_hot_key_row(w_key: Any) -> bool:
    """Exercise 3: W_k (4, 3) with one row changed so that, over the keys of the one-hot z =
    eye(4), query 0 gives key 2 its largest weight and queries 1 and 2 do not.

    Only row 2 can do it (the key of one-hot z_r is row r of W_k, and rows 1 and 3 both score
    1 > 0 for query 0), and a key that is merely long wins every query: the reader has to aim it.
    """
    _, _, wk, _ = worked_example(torch.float64)
    new = as_tensor(w_key, "your W_k", torch.float64)
    if new.shape != wk.shape:
        raise ReaderError(f"your W_k has shape {tuple(new.shape)}; W_k has shape (4, 3).")
    if not torch.isfinite(new).all():
        raise ReaderError("your W_k has entries that are not finite numbers.")
    rows = [r for r in range(4) if not torch.equal(new[r], wk[r])]
    if len(rows) != 1:
        return check(
            False,
            f"change exactly one row of w_key (you changed {len(rows)}). z is one-hot: what is "
            "z[r] @ W_k?",
        )
    if rows != [2]:
        return check(
            False,
            f"you changed row {rows[0]} of w_key. z is one-hot, so z[r] @ W_k is one row of W_k: "
            "which row becomes the key that query 0 must prefer?",
        )
    return check(
        _one_hot_key_row_solves(new),
        "write down the three queries (step 3) and the other three keys. The new key must score "
        "higher with query 0 than its other keys do, but lower with queries 1 and 2 than their "
        "best other key. A key that is merely long wins every query: compare the three queries "
        "entry by entry.",
        "Correct! With one-hot inputs each key is one row of W_k, set on its own. In exercise 4 "
        "the inputs are not one-hot, and a row of W_k reaches several keys at once.",
    )


@self_check
def check_self_attending_key(w_key: Any) -> bool:
    """Exercise 4: W_k (4, 3), one entry changed, so that query 0 gives key 0 the most weight."""
    x, wq, wk, wv = worked_example(torch.float64)
    new = as_tensor(w_key, "your W_k", torch.float64)
    if new.shape != wk.shape:
        raise ReaderError(f"your W_k has shape {tuple(new.shape)}; W_k has shape (4, 3).")
    if not torch.isfinite(new).all():
        raise ReaderError("your W_k has entries that are not finite numbers.")
    changed = int((new != wk).sum())
    if changed != 1:
        return check(
            False,
            f"change exactly one entry of w_key (you changed {changed}). Which keys does each "
            "row of W_k feed? Input 0 is [1, 0, 1, 0].",
        )
    weights = self_attention_steps(x, wq, new, wv).weights[0]  # (3,)
    return check(
        int(weights.argmax()) == 0 and weights[0].item() > weights[1:].max().item() + 1e-9,
        "key j is input j times W_k, so row r of W_k reaches key j only when entry r of input "
        "j is non-zero. For each row, list the keys it reaches, and what changing one of its "
        "entries does to query 0's three scores.",
        "Correct! With its own W_k, a key can be made to match or miss a query: queries and "
        "keys play different roles.",
    )
