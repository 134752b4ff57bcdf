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
from matplotlib.figure import Figure
from matplotlib.patches import Circle, Rectangle

from helpers.plotting import show_figure

__all__ = ["build_explorer", "desk_scene_explorer", "draw_desk_scene"]


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
            show_figure(fig)

    for w in controls.values():
        w.observe(refresh, names="value")
    box.refresh = refresh
    refresh()
    return box


# ---------------------------------------------------------------------------------------------
# Chapter 00: the desk scene
# ---------------------------------------------------------------------------------------------


def draw_desk_scene(intention: str, saliency: float) -> tuple[Figure, dict[str, Any]]:
    """The desk (objects shaded by their weight) beside a bar chart of the weights."""
    from helpers.cues import DESK_OBJECTS, desk_scene_weights

    weights = desk_scene_weights(intention, saliency)  # (5,)
    winner = DESK_OBJECTS[int(weights.argmax())]
    fig = Figure(figsize=(8, 2.8))
    ax_desk, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.1, 1]})
    ax_desk.add_patch(Rectangle((0, 0), 10, 5, color="burlywood", alpha=0.35))
    places = [(0.4, 2.8), (2.3, 0.6), (4.4, 2.8), (6.3, 0.6), (7.9, 2.9)]
    for (x, y), name, w in zip(places, DESK_OBJECTS, weights.tolist()):
        edge = 1 + 6 * w
        if name == "red coffee cup":
            ax_desk.add_patch(Circle((x + 0.7, y + 0.8), 0.7, fc="red", ec="black", lw=edge))
        else:
            ax_desk.add_patch(Rectangle((x, y), 1.6, 1.9, fc="white", ec="black", lw=edge))
        ax_desk.text(x + 0.8, y - 0.35, f"{name}\n{w:.2f}", ha="center", va="top", fontsize=7)
    ax_desk.set_xlim(-0.2, 10.2)
    ax_desk.set_ylim(-0.9, 5.2)
    ax_desk.set_aspect("equal")
    ax_desk.axis("off")
    ax_desk.set_title(f"intention: {intention}; saliency {saliency:.1f}", fontsize=9)
    colors = ["tab:red" if n == winner else "tab:gray" for n in DESK_OBJECTS]
    ax_bar.barh(list(DESK_OBJECTS), weights.tolist(), color=colors)
    ax_bar.set_xlim(0, 1)
    ax_bar.invert_yaxis()
    ax_bar.set_xlabel("attention weight")
    ax_bar.set_title(f"most attention: {winner}", fontsize=9)
    fig.tight_layout()
    return fig, {"weights": weights.tolist(), "winner": winner}


def desk_scene_explorer(intention: str = "read a book", saliency: float = 1.0) -> widgets.VBox:
    """Pick an intention (volitional cue) and a saliency strength (non-volitional cue)."""
    from helpers.cues import DESK_INTENTIONS, desk_scene_scores

    desk_scene_scores(intention, saliency)  # a clear ValueError/TypeError for bad arguments
    controls = {
        "intention": widgets.Dropdown(
            options=list(DESK_INTENTIONS), value=intention, description="intention"
        ),
        "saliency": widgets.FloatSlider(
            value=saliency, min=0.0, max=5.0, step=0.1, description="saliency"
        ),
    }
    return build_explorer(controls, draw_desk_scene, title="Which object gets the attention?")


# ---------------------------------------------------------------------------------------------
# Chapters 02-03: Nadaraya-Watson explorers (kernel / bandwidth / query; loss as a function of w)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 04-05: self-attention stepper and scoring explorers
# ---------------------------------------------------------------------------------------------

import math  # noqa: E402

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ += [
    "SCORING_FUNCTIONS",
    "scoring_explorer",
    "scoring_weights",
    "self_attention_step_figure",
    "self_attention_stepper",
]


def self_attention_step_figure(
    x: torch.Tensor,
    w_query: torch.Tensor,
    w_key: torch.Tensor,
    w_value: torch.Tensor,
    query: int = 0,
    scale: bool = False,
) -> tuple[Figure, dict[str, Any]]:
    """One query of self-attention on x (n, d_in): its scores, weights and weighted values drawn.

    Returns the figure and a state dict with `query`, `scores` (n,), `weights` (n,),
    `weighted_values` (n, d_v) and `output` (d_v,) as lists of floats.
    """
    from helpers.attention import self_attention_steps

    if x.dim() != 2:
        raise ValueError(f"x must be (n, d_in), got shape {tuple(x.shape)}")
    n = x.shape[0]
    if not 0 <= query < n:
        raise ValueError(f"query must be in 0..{n - 1}, got {query}")
    steps = self_attention_steps(x, w_query, w_key, w_value, scale=scale)
    scores = steps.scores[query].detach().cpu().double()  # (n_k,)
    weights = steps.weights[query].detach().cpu().double()  # (n_k,)
    parts = steps.weighted_values[query].detach().cpu().double()  # (n_k, d_v)
    output = steps.outputs[query].detach().cpu().double()  # (d_v,)
    keys = [f"key {j + 1}" for j in range(n)]
    fig = Figure(figsize=(10, 2.6), layout="constrained")
    ax_s, ax_w, ax_v = fig.subplots(1, 3)
    ax_s.bar(keys, scores.tolist(), color="tab:blue")
    ax_s.set_title(f"scores of query {query + 1}" + (" / √d" if scale else ""))
    ax_w.bar(keys, weights.tolist(), color="tab:red")
    ax_w.set_ylim(0, 1)
    ax_w.set_title("softmax weights")
    for j, w in enumerate(weights.tolist()):
        ax_w.text(j, w + 0.03, f"{w:.3f}", ha="center", fontsize=8)
    bottom = torch.zeros(parts.shape[1], dtype=torch.float64)
    dims = [f"dim {c + 1}" for c in range(parts.shape[1])]
    for j in range(n):
        ax_v.bar(
            dims,
            parts[j].tolist(),
            bottom=bottom.tolist(),
            label=f"{weights[j]:.2f} × value {j + 1}",
        )
        bottom = bottom + parts[j]
    ax_v.plot(dims, output.tolist(), "k_", markersize=20, label="output (sum)")
    ax_v.set_title(f"output {query + 1} = Σ weighted values")
    ax_v.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    state = {
        "query": query,
        "scores": scores.tolist(),
        "weights": weights.tolist(),
        "weighted_values": parts.tolist(),
        "output": output.tolist(),
    }
    return fig, state


