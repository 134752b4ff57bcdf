"""Chapter 01: the self-checks, against answers computed independently in NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check

from helpers import pooling
from helpers.data import make_regression_data
from helpers.ui import ch01
from helpers.ui.checks import REPLACE_NONE


def _f(x):
    return 2 * np.sin(x) + x**0.8


def _mse_numpy(n_train=50, noise=0.5, seed=0):
    """Average pooling's test MSE written directly: mean of the values, squared error on 0..4.9."""
    data = make_regression_data(n_train=n_train, noise=noise, seed=seed, dtype=torch.float64)
    c = float(np.mean(data.y_train.numpy()))
    grid = np.arange(50) / 10
    return float(np.mean((c - _f(grid)) ** 2))


def test_no_explorers():
    assert ch01.EXPLORER_DEMOS == {}


def test_average_pooling_test_mse_matches_numpy():
    for n, noise, seed in [(50, 0.5, 0), (10, 0.0, 3), (200, 2.0, 1)]:
        assert pooling.average_pooling_test_mse(n, noise, seed) == pytest.approx(
            _mse_numpy(n, noise, seed), rel=1e-12
        )


def test_window_weights_by_hand():
    x = torch.tensor([0.0, 2.0, 2.4, 3.0, 3.1])
    np.testing.assert_allclose(pooling.window_weights(x, 2.5, 0.5), [0, 1 / 3, 1 / 3, 1 / 3, 0])
    with pytest.raises(ValueError, match="no key"):
        pooling.window_weights(x, 10.0, 0.5)
    with pytest.raises(ValueError, match="x_train"):
        pooling.window_weights(x[None], 2.5, 0.5)


def test_noiseless_gap(capsys):
    data = make_regression_data(noise=0.0, seed=0, dtype=torch.float64)
    c_hat = float(np.mean(data.y_train.numpy()))
    f_bar = float(np.mean(_f(np.arange(50) / 10)))
    want = c_hat - f_bar
    # the split of exercise 1: the noise-free MSE is the approximation error plus want ** 2
    approx = float(np.mean((_f(np.arange(50) / 10) - f_bar) ** 2))
    assert _mse_numpy(noise=0.0) == pytest.approx(approx + want**2, rel=1e-12)
    assert run_check(ch01.check_noiseless_gap, want, capsys)[0]
    assert run_check(ch01.check_noiseless_gap, round(want, 3), capsys)[0]
    assert run_check(ch01.check_noiseless_gap, torch.tensor(want), capsys)[0]
    noisy = make_regression_data(noise=0.5, seed=0, dtype=torch.float64)
    wrongs = (
        -want,  # f_bar - c_hat
        want**2,  # the estimation error itself
        _mse_numpy(noise=0.0),  # the MSE the helper returns
        _mse_numpy(noise=0.0) - approx,  # the same as want ** 2, by subtraction
        float(np.mean(noisy.y_train.numpy())) - f_bar,  # the noisy data set's gap
        0.0,
    )
    for wrong in wrongs:
        ok, out = run_check(ch01.check_noiseless_gap, wrong, capsys)
        assert not ok and "Hint" in out and f"{want:.3f}" not in out
    for bad in ("a gap", [want, want], float("nan")):
        ok, out = run_check(ch01.check_noiseless_gap, bad, capsys)
        assert not ok and "number" in out
    assert run_check(ch01.check_noiseless_gap, None, capsys) == (False, REPLACE_NONE + "\n")


def test_noise_increase(capsys):
    # Var(mean of n values) = (Var f(x) + noise^2) / n; the bias of a constant ignores the noise
    want = (2.0**2 - 0.5**2) / 1000
    # the measurement the exercise asks for: seeds 0-999 at both noise levels, written in NumPy
    measured = np.mean([_mse_numpy(1000, 2.0, s) - _mse_numpy(1000, 0.5, s) for s in range(1000)])
    assert ch01.NOISE_INCREASE_MEASURED == pytest.approx(measured, abs=1e-6)
    assert run_check(ch01.check_noise_increase, want, capsys)[0]
    assert run_check(ch01.check_noise_increase, measured, capsys)[0]  # what the reader measures
    for close in (0.0038, 0.0037, torch.tensor(0.0034), 3.75 / 999, round(measured, 4)):
        assert run_check(ch01.check_noise_increase, close, capsys)[0]
    # no change; the noise alone over n (2.25/1000 = (2 - 0.5)^2 / n); the new noise variance
    # over n, the old one forgotten; the two variances added; sixteen times the variance; the
    # noise variance over 50 instead of 1000; the noise variance itself
    wrongs = (0.0, 0.00225, 4 / 1000, 4.25 / 1000, 16 * 0.0011 - 0.0011, 3.75 / 50, 0.05, 3.75)
    for wrong in wrongs:
        ok, out = run_check(ch01.check_noise_increase, wrong, capsys)
        assert not ok and "Hint" in out and "0.003" not in out and "3.75" not in out
    for bad in ("a lot", [0.004, 0.001], float("nan")):
        ok, out = run_check(ch01.check_noise_increase, bad, capsys)
        assert not ok and "number" in out
    assert run_check(ch01.check_noise_increase, None, capsys) == (False, REPLACE_NONE + "\n")


