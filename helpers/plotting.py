"""Figures for the book: d2l-style `plot`, `show_heatmaps`, `plot_kernel_reg` and a live `Animator`.

Everything accepts tensors on any device and with gradients; they are detached and moved to the
CPU before drawing. Figures are matplotlib figures (inline in JupyterLab and Colab).
"""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure

__all__ = [
    "Animator",
    "figure_bundle",
    "WEIGHT_CMAP",
    "WEIGHT_NORM",
    "freeze_background",
    "plot",
    "plot_kernel_reg",
    "regression_weight_map",
    "set_figsize",
    "show_figure",
    "show_heatmaps",
    "to_numpy",
    "weight_image",
    "weights_rgba",
]


WEIGHT_CMAP = colormaps["Reds"]  # the explorers' heatmaps: one fixed scale for every weight
WEIGHT_NORM = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of x (tensor on any device, with or without grad, or array-like)."""
    if isinstance(x, torch.Tensor):
        x = x.detach()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def figure_bundle(fig: Figure) -> dict[str, str]:
    """The figure as a display bundle: a PNG and a short text stand-in."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    w, h = fig.get_size_inches() * fig.dpi
    return {
        "image/png": base64.b64encode(buf.getvalue()).decode("ascii"),
        "text/plain": f"<Figure size {w:g}x{h:g} with {len(fig.axes)} Axes>",
    }


def show_figure(fig: Figure, handle=None):
    """Show a figure made without pyplot (or update `handle`, the result of an earlier call).

    IPython only learns to draw matplotlib figures once pyplot has made one, so a `Figure`
    displayed before that would show as text. Sending the PNG ourselves works in every front end
    (JupyterLab, Colab, nbclient). Returns a display handle, or None outside IPython.
    """
    from IPython import get_ipython
    from IPython.display import display

    if get_ipython() is None:
        return None
    bundle = figure_bundle(fig)
    if handle is None:
        return display(bundle, raw=True, display_id=True)
    handle.update(bundle, raw=True)
    return handle


def weights_rgba(weights: np.ndarray) -> np.ndarray:
    """Attention weights (n_q, n_k) in [0, 1] as RGBA pixels on the explorers' fixed colour scale.

    The scale is `WEIGHT_NORM` on `WEIGHT_CMAP` (0 to 1, square-root spaced, so that small weights
    stay visible and uniform weights of 1/n stay pale); computing the pixels here spares the
    figure a masked-array normalisation on every redraw.
    """
    return WEIGHT_CMAP(np.sqrt(np.clip(weights, 0.0, 1.0)), bytes=True)  # (n_q, n_k, 4) uint8


def weight_image(ax, n_q: int, n_k: int, ticks=(0, 0.02, 0.1, 0.25, 0.5, 1)):
    """An explorer's (n_q, n_k) weight heatmap on the fixed 0-1 scale, with its colour bar.

    Returns the image; update it with `image.set_data(weights_rgba(weights))`.
    """
    from matplotlib.cm import ScalarMappable

    image = ax.imshow(weights_rgba(np.zeros((n_q, n_k))), aspect="auto", interpolation="nearest")
    ax.figure.colorbar(
        ScalarMappable(norm=WEIGHT_NORM, cmap=WEIGHT_CMAP), ax=ax, shrink=0.85, ticks=list(ticks)
    )
    return image


def regression_weight_map(ax, x_test, n_train: int):
    """`weight_image` for chapters 2 and 3's regression: test inputs (queries, labelled by their x
    every 10 rows) against training inputs (keys, every 10th position). Returns the image."""
    n_test = len(x_test)
    image = weight_image(ax, n_test, n_train)
    ax.set(xlabel="training inputs (keys)", ylabel="test inputs (queries)")
    ticks = list(range(0, n_test, 10))
    ax.set_yticks(ticks, [f"{x_test[i]:.1f}" for i in ticks])
    ax.set_xticks(range(0, n_train, 10))
    return image


def freeze_background(fig: Figure, dynamic: Sequence[Artist], dpi: float) -> None:
    """Render everything but `dynamic` once and show it as a picture behind the dynamic artists.

    For explorers: axes, ticks, labels, legends and fixed curves are then not laid out and
    rasterised again on every redraw, only the artists that change. Call it after the figure
    is complete, with the dpi its PNGs are saved at; afterwards only update the dynamic artists
    (their titles should be `ax.text`, not `ax.set_title`) and do not resize the figure.
    """
    dynamic = list(dynamic)
    fig.set_dpi(dpi)
    canvas = FigureCanvasAgg(fig)
    shown = [a.get_visible() for a in dynamic]
    for a in dynamic:
        a.set_visible(False)
    fig.patch.set_facecolor("white")
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba()).copy()  # (height, width, 4), top row first
    for a, visible in zip(dynamic, shown):
        a.set_visible(visible)
    keep = {id(a) for a in dynamic}
    for ax in fig.axes:
        children = ax.get_children()
        if not any(id(c) in keep for c in children):
            ax.set_visible(False)  # e.g. a colorbar: all of it is in the background
            continue
        ax.set_axis_off()  # ticks, labels and spines are in the background
        ax.patch.set_visible(False)
        for c in children:
            if id(c) not in keep:
                c.set_visible(False)
    fig.add_artist(_Background(background[::-1].copy()))  # Agg draws images bottom row first


