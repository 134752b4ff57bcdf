"""The regression task of chapters 01-03 against its definition, computed independently."""

import math

import pytest
import torch

from helpers.data import make_regression_data, target_function


def test_target_function_matches_the_formula_pointwise():
    for x in [0.0, 0.1, 1.0, 2.5, 4.9]:
        expected = 2 * math.sin(x) + x**0.8
        got = target_function(torch.tensor([x], dtype=torch.float64)).item()
        assert got == pytest.approx(expected, abs=1e-12)


def test_target_function_hand_worked_value():
    # f(1) = 2 sin(1) + 1 = 2 * 0.8414709848 + 1
    assert target_function(torch.tensor(1.0)).item() == pytest.approx(2.6829419696, abs=1e-6)


def test_target_function_rejects_negative_inputs():
    with pytest.raises(ValueError, match="x >= 0"):
        target_function(torch.tensor([-1.0]))


def test_shapes_grid_and_sorting():
    d = make_regression_data()
    assert d.x_train.shape == (50,) and d.y_train.shape == (50,)
    assert d.x_test.shape == (50,) and d.y_truth.shape == (50,)
    assert torch.all(d.x_train[1:] >= d.x_train[:-1])
    assert d.x_train.min() >= 0 and d.x_train.max() < 5
    expected_grid = [round(0.1 * i, 10) for i in range(50)]
    assert d.x_test.tolist() == pytest.approx(expected_grid, abs=1e-6)
    assert d.x_test[-1].item() == pytest.approx(4.9, abs=1e-6)
    assert d.n_train == 50 and d.n_test == 50


def test_truth_and_noise_follow_the_definition():
    d = make_regression_data(n_train=20000, noise=0.5, seed=1, dtype=torch.float64)
    truth = [2 * math.sin(x) + x**0.8 for x in d.x_test.tolist()]
    assert d.y_truth.tolist() == pytest.approx(truth, abs=1e-12)
    residual = d.y_train - torch.tensor([2 * math.sin(x) + x**0.8 for x in d.x_train.tolist()],
                                        dtype=torch.float64)
    # mean 0, standard deviation 0.5: with 20000 samples the standard error of the mean is 0.0035
    assert abs(residual.mean().item()) < 0.02
    assert residual.std().item() == pytest.approx(0.5, rel=0.03)
    # uniform on [0, 5): mean 2.5, variance 25/12
    assert d.x_train.mean().item() == pytest.approx(2.5, abs=0.05)
    assert d.x_train.var().item() == pytest.approx(25 / 12, rel=0.05)


def test_noise_free_targets_equal_the_truth():
    d = make_regression_data(n_train=7, noise=0.0, seed=3, dtype=torch.float64)
    assert torch.allclose(d.y_train, target_function(d.x_train))


def test_same_seed_same_data_whatever_the_global_rng():
    torch.manual_seed(123)
    a = make_regression_data(seed=5)
    torch.rand(100)
    b = make_regression_data(seed=5)
    c = make_regression_data(seed=6)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)
    assert not torch.equal(a.x_train, c.x_train)


def test_dtype_option():
    assert make_regression_data(dtype=torch.float64).x_train.dtype == torch.float64
    assert make_regression_data().y_truth.dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"n_train": 0}, ValueError, "n_train"),
        ({"n_train": 2.5}, TypeError, "n_train"),
        ({"noise": -0.1}, ValueError, "noise"),
        ({"noise": float("nan")}, ValueError, "noise"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, name):
    with pytest.raises(error, match=name):
        make_regression_data(**kwargs)


def test_make_regression_data_names_a_bad_noise_or_dtype():
    for bad in (None, "0.5"):
        with pytest.raises(TypeError, match="noise must be a number"):
            make_regression_data(noise=bad)
    for bad in (float("inf"), float("nan"), -0.1):
        with pytest.raises(ValueError, match="noise must be a finite, non-negative"):
            make_regression_data(noise=bad)
    with pytest.raises(TypeError, match="dtype must be a floating-point torch.dtype"):
        make_regression_data(dtype=torch.int64)
