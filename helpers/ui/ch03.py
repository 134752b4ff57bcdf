"""Chapter 3 (learning the kernel width): its explorer and its self-checks.

The maths lives in `helpers.pooling`; this module only draws it and checks the reader's answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import nn

from helpers.data import RegressionData, make_regression_data
from helpers.plotting import freeze_background, regression_weight_map, to_numpy, weights_rgba
from helpers.pooling import (
    NWKernelRegression,
    leave_one_out,
    leave_one_out_mse,
    nadaraya_watson,
)
from helpers.ui.checks import ReaderError, as_number, check, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "BIGGER_DATA_SEED",
    "EXPLORER_DEMOS",
    "LossExplorerFigure",
    "check_batched_pooling",
    "check_best_w_bigger_data",
    "check_bias_gradient",
    "check_own_pooling",
    "check_w_growth_factor",
    "w_explorer",
]

BIGGER_DATA_SEED = 3  # exercise 3's data set: make_regression_data(n_train=200, seed=3)


def _title(ax) -> Text:
    """A title that an explorer rewrites (a plain text above the axes)."""
    return ax.text(0.5, 1.03, "", transform=ax.transAxes, ha="center", va="bottom", fontsize=9)


# ---------------------------------------------------------------------------------------------
# Explorer: the loss as a function of w
# ---------------------------------------------------------------------------------------------


class LossExplorerFigure:
    """One figure, made once: training losses against w, the fit and the weights at one w.

    The left panel shows the leave-one-out loss (with a minimum) and the self-included loss
    (none: it falls towards 0 as w grows) over `w_grid`, the trained w and the current w.
    Calling it with w updates the artists in place and returns (figure, state).
    """

    def __init__(self, data: RegressionData, w_trained: float, w_max: float = 15.0):
        self.data = data
        self.w_trained = float(w_trained)
        x, y = data.x_train.double(), data.y_train.double()
        self.w_grid = torch.linspace(w_max / 60, w_max, 60, dtype=torch.float64)  # (60,)
        self.loo = leave_one_out_mse(x, y, 1 / self.w_grid)  # (60,)
        self.self_included = torch.stack(
            [((nadaraya_watson(x, x, y, bandwidth=1 / w) - y) ** 2).mean() for w in self.w_grid]
        )  # (60,): every point among its own keys
        x_test, y_truth = to_numpy(data.x_test), to_numpy(data.y_truth)
        n_test, n_train = data.n_test, data.n_train
        fig = Figure(figsize=(10.5, 3.1))
        fig.subplots_adjust(left=0.06, right=0.97, bottom=0.17, top=0.87, wspace=0.3)
        ax_loss, ax_fit, ax_map = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1, 1, 0.9]})
        grid = to_numpy(self.w_grid)
        ax_loss.plot(grid, to_numpy(self.loo), "-", label="leave-one-out")
        ax_loss.plot(grid, to_numpy(self.self_included), ":", label="self included")
        ax_loss.axvline(self.w_trained, color="gray", ls="--", lw=1, label="trained w")
        (self.dot,) = ax_loss.plot([0.0], [0.0], "ro", label="current w")
        ax_loss.set(xlim=(0, w_max), xlabel="w", ylabel="training MSE")
        ax_loss.legend(fontsize=7, loc="upper right")
        ax_loss.grid(True)
        self.loss_title = _title(ax_loss)
        ax_fit.plot(x_test, y_truth, "-", label="truth $f$")
        (self.fit,) = ax_fit.plot(x_test, np.zeros(n_test), "m--", label=r"$\hat f$")
        ax_fit.plot(to_numpy(data.x_train), to_numpy(data.y_train), "o", alpha=0.4, ms=4)
        ax_fit.set(xlim=(0, 5), ylim=(-1, 5), xlabel="x", ylabel="y")
        ax_fit.legend(fontsize=6.5, loc="lower right", ncol=2)
        self.fit_title = _title(ax_fit)
        # RGBA pixels on the fixed 0-1 scale, with the matching colour bar
        self.image = regression_weight_map(ax_map, x_test, n_train)
        self.map_title = _title(ax_map)
        self.figure = fig
        dynamic = [self.dot, self.loss_title, self.fit, self.fit_title, self.image, self.map_title]
        freeze_background(fig, dynamic, dpi=EXPLORER_DPI)

    def __call__(self, w: float) -> tuple[Figure, dict[str, Any]]:
        data = self.data
        net = NWKernelRegression(w=w).to(data.x_train)
        with torch.no_grad():
            y_hat = net(data.x_test, data.x_train, data.y_train)  # keys shared: (n_test,)
        weights = to_numpy(net.attention_weights)  # (n_test, n_train)
        x, y = data.x_train.double(), data.y_train.double()
        loss = float(leave_one_out_mse(x, y, 1 / float(w)))
        test_mse = float(((y_hat - data.y_truth) ** 2).mean())
        self.dot.set_data([w], [loss])
        self.loss_title.set_text(
            f"w = {w:.2f}: leave-one-out MSE {loss:.4f} (trained w = {self.w_trained:.2f})"
        )
        self.fit.set_ydata(to_numpy(y_hat))
        self.fit_title.set_text(f"fit at w = {w:.2f}: test MSE {test_mse:.3f}")
        self.image.set_data(weights_rgba(weights))
        self.map_title.set_text(f"weights at w = {w:.2f} (largest {weights.max():.2f})")
        state = {
            "w": float(w),
            "loss": loss,
            "y_hat": to_numpy(y_hat),
            "weights": weights,
            "test_mse": test_mse,
        }
        return self.figure, state


def w_explorer(data: RegressionData, w_trained: float, w_max: float = 15.0) -> widgets.VBox:
    """Drag w and watch the training losses, the fit and the weights; the trained w is marked."""
    controls = {
        "w": widgets.FloatSlider(
            value=round(float(w_trained), 2),
            min=0.25,
            max=w_max,
            step=0.05,
            description="w",
            continuous_update=True,
        )
    }
    return build_explorer(
        controls,
        LossExplorerFigure(data, w_trained, w_max),
        title="Parametric pooling: the loss as a function of w",
    )


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    # 3.49 is the width the chapter trains (hard-coded here: a demo does no training)
    "w_explorer": lambda: w_explorer(make_regression_data(), w_trained=3.49),
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def _call(fn: Any, *args: Any) -> Any:
    """Call the reader's function; a None result means the placeholder is still there."""
    if not callable(fn):
        raise ReaderError(f"pass your function itself, got {type(fn).__name__}.")
    out = fn(*args)
    if out is None:
        raise ReaderError("your function returned None: replace the None in it with your code.")
    return out


