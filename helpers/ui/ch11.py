"""Chapter 11, attention at scale: the online-softmax explorer and the exercises' self-checks.

The maths it shows lives in `helpers.scale` (`online_softmax_steps`, `flash_attention`); this
module only draws it and checks the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.plotting import freeze_background
from helpers.scale import online_softmax_steps
from helpers.ui.checks import as_number, check, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_causal_tiles",
    "check_layers_to_reach",
    "check_naive_attention_bytes",
    "check_total_rescale",
    "online_softmax_explorer",
]

BLOCK_SIZES = (5, 10, 25)


def online_softmax_explorer(scores: torch.Tensor, values: torch.Tensor, title_query: str = ""):
    """Step one query's online softmax through blocks of keys.

    scores (n_k,), values (n_k,): e.g. a Nadaraya-Watson query's scores -(x - x_i)²/2 and the
    targets y_i. Controls: the block size and how many blocks have been merged. Left: the weights
    so far (keys not yet seen have none) against the exact softmax weights; right: the running
    output after each block against the exact output. State: `stop`, `max`, `sum`, `output`,
    `weights`.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64).reshape(-1)
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if scores.shape != values.shape or scores.numel() < 2:
        raise ValueError(
            f"scores and values must be 1-D of the same length >= 2, got {tuple(scores.shape)} "
            f"and {tuple(values.shape)}"
        )
    n_k = scores.numel()
    exact_w = torch.softmax(scores, 0).numpy()
    exact_out = float(torch.softmax(scores, 0) @ values)
    runs = {b: online_softmax_steps(scores, values[:, None], b) for b in BLOCK_SIZES}

    fig = Figure(figsize=(10, 3.0), dpi=80)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.17, top=0.84, wspace=0.25)
    ax_w, ax_o = fig.subplots(1, 2)
    keys = np.arange(n_k)
    bars = ax_w.bar(keys, np.zeros(n_k), color="tab:red", width=0.8, label="weights so far")
    ax_w.step(keys, exact_w, where="mid", color="black", lw=1, label="exact softmax")
    seen_line = ax_w.axvline(0, color="tab:blue", ls="--", lw=1)
    ax_w.set(xlabel="key index j (0-based)", ylabel="weight", xlim=(-1, n_k))
    top = max(float(s["weights"].max()) for r in runs.values() for s in r)
    ax_w.set_ylim(0, 1.1 * top)
    ax_w.legend(loc="upper right", fontsize=8)
    w_title = ax_w.text(0.5, 1.03, "", transform=ax_w.transAxes, ha="center", fontsize=10)
    ax_o.axhline(exact_out, color="black", lw=1, label=f"exact output {exact_out:.3f}")
    (path,) = ax_o.plot([], [], "o-", color="tab:gray", ms=3, label="running output")
    (here,) = ax_o.plot([], [], "o", color="tab:red", ms=8)
    ax_o.set(xlabel="keys merged", ylabel="output", xlim=(0, n_k + 1))
    all_outs = [float(s["output"][0]) for r in runs.values() for s in r] + [exact_out]
    pad = 0.1 * (max(all_outs) - min(all_outs) + 1e-3)
    ax_o.set_ylim(min(all_outs) - pad, max(all_outs) + pad)
    ax_o.legend(loc="lower right", fontsize=8)
    o_title = ax_o.text(0.5, 1.03, "", transform=ax_o.transAxes, ha="center", fontsize=10)
    # Axes, ticks, legends and the exact curves are drawn once; redraws draw only what changes.
    freeze_background(fig, [*bars, seen_line, w_title, path, here, o_title], dpi=EXPLORER_DPI)

    def draw(block_size: int, blocks: int):
        steps = runs[block_size]
        k = min(max(int(blocks), 1), len(steps))
        step = steps[k - 1]
        w = step["weights"].numpy()
        for bar, h in zip(bars, w, strict=True):
            bar.set_height(h)
        seen_line.set_xdata([step["stop"] - 0.5, step["stop"] - 0.5])
        w_title.set_text(
            f"block {k - 1} of 0..{len(steps) - 1}: {step['stop']} of {n_k} keys merged; "
            f"running max {round(step['max'], 2) + 0.0:.2f}"
        )
        xs = [s["stop"] for s in steps[:k]]
        ys = [float(s["output"][0]) for s in steps[:k]]
        path.set_data(xs, ys)
        here.set_data([xs[-1]], [ys[-1]])
        o_title.set_text(f"running output {ys[-1]:.3f}{title_query}")
        state = {"stop": step["stop"], "max": step["max"], "sum": step["sum"],
                 "output": ys[-1], "weights": w, "blocks": k, "num_blocks": len(steps)}
        return fig, state

    controls = {
        "block_size": widgets.Dropdown(options=list(BLOCK_SIZES), value=BLOCK_SIZES[1],
                                       description="block size"),
        "blocks": widgets.IntSlider(value=1, min=1, max=len(runs[BLOCK_SIZES[1]]),
                                    description="blocks"),
    }

    def bound_blocks(change) -> None:
        # the slider ends at the last block of this block size (a larger value would draw the
        # same picture); registered before the redraw, so the redraw sees the clamped value
        controls["blocks"].max = len(runs[change["new"]])

    controls["block_size"].observe(bound_blocks, names="value")
    box = build_explorer(controls, draw, title="The online softmax, one block of keys at a time")
    return box


