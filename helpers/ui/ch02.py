"""Chapter 2 (Nadaraya-Watson kernel regression): its explorer and its self-checks.

The maths lives in `helpers.pooling`; this module only draws it and checks the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text

from helpers.data import RegressionData, make_regression_data
from helpers.plotting import freeze_background, regression_weight_map, to_numpy, weights_rgba
from helpers.pooling import KERNELS, attention_weights, leave_one_out_mse
from helpers.ui.checks import ReaderError, as_number, as_tensor, check, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "BY_HAND_KEYS",
    "BY_HAND_QUERY",
    "BY_HAND_VALUES",
    "EXPLORER_DEMOS",
    "NWExplorerFigure",
    "check_far_query",
    "check_lifted_features",
    "check_loo_bandwidth",
    "check_nw_by_hand",
    "nw_explorer",
]


# ---------------------------------------------------------------------------------------------
# Explorer: kernel, width sigma and one query
# ---------------------------------------------------------------------------------------------


def _title(ax) -> Text:
    """A title that an explorer rewrites (a plain text above the axes)."""
    return ax.text(0.5, 1.03, "", transform=ax.transAxes, ha="center", va="bottom", fontsize=9)


class NWExplorerFigure:
    """One figure, made once: the fit, one query's weights, and the weight heatmap.

    Calling it with (kernel, bandwidth, query) updates the artists in place and returns
    (figure, state). The heatmap's colour scale is fixed (0 to 1, square-root spaced), so equal
    colours mean equal weights for every kernel and width, and uniform weights of 1/n look pale.
    """

    def __init__(self, data: RegressionData):
        self.data = data
        x_train, y_train = to_numpy(data.x_train), to_numpy(data.y_train)
        x_test, y_truth = to_numpy(data.x_test), to_numpy(data.y_truth)
        n_test, n_train = len(x_test), len(x_train)
        fig = Figure(figsize=(10.5, 3.1))
        fig.subplots_adjust(left=0.05, right=0.97, bottom=0.17, top=0.87, wspace=0.3)
        ax_fit, ax_w, ax_map = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.9]})
        ax_fit.plot(x_test, y_truth, "-", label="truth $f$")
        (self.fit,) = ax_fit.plot(x_test, np.zeros(n_test), "m--", label=r"$\hat f$")
        ax_fit.plot(x_train, y_train, "o", alpha=0.4, ms=4, label="training points")
        self.query_line = ax_fit.axvline(0.0, color="gray", lw=0.8)
        (self.star,) = ax_fit.plot([0.0], [0.0], "k*", ms=10, label=r"$\hat f$(query)")
        ax_fit.set(xlim=(0, 5), ylim=(-1, 5), xlabel="x", ylabel="y")
        ax_fit.legend(fontsize=6.5, loc="lower right", ncol=2)
        self.fit_title = _title(ax_fit)
        self.x_keys = x_train
        # one stem per key, drawn as a single collection (cheaper to redraw than 50 bars)
        self.stems = ax_w.vlines(x_train, 0, np.zeros(n_train), color="tab:red", lw=3)
        self.w_query_line = ax_w.axvline(0.0, color="gray", lw=0.8)
        ax_w.set(xlim=(0, 5), ylim=(0, 1.02), xlabel="training input $x_i$ (key)")
        ax_w.set_ylabel("weight")
        self.w_title = _title(ax_w)
        # RGBA pixels on the fixed 0-1 scale, with the matching colour bar
        self.image = regression_weight_map(ax_map, x_test, n_train)
        self.row_line = ax_map.axhline(0, color="tab:blue", lw=0.8)
        self.map_title = _title(ax_map)
        self.figure = fig
        dynamic = [self.fit, self.query_line, self.star, self.fit_title, self.stems]
        dynamic += [self.w_query_line, self.w_title, self.image, self.row_line, self.map_title]
        freeze_background(fig, dynamic, dpi=EXPLORER_DPI)

    def __call__(
        self, kernel: str = "gaussian", bandwidth: float = 1.0, query: float = 2.5
    ) -> tuple[Figure, dict[str, Any]]:
        data = self.data
        weights = attention_weights(data.x_test, data.x_train, kernel, bandwidth)  # (n_test, n_tr)
        y_hat = weights @ data.y_train  # (n_test, n_train) @ (n_train,) -> (n_test,)
        q = torch.tensor([float(query)], dtype=data.x_train.dtype)
        w_q = attention_weights(q, data.x_train, kernel, bandwidth)[0]  # (n_train,)
        prediction = float(w_q @ data.y_train)
        row = int(torch.argmin((data.x_test - float(query)).abs()))  # heatmap row nearest query
        test_mse = float(((y_hat - data.y_truth) ** 2).mean())
        w_np = to_numpy(w_q)

        self.fit.set_ydata(to_numpy(y_hat))
        self.query_line.set_xdata([query, query])
        self.star.set_data([query], [prediction])
        self.fit_title.set_text(f"{kernel}, σ = {bandwidth:.3g}: test MSE {test_mse:.3f}")
        self.stems.set_segments([np.array([[x, 0.0], [x, h]]) for x, h in zip(self.x_keys, w_np)])
        self.w_query_line.set_xdata([query, query])
        self.w_title.set_text(f"weights of query x = {query:.2f} (max {w_np.max():.3f})")
        self.image.set_data(weights_rgba(to_numpy(weights)))
        self.row_line.set_ydata([row, row])
        uniform = bool(np.ptp(to_numpy(weights)) < 1e-12)
        n = data.n_train
        self.map_title.set_text(
            f"all weights: uniform, each 1/{n} = {1 / n:.3f}" if uniform else "all weights"
        )
        state = {
            "kernel": kernel,
            "bandwidth": float(bandwidth),
            "query": float(query),
            "weights": w_np,
            "prediction": prediction,
            "y_hat": to_numpy(y_hat),
            "test_mse": test_mse,
            "heatmap_row": row,
            "uniform": uniform,
        }
        return self.figure, state


def nw_explorer(
    data: RegressionData, kernel: str = "gaussian", bandwidth: float = 1.0, query: float = 2.5
) -> widgets.VBox:
    """Pick a kernel, a width σ and a query; the fit, the query's weights and the heatmap follow."""
    controls = {
        "kernel": widgets.Dropdown(options=list(KERNELS), value=kernel, description="kernel"),
        "bandwidth": widgets.FloatLogSlider(
            value=bandwidth,
            base=10,
            min=-1.5,
            max=1,
            step=0.05,
            description="σ",
            continuous_update=True,
        ),
        "query": widgets.FloatSlider(
            value=query, min=0, max=5, step=0.05, description="query x", continuous_update=True
        ),
    }
    return build_explorer(
        controls, NWExplorerFigure(data), title="Nadaraya-Watson: kernel, width and one query"
    )


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    "nw_explorer": lambda: nw_explorer(make_regression_data(), bandwidth=0.3),
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


