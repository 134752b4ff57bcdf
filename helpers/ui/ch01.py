"""Chapter 1, average pooling: the exercises' self-checks.

The chapter has no explorer (`EXPLORER_DEMOS` is empty); its data come from `helpers.data` and
the pooling it measures from `helpers.pooling`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import torch

from helpers.data import make_regression_data
from helpers.pooling import average_pooling_test_mse, window_weights
from helpers.ui.checks import as_number, check, matches, self_check

__all__ = [
    "EXPLORER_DEMOS",
    "check_noise_increase",
    "check_noiseless_mse",
    "check_window_row",
]

EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {}


@self_check
def check_noiseless_mse(mse: Any) -> bool:
    """Exercise 1: test MSE of average pooling on `make_regression_data(noise=0.0, seed=0)`."""
    got = as_number(mse, "your MSE")
    return check(
        abs(got - average_pooling_test_mse(noise=0.0)) <= 1e-3,
        "the prediction is one number, the mean of y_train of the noise-free data set, for every "
        "query; average its squared differences to y_truth over the 50 test inputs.",
        "Correct! Even without noise the error stays high: the missing part is approximation "
        "error, which no amount of clean data removes from a constant.",
    )


@self_check
def check_noise_increase(prediction: Any, n_train: int = 1000) -> bool:
    """Exercise 2 (predict first): growth of the expected test MSE as the noise goes 0.5 -> 2."""
    got = as_number(prediction, "your prediction")
    want = (2.0**2 - 0.5**2) / n_train  # only the noise's share of the variance moves
    return check(
        abs(got - want) <= 0.0005,
        "the expected test MSE is squared bias + variance. The noise cannot move the bias of a "
        "constant. The variance of a mean of n values is the variance of one value over n; split "
        "the variance of one value y_i into what comes from f(x_i) and what comes from the noise.",
        "Correct! Only the noise's share of the variance grows, by the change of the noise "
        "variance over n: sixteen times the noise variance barely moves the error of a "
        "constant, whose squared bias stays where it was.",
    )


@self_check
def check_window_row(weights: Any, query: float = 2.5, radius: float = 0.5) -> bool:
    """Exercise 3: the weight row (50,) of query 2.5: uniform on the keys within 0.5, else 0."""
    data = make_regression_data(n_train=50, noise=0.5, seed=0)
    want = window_weights(data.x_train, query, radius)  # (50,)
    if not matches(weights, want, atol=1e-4, name="your row"):
        row = torch.as_tensor(weights, dtype=torch.float64)  # (50,), the shape matched
        if (row < 0).any() or not abs(row.sum().item() - 1) <= 1e-4:
            hint = "a row of attention weights is non-negative and sums to 1."
        elif (row[want == 0] != 0).any():
            hint = "keys farther than 0.5 from the query must get weight exactly 0."
        else:
            hint = "every key inside the window gets the same weight: 1 over how many lie there."
        return check(False, hint)
    return check(
        True,
        "",
        "Correct! Weights that depend on the query: this is the boxcar kernel, and chapter 2 "
        "turns it into a family of kernels.",
    )
