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


def draw_nw_explorer(
    data, kernel: str = "gaussian", bandwidth: float = 1.0, query: float = 2.5
) -> tuple[Figure, dict[str, Any]]:
    """Chapter 02: the fit on the test grid, one query's weights over the training points and the
    (n_test, n_train) weight heatmap, for one kernel and bandwidth. Returns (figure, state)."""
    import torch

    from helpers.plotting import plot_kernel_reg, to_numpy
    from helpers.pooling import attention_weights

    weights = attention_weights(data.x_test, data.x_train, kernel, bandwidth)  # (n_test, n_train)
    y_hat = weights @ data.y_train  # (n_test, n_train) @ (n_train,) -> (n_test,)
    q = torch.tensor([float(query)], dtype=data.x_train.dtype, device=data.x_train.device)
    w_q = attention_weights(q, data.x_train, kernel, bandwidth)[0]  # (n_train,)
    prediction = float(w_q @ data.y_train)
    row = int(torch.argmin((data.x_test - float(query)).abs()))  # the heatmap row nearest the query

    fig = Figure(figsize=(10.5, 3.0), layout="constrained")
    ax_fit, ax_w, ax_map = fig.subplots(1, 3)
    plot_kernel_reg(y_hat, data, ax=ax_fit, label="Pred", title=f"{kernel}, σ = {bandwidth:.2f}")
    ax_fit.axvline(float(query), color="gray", lw=0.8)
    ax_fit.plot([float(query)], [prediction], "k*", ms=9)
    x_train = to_numpy(data.x_train)
    ax_w.bar(x_train, to_numpy(w_q), width=0.06, color="tab:red")
    ax_w.axvline(float(query), color="gray", lw=0.8)
    ax_w.set(xlim=(0, 5), xlabel="training input $x_i$ (key)", ylabel="weight")
    ax_w.set_title(f"weights of query x = {float(query):.2f}")
    ax_map.imshow(to_numpy(weights), cmap="Reds", aspect="auto")
    ax_map.axhline(row, color="tab:blue", lw=0.8)
    ax_map.set(xlabel="training inputs (keys)", ylabel="test inputs (queries)")
    ax_map.set_title("attention weights")
    state = {
        "kernel": kernel,
        "bandwidth": float(bandwidth),
        "query": float(query),
        "weights": to_numpy(w_q),
        "prediction": prediction,
        "y_hat": to_numpy(y_hat),
        "test_mse": float(((y_hat - data.y_truth) ** 2).mean()),
        "heatmap_row": row,
    }
    return fig, state


def nw_explorer(
    data, kernel: str = "gaussian", bandwidth: float = 1.0, query: float = 2.5
) -> widgets.VBox:
    """Chapter 02: pick a kernel, a width σ and a query; the fit, the query's weights and the
    heatmap update together."""
    from helpers.pooling import KERNELS

    controls = {
        "kernel": widgets.Dropdown(options=list(KERNELS), value=kernel, description="kernel"),
        "bandwidth": widgets.FloatLogSlider(
            value=bandwidth, base=10, min=-1.5, max=1, step=0.05, description="σ"
        ),
        "query": widgets.FloatSlider(value=query, min=0, max=5, step=0.05, description="query x"),
    }
    draw = lambda **v: draw_nw_explorer(data, **v)
    return build_explorer(controls, draw, title="Nadaraya-Watson: kernel, width and one query")


def loo_loss(data, w: float) -> float:
    """Mean squared leave-one-out training error of parametric pooling with width w."""
    import torch

    from helpers.pooling import NWKernelRegression, leave_one_out

    keys, values = leave_one_out(data.x_train, data.y_train)  # (n, n - 1) each
    with torch.no_grad():
        y_hat = NWKernelRegression(w=w).to(data.x_train)(data.x_train, keys, values)  # (n,)
    return float(((y_hat - data.y_train) ** 2).mean())


def draw_w_explorer(
    data, w: float, w_trained: float, w_grid, losses
) -> tuple[Figure, dict[str, Any]]:
    """Chapter 03: the leave-one-out loss against w (trained w and current w marked), the fit and
    the test weight heatmap at the current w. Returns (figure, state)."""
    import torch

    from helpers.plotting import plot_kernel_reg, to_numpy
    from helpers.pooling import NWKernelRegression

    net = NWKernelRegression(w=w).to(data.x_train)
    with torch.no_grad():
        y_hat = net(
            data.x_test, data.x_train, data.y_train
        )  # keys shared by all queries: (n_test,)
    weights = net.attention_weights  # (n_test, n_train)
    loss = loo_loss(data, w)

    fig = Figure(figsize=(10.5, 3.0), layout="constrained")
    ax_loss, ax_fit, ax_map = fig.subplots(1, 3)
    ax_loss.plot(to_numpy(w_grid), to_numpy(losses), "-")
    ax_loss.axvline(w_trained, color="gray", ls="--", lw=1, label=f"trained w = {w_trained:.2f}")
    ax_loss.plot([w], [loss], "ro", label=f"w = {w:.2f}")
    ax_loss.set(xlabel="w", ylabel="leave-one-out MSE")
    ax_loss.legend(fontsize=8)
    ax_loss.grid(True)
    plot_kernel_reg(y_hat, data, ax=ax_fit, title=f"fit at w = {w:.2f}")
    ax_map.imshow(to_numpy(weights), cmap="Reds", aspect="auto")
    ax_map.set(xlabel="training inputs (keys)", ylabel="test inputs (queries)")
    ax_map.set_title("attention weights")
    state = {
        "w": float(w),
        "loss": loss,
        "y_hat": to_numpy(y_hat),
        "weights": to_numpy(weights),
        "test_mse": float(((y_hat - data.y_truth) ** 2).mean()),
    }
    return fig, state


def w_explorer(data, w_trained: float, w_max: float = 15.0, n_grid: int = 60) -> widgets.VBox:
    """Chapter 03: drag w and watch the loss, the fit and the weights; the trained w is marked."""
    import torch

    w_grid = torch.linspace(w_max / n_grid, w_max, n_grid)
    losses = torch.tensor([loo_loss(data, float(w)) for w in w_grid])
    controls = {
        "w": widgets.FloatSlider(
            value=round(float(w_trained), 2), min=0.1, max=w_max, step=0.05, description="w"
        )
    }
    draw = lambda w: draw_w_explorer(data, w, float(w_trained), w_grid, losses)
    return build_explorer(controls, draw, title="Parametric pooling: the loss as a function of w")


# ---------------------------------------------------------------------------------------------
# Chapters 04-05: self-attention stepper and scoring explorers
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07: multi-head and seq2seq explorers
# ---------------------------------------------------------------------------------------------