# Exercise 1: keys, values and query of the computation by hand (Gaussian, sigma = 1).
BY_HAND_KEYS, BY_HAND_VALUES, BY_HAND_QUERY = (0.0, 1.0, 3.0), (1.0, 2.0, 4.0), 2.0


@self_check
def check_nw_by_hand(answer: Any) -> bool:
    """Exercise 1: [sum of the three exps, prediction]; keys 0, 1, 3, values 1, 2, 4, x = 2."""
    got = as_tensor(answer, "your answer")
    if got.shape != (2,):
        raise ReaderError(
            f"your answer has shape {tuple(got.shape)}; give two numbers: the sum of the three "
            "exps, then the prediction."
        )
    e = [math.exp(-((BY_HAND_QUERY - k) ** 2) / 2) for k in BY_HAND_KEYS]
    total = sum(e)
    prediction = sum(a * b for a, b in zip(e, BY_HAND_VALUES)) / total
    sum_ok = abs(got[0].item() - total) < 1e-3
    pred_ok = abs(got[1].item() - prediction) < 1e-3
    if sum_ok and not pred_ok:
        hint = (
            "your sum is right. Divide each exp by it to get the weights, and average the values "
            "1, 2, 4 with those weights (3 decimals are enough)."
        )
    else:
        hint = (
            "the scores are -(2 - x_i)^2 / 2, one per key; exponentiate each and add the three "
            "exps up (3 decimals are enough). Then the prediction."
        )
    return check(
        sum_ok and pred_ok,
        hint,
        "Correct! Keys 1 and 3 are equally far from the query, so they share the same weight; "
        "key 0 is twice as far and its exp is smaller by a factor e^1.5.",
    )