def test_window_row(capsys):
    data = make_regression_data()
    x = data.x_train.numpy()
    inside = [i for i in range(50) if abs(x[i] - 2.5) <= 0.5]
    want = np.zeros(50)
    want[inside] = 1 / len(inside)
    assert run_check(ch01.check_window_row, want.tolist(), capsys)[0]
    assert run_check(ch01.check_window_row, torch.tensor(want, dtype=torch.float32), capsys)[0]
    uniform = np.full(50, 0.02)
    ok, out = run_check(ch01.check_window_row, uniform, capsys)
    assert not ok and "exactly 0" in out
    unnormalised = (want > 0).astype(float)
    ok, out = run_check(ch01.check_window_row, unnormalised, capsys)
    assert not ok and "sums to 1" in out
    uneven = want.copy()
    uneven[inside[0]] += 0.01
    uneven[inside[1]] -= 0.01
    ok, out = run_check(ch01.check_window_row, uneven, capsys)
    assert not ok and "same weight" in out and f"{1 / len(inside):.4f}" not in out
    ok, out = run_check(ch01.check_window_row, want[:10], capsys)
    assert not ok and "shape" in out
    assert run_check(ch01.check_window_row, None, capsys) == (False, REPLACE_NONE + "\n")


def test_nearest_key_mse(capsys):
    data = make_regression_data(dtype=torch.float64)
    x, y = data.x_train.numpy(), data.y_train.numpy()
    grid = np.arange(50) / 10
    # the nearest key of each query, by a loop over the keys
    nearest = [min(range(50), key=lambda i, q=q: abs(x[i] - q)) for q in grid]
    want = float(np.mean((y[nearest] - _f(grid)) ** 2))
    second = [sorted(range(50), key=lambda i, q=q: abs(x[i] - q))[1] for q in grid]
    left = [max([i for i in range(50) if x[i] <= q], default=0) for q in grid]
    right = [min([i for i in range(50) if x[i] >= q], default=49) for q in grid]
    assert want < _mse_numpy() and want > 0.25  # below average pooling, above the noise variance
    assert run_check(ch01.check_nearest_key_mse, want, capsys)[0]
    assert run_check(ch01.check_nearest_key_mse, round(want, 3), capsys)[0]
    # float32 data, as the notebook's `data`
    d32 = make_regression_data()
    i32 = (d32.x_test[:, None] - d32.x_train[None]).abs().argmin(dim=1)
    assert run_check(
        ch01.check_nearest_key_mse, ((d32.y_train[i32] - d32.y_truth) ** 2).mean(), capsys
    )[0]
    wrongs = (
        float(np.mean((y[second] - _f(grid)) ** 2)),  # the second-nearest key
        float(np.mean((y[left] - _f(grid)) ** 2)),  # the nearest key on the left
        float(np.mean((y[right] - _f(grid)) ** 2)),  # the nearest key on the right
        float(np.mean((_f(x[nearest]) - _f(grid)) ** 2)),  # noise-free values
        _mse_numpy(),  # average pooling
        0.25,
        0.0,
    )
    for wrong in wrongs:
        ok, out = run_check(ch01.check_nearest_key_mse, wrong, capsys)
        assert not ok and "Hint" in out and f"{want:.3f}" not in out
    ok, out = run_check(ch01.check_nearest_key_mse, "small", capsys)
    assert not ok and "number" in out
    assert run_check(ch01.check_nearest_key_mse, None, capsys) == (False, REPLACE_NONE + "\n")