class _Background(Artist):
    """A pre-rendered RGBA picture of the whole figure, drawn first and without resampling."""

    def __init__(self, rgba: np.ndarray):
        super().__init__()
        self.rgba = rgba  # (height, width, 4) uint8, bottom row first
        self.set_zorder(-10)

    def draw(self, renderer) -> None:
        gc = renderer.new_gc()
        renderer.draw_image(gc, 0, 0, self.rgba)
        gc.restore()


def set_figsize(figsize: tuple[float, float] = (3.5, 2.5)) -> None:
    """Set the default figure size (d2l's `d2l.set_figsize`)."""
    plt.rcParams["figure.figsize"] = figsize


def set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend) -> None:
    """Set labels, limits, scales and legend of matplotlib axes (d2l's `d2l.set_axes`)."""
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_xscale(xscale)
    axes.set_yscale(yscale)
    axes.set_xlim(xlim)
    axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid(True)


def _has_one_axis(x: Any) -> bool:
    x = to_numpy(x) if isinstance(x, torch.Tensor) else x
    return (hasattr(x, "ndim") and x.ndim == 1) or (
        isinstance(x, list) and len(x) > 0 and not hasattr(x[0], "__len__")
    )


def plot(
    X,
    Y=None,
    xlabel=None,
    ylabel=None,
    legend=None,
    xlim=None,
    ylim=None,
    xscale="linear",
    yscale="linear",
    fmts=("-", "m--", "g-.", "r:"),
    figsize=(3.5, 2.5),
    axes=None,
):
    """Plot one or several curves (d2l's `d2l.plot`); returns the axes."""
    if legend is None:
        legend = []
    if axes is None:
        _, axes = plt.subplots(figsize=figsize)
    if _has_one_axis(X):
        X = [X]
    if Y is None:
        X, Y = [[]] * len(X), X
    elif _has_one_axis(Y):
        Y = [Y]
    if len(X) != len(Y):
        X = X * len(Y)
    axes.cla()
    for x, y, fmt in zip(X, Y, fmts * len(Y)):
        x, y = (to_numpy(x) if len(x) else x), to_numpy(y)
        if len(x):
            axes.plot(x, y, fmt)
        else:
            axes.plot(y, fmt)
    set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend)
    return axes


def _as_4d(matrices: Any) -> np.ndarray:
    m = to_numpy(matrices)
    if m.ndim == 2:
        return m[None, None]
    if m.ndim == 3:
        return m[None]
    if m.ndim == 4:
        return m
    raise ValueError(
        "matrices must be 2-D (n_q, n_k), 3-D (cols, n_q, n_k) or 4-D (rows, cols, n_q, n_k); "
        f"got shape {tuple(m.shape)}"
    )