class _BatchedProducts(torch.overrides.TorchFunctionMode):
    """Counts the torch calls made inside it: bmm (function or method) and einsum."""

    def __init__(self) -> None:
        super().__init__()
        self.bmm = 0
        self.einsum = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.bmm, torch.Tensor.bmm):
            self.bmm += 1
        elif func is torch.einsum:
            self.einsum += 1
        return func(*args, **(kwargs or {}))


@self_check
def check_batched_pooling(pool: Any) -> bool:
    """Exercise: `pool(weights (n, m), values (n, m, d)) -> (n, d)`, weighted sums by one bmm."""
    g = torch.Generator().manual_seed(2)
    w = torch.softmax(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)  # (6, 4)
    v = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)  # (6, 4, 3)
    want = (w[:, :, None] * v).sum(dim=1)  # (6, 3), written independently of bmm
    calls = _BatchedProducts()
    with calls:
        out = _call(pool, w.clone(), v.clone())
    got = torch.as_tensor(out, dtype=torch.float64)
    if got.shape != want.shape:
        return check(
            False,
            f"for weights (6, 4) and values (6, 4, 3) the result should be (6, 3), got "
            f"{tuple(got.shape)}. torch.bmm multiplies (n, a, b) by (n, b, c) into (n, a, c): "
            "which of a, b, c is 1 here, and which axis must the sum run over?",
        )
    if not torch.allclose(got, want, atol=1e-6):
        return check(
            False,
            "each query's output is a weighted sum over its m keys: weights[i] (m,) against "
            "values[i] (m, d). Make the weights a batch of (1, m) rows.",
        )
    return check(
        calls.bmm == 1 and calls.einsum == 0,
        f"the numbers are right, but the exercise asks for exactly one torch.bmm call (yours made "
        f"{calls.bmm}{', and used einsum' if calls.einsum else ''}): one batched matrix "
        "product of (n, 1, m) weights by (n, m, d) values.",
    )


BIAS_W = 1.0  # exercise 2: the width at which dL/db is asked for (sigma = 1, chapter 2's default)


