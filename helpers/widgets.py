"""The book's interactive explorers (ipywidgets + inline matplotlib).

Each explorer is a function that builds and returns a widget box. What it draws is computed by
plain functions (tested directly), and every box exposes `controls` (name -> control widget),
`figure` (the matplotlib figure last drawn) and `state` (the numbers last drawn), so tests can move
a control and check what changed without a browser. Only the ipywidgets API common to 7.7 (Colab)
and 8.x is used; figures are drawn inline (no ipympl).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

__all__ = ["build_explorer"]


def build_explorer(
    controls: dict[str, widgets.Widget],
    draw: Callable[..., tuple[Figure, dict[str, Any]]],
    title: str | None = None,
) -> widgets.VBox:
    """A box with `controls` above an output area; `draw(**values)` -> (figure, state) redraws it.

    `draw` is called once now and again whenever a control's value changes.
    """
    out = widgets.Output()
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    box = widgets.VBox([*header, widgets.HBox(list(controls.values())), out])
    box.controls = controls
    box.figure = None
    box.state = {}

    def refresh(_change=None) -> None:
        values = {name: w.value for name, w in controls.items()}
        fig, state = draw(**values)
        if box.figure is not None and box.figure is not fig:
            plt.close(box.figure)
        box.figure, box.state = fig, state
        with out:
            out.clear_output(wait=True)
            display(fig)

    for w in controls.values():
        w.observe(refresh, names="value")
    box.refresh = refresh
    refresh()
    return box


# ---------------------------------------------------------------------------------------------
# Chapter 00: the desk scene
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 02-03: Nadaraya-Watson explorers (kernel / bandwidth / query; loss as a function of w)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05: self-attention stepper and scoring explorers
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07: multi-head and seq2seq explorers
# ---------------------------------------------------------------------------------------------


def _head_figure(weights, head: int, query: int, query_labels, key_labels, head_names):
    """Figure for `head_explorer`: the head's heatmap with the query's row framed, and that row."""
    from matplotlib.patches import Rectangle

    w = weights[head]  # (n_q, n_k)
    fig = Figure(figsize=(7, 2.8))
    ax_map, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.3]})
    ax_map.imshow(w, cmap="Reds", vmin=0, vmax=1)
    ax_map.add_patch(
        Rectangle((-0.5, query - 0.5), w.shape[1], 1, fill=False, edgecolor="black", linewidth=2)
    )
    ax_map.set_xticks(range(w.shape[1]), key_labels)
    ax_map.set_yticks(range(w.shape[0]), query_labels)
    ax_map.set_xlabel("keys")
    ax_map.set_ylabel("queries")
    ax_map.set_title(head_names[head])
    ax_bar.bar(range(w.shape[1]), w[query], color="tab:red")
    ax_bar.set_xticks(range(w.shape[1]), key_labels)
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("keys")
    ax_bar.set_ylabel("weight")
    ax_bar.set_title(f"query {query} ({query_labels[query]})")
    fig.tight_layout()
    return fig


def head_explorer(weights, query_labels=None, key_labels=None, head_names=None) -> widgets.VBox:
    """Pick a head and a query; see that head's weights. weights: (num_heads, n_q, n_k) for one
    example (e.g. `MultiHeadAttention.head_weights[0]`)."""
    from helpers.plotting import to_numpy

    w = to_numpy(weights)
    if w.ndim != 3:
        raise ValueError(f"weights must be (num_heads, n_q, n_k), got shape {tuple(w.shape)}")
    h, n_q, n_k = w.shape
    query_labels = list(query_labels) if query_labels is not None else [str(i) for i in range(n_q)]
    key_labels = list(key_labels) if key_labels is not None else [str(i) for i in range(n_k)]
    head_names = list(head_names) if head_names is not None else [f"head {i + 1}" for i in range(h)]
    if (len(query_labels), len(key_labels), len(head_names)) != (n_q, n_k, h):
        raise ValueError(
            f"need {n_q} query labels, {n_k} key labels and {h} head names for weights of shape "
            f"{tuple(w.shape)}; got {len(query_labels)}, {len(key_labels)}, {len(head_names)}"
        )

    def draw(head: int, query: int):
        fig = _head_figure(w, head, query, query_labels, key_labels, head_names)
        return fig, {"head": head, "query": query, "weights": w[head, query].copy()}

    controls = {
        "head": widgets.Dropdown(
            options=[(name, i) for i, name in enumerate(head_names)], value=0, description="head"
        ),
        "query": widgets.IntSlider(value=0, min=0, max=n_q - 1, description="query"),
    }
    return build_explorer(controls, draw, title="Which keys does each head attend to?")


def alignment_explorer(sources, predictions, weights) -> widgets.VBox:
    """Pick a sequence; see its attention heatmap (output steps as rows, source tokens as columns).

    sources, predictions: lists of N strings (one character per token; predictions without the
    end token); weights: (N, steps, T_src) from `helpers.seq2seq.predict_greedy`.
    """
    from helpers.plotting import to_numpy

    w = to_numpy(weights)
    if w.ndim != 3 or not len(sources) == len(predictions) == w.shape[0]:
        raise ValueError(
            f"need weights (N, steps, T_src) and N sources and predictions; got weights of shape "
            f"{tuple(w.shape)}, {len(sources)} sources, {len(predictions)} predictions"
        )

    def draw(example: int):
        src, pred = sources[example], predictions[example]
        rows = min(len(pred) + 1, w.shape[1])  # output steps including the end token
        m = w[example, :rows, : len(src)]
        fig = Figure(figsize=(3.6, 3.4))
        ax = fig.subplots()
        image = ax.imshow(m, cmap="Reds", vmin=0, vmax=1)
        ax.set_xticks(range(len(src)), list(src))
        ax.set_yticks(range(rows), (list(pred) + ["EOS"])[:rows])
        ax.set_xlabel("source (keys)")
        ax.set_ylabel("output step (queries)")
        ax.set_title(f"{src} -> {pred}")
        fig.colorbar(image, ax=ax, shrink=0.7)
        fig.tight_layout()
        return fig, {"source": src, "prediction": pred, "weights": m.copy()}

    controls = {
        "example": widgets.IntSlider(value=0, min=0, max=len(sources) - 1, description="example")
    }
    return build_explorer(controls, draw, title="What does the decoder look at?")
