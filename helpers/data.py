"""The book's synthetic data: the 1-D regression task of chapters 1–3."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["RegressionData", "make_regression_data", "target_function"]


def target_function(x: torch.Tensor) -> torch.Tensor:
    """The true function f(x) = 2 sin(x) + x^0.8 (defined for x >= 0)."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=torch.get_default_dtype())
    if (x < 0).any():
        raise ValueError("target_function is defined for x >= 0 (x^0.8 of a negative x is NaN)")
    return 2 * torch.sin(x) + x**0.8


@dataclass(frozen=True)
class RegressionData:
    """Training points (sorted by x) and the test grid with the noise-free truth."""

    x_train: torch.Tensor  # (n_train,), sorted, in [0, 5)
    y_train: torch.Tensor  # (n_train,), f(x_train) + noise
    x_test: torch.Tensor  # (n_test,), 0, 0.1, ..., 4.9
    y_truth: torch.Tensor  # (n_test,), f(x_test)

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    @property
    def n_test(self) -> int:
        return len(self.x_test)


def make_regression_data(
    n_train: int = 50, noise: float = 0.5, seed: int = 0, dtype: torch.dtype = torch.float32
) -> RegressionData:
    """Draw n_train sorted inputs uniformly in [0, 5), targets f(x) + N(0, noise^2).

    The same seed always gives the same data, whatever else has used the global RNG.
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int):
        raise TypeError(f"n_train must be an int, got {type(n_train).__name__}")
    if n_train < 1:
        raise ValueError(f"n_train must be at least 1, got {n_train}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise TypeError(f"noise must be a number (a standard deviation), got {noise!r}")
    if not (noise >= 0 and math.isfinite(noise)):
        raise ValueError(f"noise must be a finite, non-negative standard deviation, got {noise}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    gen = torch.Generator().manual_seed(seed)
    x_train, _ = torch.sort(torch.rand(n_train, generator=gen, dtype=torch.float64) * 5)
    y_train = target_function(x_train) + noise * torch.randn(
        n_train, generator=gen, dtype=torch.float64
    )
    x_test = torch.arange(50, dtype=torch.float64) / 10  # 0.0, 0.1, ..., 4.9 without drift
    return RegressionData(
        x_train=x_train.to(dtype),
        y_train=y_train.to(dtype),
        x_test=x_test.to(dtype),
        y_truth=target_function(x_test).to(dtype),
    )