def self_attention_stepper(
    x: torch.Tensor, w_query: torch.Tensor, w_key: torch.Tensor, w_value: torch.Tensor
) -> widgets.VBox:
    """Pick a query of x (n, d_in) and see its scores, weights and weighted sum (chapter 04)."""
    n = x.shape[0]
    controls = {
        "query": widgets.Dropdown(
            options=[(f"input {i + 1}", i) for i in range(n)], value=0, description="query"
        ),
        "scale": widgets.Checkbox(value=False, description="divide scores by √d"),
    }

    def draw(query: int, scale: bool) -> tuple[Figure, dict[str, Any]]:
        return self_attention_step_figure(x, w_query, w_key, w_value, query, scale)

    return build_explorer(controls, draw, title="Self-attention, one query at a time")


SCORING_FUNCTIONS = ("scaled dot product", "dot product", "additive", "gaussian")


def scoring_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scoring: str,
    valid_len: int | None = None,
    additive: nn.Module | None = None,
) -> torch.Tensor:
    """Weights (n_q, n_k) of queries (n_q, d) over keys (n_k, d) under one scoring function.

    `additive` is an `AdditiveAttention` whose W_q, W_k, w_v give the additive scores; keys past
    `valid_len` are masked.
    """
    from helpers.attention import masked_softmax

    q, k = queries[None], keys[None]  # (1, n_q, d), (1, n_k, d)
    if scoring == "scaled dot product":
        scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])  # (1, n_q, n_k)
    elif scoring == "dot product":
        scores = q @ k.transpose(1, 2)  # (1, n_q, n_k)
    elif scoring == "additive":
        if additive is None:
            raise ValueError("scoring='additive' needs an AdditiveAttention module as `additive`")
        feats = torch.tanh(
            additive.W_q(q)[:, :, None] + additive.W_k(k)[:, None]
        )  # (1, n_q, n_k, h)
        scores = additive.w_v(feats).squeeze(-1)  # (1, n_q, n_k)
    elif scoring == "gaussian":
        scores = -((q[:, :, None] - k[:, None]) ** 2).sum(-1) / 2  # (1, n_q, n_k)
    else:
        raise ValueError(f"scoring must be one of {SCORING_FUNCTIONS}, got {scoring!r}")
    lens = None if valid_len is None else torch.tensor([valid_len], device=queries.device)
    return masked_softmax(scores, lens)[0].detach()  # (n_q, n_k)


def scoring_explorer(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, additive: nn.Module
) -> widgets.VBox:
    """Heatmap of the weights of queries (n_q, d) over keys (n_k, d) per scoring function (ch. 05).

    State: `weights` (n_q, n_k) and `outputs` (n_q, d_v) = weights @ values, as lists.
    """
    n_k = keys.shape[0]
    controls = {
        "scoring": widgets.Dropdown(
            options=list(SCORING_FUNCTIONS), value=SCORING_FUNCTIONS[0], description="scoring"
        ),
        "valid_len": widgets.IntSlider(value=n_k, min=0, max=n_k, description="valid keys"),
    }

    def draw(scoring: str, valid_len: int) -> tuple[Figure, dict[str, Any]]:
        with torch.no_grad():
            weights = scoring_weights(queries, keys, scoring, valid_len, additive)  # (n_q, n_k)
            outputs = weights @ values  # (n_q, n_k) @ (n_k, d_v) -> (n_q, d_v)
        w = weights.cpu().double()
        fig = Figure(figsize=(5, 2.4), layout="constrained")
        ax = fig.subplots()
        im = ax.imshow(w.numpy(), cmap="Reds", vmin=0, vmax=1)
        ax.axvline(valid_len - 0.5, color="k", lw=1, ls="--")
        ax.set_xlabel("keys")
        ax.set_ylabel("queries")
        ax.set_title(
            f"{scoring}: weights (keys ≥ {valid_len + 1} masked)"
            if valid_len < n_k
            else f"{scoring}: weights"
        )
        fig.colorbar(im, ax=ax, shrink=0.8)
        return fig, {"weights": w.tolist(), "outputs": outputs.cpu().double().tolist()}

    return build_explorer(controls, draw, title="Scoring functions side by side")


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