@self_check
def check_far_query(answer: Any, data: RegressionData | None = None) -> bool:
    """Exercise 2 (predict first): for the queries 1000 and -1000 (Gaussian, sigma = 1), the
    positions in x_train of the key with the largest weight, in that order."""
    data = make_regression_data() if data is None else data
    got = as_tensor(answer, "your positions")
    n = len(data.x_train)
    if got.shape != (2,) or not bool((got == got.round()).all()):
        raise ReaderError(
            "give two whole numbers, positions in x_train: the one for x = 1000 first, then the "
            "one for x = -1000."
        )
    positions = [int(p) % n if -n <= int(p) < n else None for p in got.tolist()]
    if None in positions:
        raise ReaderError(f"a position in x_train lies between 0 and {n - 1}.")
    q = torch.tensor([1000.0, -1000.0], dtype=torch.float64)
    weights = attention_weights(q, data.x_train.double(), "gaussian", 1.0)  # (2, n)
    want = weights.argmax(dim=1).tolist()
    return check(
        positions == want,
        "write the score -(x - x_i)^2 / 2 of two keys for a query far to one side of every key: "
        "which of the two scores is larger, and by how much? Remember that x_train is sorted.",
        "Correct! Far to one side, the key nearest the query wins: the gap between two keys' "
        "scores is their distance times about how far the query is, so a softmax of gaps that "
        "large is almost one-hot. Almost: where two keys sit very close together, as the two "
        "smallest keys do here, even a gap times 1000 stays small, and the weight is shared.",
    )


@self_check
def check_lifted_features(lift: Any) -> bool:
    """Exercise: `lift(queries (n_q,), keys (n_k,), sigma) -> (Q (n_q, d), K (n_k, d))` with
    softmax(Q @ K.T) equal to the Gaussian Nadaraya-Watson weights of width sigma."""
    if not callable(lift):
        raise ReaderError(
            f"lift should be a function lift(queries, keys, sigma), got {type(lift).__name__}."
        )
    g = torch.Generator().manual_seed(1)
    ok = True
    for offset, sigma in ((0.0, 1.0), (3.0, 0.5), (-2.0, 2.0)):
        q = offset + torch.rand(7, generator=g, dtype=torch.float64) * 5
        k = offset + torch.rand(11, generator=g, dtype=torch.float64) * 5
        lifted = lift(q.clone(), k.clone(), sigma)
        if not isinstance(lifted, (tuple, list)) or len(lifted) != 2:
            raise ReaderError("lift should return a pair (Q, K).")
        Q, K = (as_tensor(t, "what lift returns") for t in lifted)
        if Q.dim() != 2 or K.dim() != 2 or len(Q) != 7 or len(K) != 11 or Q.shape[1] != K.shape[1]:
            return check(
                False,
                f"for 7 queries and 11 keys Q should be (7, d) and K (11, d), got "
                f"{tuple(Q.shape)} and {tuple(K.shape)}: one row per query, one row per key.",
            )
        scores = Q @ K.T  # (7, d) @ (d, 11) -> (7, 11)
        want = attention_weights(q, k, bandwidth=sigma)  # (7, 11)
        ok &= bool(torch.allclose(torch.softmax(scores, dim=1), want, atol=1e-6))
    return check(
        ok,
        "expand -((x - x_i) / sigma)^2 / 2 into three terms: one depends on x and x_i, one on "
        "x_i only, one on x only. The last is the same for every key, so softmax ignores it; "
        "put the other two into a dot product of 2-d vectors, with sigma where it belongs.",
    )


@self_check
def check_loo_bandwidth(
    answer: Any, data: RegressionData | None = None, kernel: str = "boxcar"
) -> bool:
    """Exercise: a width whose leave-one-out error is within 0.1 % of the best on a fine grid.

    The boxcar's error is flat between pairwise distances, so a grid search lands on the best
    plateau; the tolerance is tight so that nearby widths printed in the chapter do not pass.
    """
    data = make_regression_data() if data is None else data
    sigma = as_number(answer, "your sigma")
    if sigma <= 0:
        return check(False, "a width σ must be positive.")
    x, y = data.x_train.double(), data.y_train.double()
    best = float(leave_one_out_mse(x, y, torch.linspace(0.05, 2.0, 157), kernel).min())
    return check(
        float(leave_one_out_mse(x, y, sigma, kernel)) <= 1.001 * best,
        f"compute the leave-one-out error of the {kernel} kernel for widths between 0.05 and 2, "
        "at least every 0.025, and keep the width with the smallest error.",
    )