def show_heatmaps(
    matrices,
    xlabel: str,
    ylabel: str,
    titles: Sequence[str] | None = None,
    figsize: tuple[float, float] = (2.5, 2.5),
    cmap: str = "Reds",
    vmin: float | None = None,
    vmax: float | None = None,
    xticklabels: Sequence[str] | None = None,
    yticklabels: Sequence[str] | None = None,
    share_scale: bool = True,
):
    """Draw attention-weight heatmaps (d2l's `d2l.show_heatmaps`): queries on rows, keys on columns.

    matrices: (n_q, n_k), (cols, n_q, n_k) or (rows, cols, n_q, n_k); any device, grad allowed.
    xticklabels / yticklabels name the keys / queries (one label per column / row of a matrix).
    share_scale: one colour scale and colorbar for all panels (equal colours mean equal weights);
    False gives each panel its own scale and colorbar, for panels of very different ranges.
    Returns the figure.
    """
    m = _as_4d(matrices)
    if m.size == 0:
        raise ValueError(f"matrices is empty (shape {tuple(m.shape)})")
    num_rows, num_cols = m.shape[:2]
    # By default one colour scale for all panels, so equal colours mean equal weights everywhere.
    if share_scale:
        vmin = float(np.nanmin(m)) if vmin is None else vmin
        vmax = float(np.nanmax(m)) if vmax is None else vmax
    for name, labels, n in (("xticklabels", xticklabels, m.shape[3]),
                            ("yticklabels", yticklabels, m.shape[2])):
        if labels is not None and len(labels) != n:
            raise ValueError(f"{name} has {len(labels)} entries but the matrices have {n}")
    # Long key names are turned upright so they do not overlap.
    x_rotation = 90 if xticklabels is not None and max(len(str(t)) for t in xticklabels) > 3 else 0
    if titles is not None and len(titles) != num_cols:
        raise ValueError(f"titles has {len(titles)} entries but matrices has {num_cols} columns")
    fig, axes = plt.subplots(
        num_rows, num_cols, figsize=figsize, sharex=True, sharey=True, squeeze=False
    )
    pcm = None
    for i, (row_axes, row_matrices) in enumerate(zip(axes, m)):
        for j, (ax, matrix) in enumerate(zip(row_axes, row_matrices)):
            lo, hi = vmin, vmax
            if not share_scale and vmin is None and np.ptp(matrix) == 0:
                lo = min(0.0, float(matrix.min()))  # a flat panel: show its value against 0
            pcm = ax.imshow(matrix, cmap=cmap, vmin=lo, vmax=hi)
            if not share_scale:
                fig.colorbar(pcm, ax=ax, shrink=0.6)
            if i == num_rows - 1:
                ax.set_xlabel(xlabel)
            if j == 0:
                ax.set_ylabel(ylabel)
            if titles:
                ax.set_title(titles[j])
            if xticklabels is not None:
                ax.set_xticks(range(len(xticklabels)), list(xticklabels), rotation=x_rotation)
            if yticklabels is not None:
                ax.set_yticks(range(len(yticklabels)), list(yticklabels))
    if share_scale:
        fig.colorbar(pcm, ax=axes, shrink=0.6)
    return fig


def plot_kernel_reg(y_hat, data, ax=None, label: str = "Pred", title: str | None = None):
    """Plot a regression fit against the truth and the training points (d2l's `plot_kernel_reg`).

    y_hat: (n_test,) predictions at data.x_test; data: a `helpers.data.RegressionData`.
    """
    y_hat = to_numpy(y_hat)
    x_test = to_numpy(data.x_test)
    if y_hat.shape != x_test.shape:
        raise ValueError(
            f"y_hat has shape {tuple(y_hat.shape)} but data.x_test has shape {tuple(x_test.shape)}"
        )
    ax = plot(
        x_test,
        [to_numpy(data.y_truth), y_hat],
        "x",
        "y",
        legend=["Truth", label],
        xlim=[0, 5],
        ylim=[-1, 5],
        axes=ax,
    )
    ax.plot(to_numpy(data.x_train), to_numpy(data.y_train), "o", alpha=0.5)
    if title:
        ax.set_title(title)
    return ax


class Animator:
    """A live training plot (d2l's `d2l.Animator`): call `add(x, y)` as training goes.

    The figure is shown once and then updated in place through a display handle, so it works in
    JupyterLab, Colab and headless runs (nbclient applies the updates) without clearing anything
    else the cell printed. Outside IPython it just records the points.
    """

    def __init__(
        self,
        xlabel=None,
        ylabel=None,
        legend=None,
        xlim=None,
        ylim=None,
        xscale="linear",
        yscale="linear",
        fmts=("-", "m--", "g-.", "r:"),
        figsize=(3.5, 2.5),
        every: float = 0.2,
    ):
        self.legend = legend or []
        self.fig = Figure(figsize=figsize)
        self.axes = self.fig.subplots()
        self.config_axes = lambda: set_axes(
            self.axes, xlabel, ylabel, xlim, ylim, xscale, yscale, self.legend
        )
        self.fmts = fmts
        self.X: list[list[float]] | None = None
        self.Y: list[list[float]] | None = None
        self.every = every  # seconds between redraws; the last point is always drawn by `show`
        self._last = 0.0
        self._handle = None

    def add(self, x, y) -> None:
        """Append one point per curve: x a number or a list, y a number or a list."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if self.X is None:
            self.X = [[] for _ in range(n)]
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y)):
            if a is not None and b is not None:
                self.X[i].append(float(a))
                self.Y[i].append(float(b))
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            self.show()

    def draw(self) -> None:
        """Redraw the curves on the figure (no display)."""
        self.axes.cla()
        for x, y, fmt in zip(self.X or [], self.Y or [], self.fmts):
            self.axes.plot(x, y, fmt)
        self.config_axes()

    def show(self) -> None:
        """Draw and show (first call) or update (later calls) the figure in place."""
        self.draw()
        self._handle = show_figure(self.fig, self._handle)
