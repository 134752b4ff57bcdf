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


def test_noiseless_mse(capsys):
    want = _mse_numpy(noise=0.0)
    assert run_check(ch01.check_noiseless_mse, want, capsys)[0]
    assert run_check(ch01.check_noiseless_mse, torch.tensor(want), capsys)[0]
    for wrong in (_mse_numpy(noise=0.5), 0.8845, 0):  # the noisy data; the approximation error
        ok, out = run_check(ch01.check_noiseless_mse, wrong, capsys)
        assert not ok and "Hint" in out and f"{want:.3f}" not in out
    assert run_check(ch01.check_noiseless_mse, None, capsys) == (False, REPLACE_NONE + "\n")


def test_noise_increase(capsys):
    # Var(mean of n values) = (Var f(x) + noise^2) / n; the bias of a constant ignores the noise
    want = (2.0**2 - 0.5**2) / 1000
    # the measurement the exercise asks for: seeds 0-999 at both noise levels, written in NumPy
    measured = np.mean([_mse_numpy(1000, 2.0, s) - _mse_numpy(1000, 0.5, s) for s in range(1000)])
    assert abs(measured - want) <= 0.0005  # what the reader measures also passes
    assert run_check(ch01.check_noise_increase, want, capsys)[0]
    assert run_check(ch01.check_noise_increase, measured, capsys)[0]
    assert run_check(ch01.check_noise_increase, torch.tensor(0.0035), capsys)[0]
    # no change; the noise alone over n (2.25/1000 = (2 - 0.5)^2 / n); sixteen times the variance;
    # the old five-seed tolerance; the noise variance itself
    for wrong in (0.0, 0.00225, 16 * 0.0011 - 0.0011, 0.05, 3.75):
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