def _demo_online_softmax_explorer() -> widgets.VBox:
    from helpers.data import make_regression_data

    data = make_regression_data()
    x = 2.5
    scores = -((x - data.x_train.double()) ** 2) / 2
    return online_softmax_explorer(scores, data.y_train.double(), f" (query x = {x})")


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    "online_softmax": _demo_online_softmax_explorer
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


# Exercise 1: plain attention's two (n, n) matrices for a batch of heads, in bfloat16.
NAIVE_SETUP = {"batch": 8, "heads": 16, "n": 8192, "bytes_per_number": 2, "matrices": 2}


@self_check
def check_naive_attention_bytes(answer: Any, setup: dict | None = None) -> bool:
    """Exercise 1 (predict): bytes of the scores and the softmax weights of unfused attention,
    both (n, n) per head and per example, alive together."""
    cfg = dict(NAIVE_SETUP if setup is None else setup)
    got = as_number(answer)
    want = cfg["matrices"] * cfg["batch"] * cfg["heads"] * cfg["n"] ** 2 * cfg["bytes_per_number"]
    ratio = got / want
    hint = ("one number per (query, key) pair, for every head of every example, in each of the "
            "matrices that are alive at once, at the dtype's bytes per number.")
    if math.isclose(ratio, 1 / cfg["matrices"], rel_tol=1e-3):
        hint = "that is one matrix; the scores and the weights are both alive."
    elif math.isclose(ratio, 4 / cfg["bytes_per_number"], rel_tol=1e-3):
        hint = "bfloat16 is not float32: how many bytes per number?"
    elif math.isclose(ratio, 1 / (cfg["batch"] * cfg["heads"]), rel_tol=1e-3) or math.isclose(
            ratio, 1 / (cfg["batch"] * cfg["heads"] * cfg["matrices"]), rel_tol=1e-3):
        hint = "every head of every example has its own (n, n) matrices."
    return check(abs(ratio - 1) <= 0.01, hint,
                 "Correct: that is before any activation is stored for the backward pass.")


RESCALE_BLOCKS = ((1.0, 0.0), (3.0, 2.0), (2.0, 5.0))


@self_check
def check_total_rescale(answer: Any, blocks: tuple[tuple[float, ...], ...] = RESCALE_BLOCKS
                        ) -> bool:
    """Exercise 2: the product of the rescaling factors e^{m - m'} that the first block's terms
    receive until the last block is merged."""
    got = as_number(answer)
    maxima = []
    for b in blocks:
        maxima.append(max([*b, *maxima[-1:]]))
    factors = [math.exp(a - b) for a, b in zip(maxima, maxima[1:]) if b > a]
    want = math.prod(factors)
    hint = ("the terms are rescaled by e^(old max - new max) each time the running maximum "
            "rises; follow the maximum block by block and multiply.")
    if any(math.isclose(got, f, rel_tol=1e-3) for f in factors) and len(factors) > 1:
        hint = "the maximum rose more than once; every rise rescales the terms again."
    elif math.isclose(got, 1 / want, rel_tol=1e-3):
        hint = "the terms shrink when the maximum rises: the factor is below 1."
    return check(math.isclose(got, want, rel_tol=1e-3), hint,
                 "Correct: the factors telescope to e^(first max - final max).")


@self_check
def check_layers_to_reach(answer: Any, n: int = 200, window: int = 12) -> bool:
    """Exercise 4: the fewest stacked layers of local attention (|i - j| <= window) after which
    position 0's output can depend on the input at position n - 1."""
    got = as_number(answer)
    want = math.ceil((n - 1) / window)
    hint = ("each layer lets information move at most `window` positions; count how many moves "
            "cover the distance from the last position to the first.")
    if not float(got).is_integer():
        hint = "layers come in whole numbers: a partial layer still has to be a whole one."
    elif got == 1:
        hint = "one layer reaches only `window` positions away."
    return check(got == want, hint,
                 "Correct: depth times window is the reach, which is why stacked local layers "
                 "can still connect a long sequence.")


@self_check
def check_causal_tiles(answer: Any, n: int = 1024, block_size: int = 128) -> bool:
    """Exercise 3: how many (query block, key block) tiles `flash_attention` computes with
    is_causal=True for n queries and keys in blocks of block_size."""
    got = as_number(answer)
    blocks = math.ceil(n / block_size)
    want = blocks * (blocks + 1) // 2
    return check(
        got == want,
        "query block i needs key blocks 0..i (the rest lie above the diagonal); add up over i.",
        "Correct: a little over half the tiles, so causal attention costs about half as much.",
    )