def _nearest_keys(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(n,): the column of each query's nearest key in keys (n, m)."""
    return (keys - queries[:, None]).abs().argmin(dim=1)


def _bias_gradient(data: RegressionData) -> float:
    """dL/db at w = BIAS_W, b = 0 when b is added to each query's nearest leave-one-out key only,
    by autograd in float64 (the tests compare it with a finite difference)."""
    x, y = data.x_train.double(), data.y_train.double()
    keys, values = leave_one_out(x, y)  # (n, n - 1)
    near = _nearest_keys(x, keys)  # (n,)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    bump = torch.nn.functional.one_hot(near, keys.shape[1]).double() * b  # (n, n - 1)
    scores = -(((x[:, None] - keys) * BIAS_W) ** 2) / 2 + bump
    loss = (((torch.softmax(scores, dim=1) * values).sum(dim=1) - y) ** 2).mean()
    loss.backward()
    return float(b.grad)


@self_check
def check_bias_gradient(answer: Any, data: RegressionData | None = None) -> bool:
    """Exercise 2 (predict first): dL/db at w = 1, b = 0, with b added to the score of each
    query's nearest key only, on the leave-one-out keys and values.

    The tolerance (2 % of the answer) rejects 0 (the answer when b is added to every score),
    the opposite sign, half or twice the answer (a lost factor 2) and the answer without the
    softmax's normalisation; the tests compute each of them.
    """
    got = as_number(answer, "your prediction")
    want = _bias_gradient(make_regression_data() if data is None else data)
    if abs(got) < 1e-9:
        return check(
            False,
            "a bias added to every score cancels in the softmax, but this b is added to one score "
            "per query only: that key's weight grows and all the others shrink. Write one weight "
            "as exp(s_j + b [j = nearest]) / sum over j' of the same, differentiate it with "
            "respect to b, then follow the chain rule through the prediction to the loss.",
        )
    return check(
        abs(got - want) <= 0.02 * abs(want),
        "write one weight as exp(s_j + b [j = nearest]) / sum over j' of the same and "
        "differentiate it with respect to b (the numerator and the denominator both depend on "
        "b); then the prediction sum_j alpha_j y_j, then the mean of the squared errors. "
        "Evaluate it at b = 0 and w = 1, averaging over all 50 queries.",
        "Correct! Each query's prediction moves towards its nearest key's value at the rate "
        "alpha_nearest (y_nearest - prediction). Negative: at w = 1 the kernel is too wide, and "
        "more weight on the nearest key lowers the loss, as the learned w > 1 says too.",
    )


W_GROWTH_FACTOR = 4 ** (1 / 5)  # exercise 3: sigma ~ n^(-1/5) (section 2.7), 4 times the points


@self_check
def check_w_growth_factor(answer: Any) -> bool:
    """Exercise 3 (predict first): the factor by which the best w grows from 50 to 200 points,
    by chapter 2's rate sigma ~ n^(-1/5). Within 0.02: rejects 4, 2, 1, 1/4^(1/5), 4^(1/4)."""
    got = as_number(answer, "your factor")
    if got <= 0:
        raise ReaderError("a factor that multiplies a width is a positive number.")
    return check(
        abs(got - W_GROWTH_FACTOR) <= 0.02,
        "chapter 2, section 2.7: how does the best sigma scale with the number of points n? "
        "w is 1 / sigma, and 200 points are 4 times 50.",
        "Correct! The theory gives a rate for large n; now measure what one data set does.",
    )


@self_check
def check_best_w_bigger_data(answer: Any) -> bool:
    """Exercise 3: a w within 0.05 % of the best leave-one-out loss on the 200-point data set.

    Any grid of step <= 0.5 finds such a w; the tolerance is tight because the loss is flat
    around its minimum, so that widths printed in the chapter, and the predicted 3.49 * 4^(1/5),
    do not pass.
    """
    w = as_number(answer, "your w")
    if w <= 0:
        return check(False, "w must be positive (w = 1 / σ).")
    d = make_regression_data(n_train=200, seed=BIGGER_DATA_SEED, dtype=torch.float64)
    grid = torch.linspace(0.5, 30, 591, dtype=torch.float64)  # steps of 0.05
    best = float(leave_one_out_mse(d.x_train, d.y_train, 1 / grid).min())
    return check(
        float(leave_one_out_mse(d.x_train, d.y_train, 1 / w)) <= 1.0005 * best,
        "evaluate the leave-one-out loss on a grid of w from 0.5 to 30 in steps of 0.05 (no "
        "gradients needed) for the 200-point data set, and keep the w with the smallest loss.",
        "Correct! Divide it by the 50-point w and compare the measured factor with your "
        "prediction: one data set of each size is a noisy test of a rate for large n.",
    )


OWN_POOLING_GAIN = 0.02  # exercise 4: the trained model must be this much below the best w


def _not_attention_pooling(net: nn.Module, queries, keys, values, y_hat) -> str | None:
    """Why `net` is not attention pooling, or None.

    Attention pooling returns, for each query, a weighted average of that query's values, with
    weights computed from the query and its keys. So its outputs stay within the range of the
    values, follow the values when they are shifted or scaled, do not change when a query's
    (key, value) pairs are listed in another order, and follow the queries when those are listed
    in another order. A model of x alone (a table, an MLP) fails the first two; weights that
    come from key positions or query positions (a table of scores or widths) fail the last two.
    """
    n, m = keys.shape
    g = torch.Generator().manual_seed(0)
    cols = torch.argsort(torch.rand(n, m, generator=g), dim=1)  # a shuffle of each row's keys
    rows = torch.randperm(n, generator=g)  # a shuffle of the queries
    with torch.no_grad():
        shifted = torch.as_tensor(net(queries, keys, values + 3.0)).detach().double()
        scaled = torch.as_tensor(net(queries, keys, values * 2.0)).detach().double()
        by_key = net(queries, keys.gather(1, cols), values.gather(1, cols))
        by_key = torch.as_tensor(by_key).detach()
        by_query = torch.as_tensor(net(queries[rows], keys[rows], values[rows])).detach()
    y = y_hat.double()
    tol = 1e-4 * (1 + float(values.abs().max()))
    lo, hi = values.double().min(dim=1).values, values.double().max(dim=1).values
    if not bool(((y >= lo - tol) & (y <= hi + tol)).all()):
        return (
            "some outputs lie outside the range of their query's values, so they are not a "
            "weighted average of those values (weights >= 0 that sum to 1, as a softmax gives)."
        )
    shift_ok = torch.allclose(shifted, y + 3.0, atol=tol)
    if not (shift_ok and torch.allclose(scaled, 2 * y, atol=2 * tol)):
        return (
            "adding 3 to every value should add 3 to every output of attention pooling, and "
            "doubling the values should double it; yours does not follow its values. The output "
            "must be a weighted average of the values, with weights from the query and the keys."
        )
    if not torch.allclose(by_key.double(), y, atol=tol):
        return (
            "listing each query's keys and values in another order (each value with its key) "
            "changed your outputs: the weights must come from the query and the keys, not from "
            "the keys' positions."
        )
    if not torch.allclose(by_query.double(), y[rows], atol=tol):
        return (
            "listing the queries in another order (each with its keys and values) should list "
            "the outputs in that order too: the weights must come from the query's value, not "
            "from its position."
        )
    return None


@self_check
def check_own_pooling(net: Any, data: RegressionData | None = None) -> bool:
    """Exercise: a trained module `net(queries (n,), keys (n, n-1), values (n, n-1)) -> (n,)` with
    at least 2 parameters, not section 3.10's `VariableWidth`, that is attention pooling (see
    `_not_attention_pooling`: a model that ignores the keys or the values fails) and whose
    leave-one-out training MSE is at least 2 % below the best single w's (a model started at the
    best w starts at that loss, so only training passes)."""
    data = make_regression_data() if data is None else data
    if not isinstance(net, nn.Module):
        raise ReaderError(f"pass your trained model (an nn.Module), got {type(net).__name__}.")
    if type(net).__name__ == "VariableWidth":
        return check(False, "that is section 3.10's model: design and train one of your own.")
    count = sum(p.numel() for p in net.parameters())
    if count < 2:
        return check(False, f"your model has {count} parameter(s); design one with at least 2.")
    keys, values = leave_one_out(data.x_train, data.y_train)  # (n, n - 1)
    with torch.no_grad():
        y_hat = torch.as_tensor(_call(net, data.x_train, keys, values)).detach()
    if y_hat.shape != data.y_train.shape:
        return check(
            False,
            f"with 50 queries and (50, 49) keys and values the output should be (50,), got "
            f"{tuple(y_hat.shape)}.",
        )
    loss = float(((y_hat.double() - data.y_train.double()) ** 2).mean())
    if not np.isfinite(loss):
        return check(False, "your model's predictions are not finite: lower the learning rate.")
    why_not = _not_attention_pooling(net, data.x_train, keys, values, y_hat)
    if why_not is not None:
        return check(False, why_not)
    grid = torch.linspace(0.5, 15, 291, dtype=torch.float64)
    best_single = float(
        leave_one_out_mse(data.x_train.double(), data.y_train.double(), 1 / grid).min()
    )
    return check(
        loss <= (1 - OWN_POOLING_GAIN) * best_single,
        "start your model where the one-parameter model ended (its scores equal "
        "-((x - x_i) w)^2 / 2 up to a constant per query, so its loss starts at the best single "
        "w's), then train it on the leave-one-out keys, with a small enough learning rate that "
        "the loss falls steadily, until the loss is 2 % lower.",
        "Correct! Now compare its held-out error with the one-parameter model's.",
    )
