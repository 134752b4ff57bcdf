"""Fixtures shared by several test files (the repository-wide configuration is ../conftest.py)."""

from __future__ import annotations

import pytest
import torch

from helpers.data import make_regression_data


@pytest.fixture(scope="module")
def regression_data():
    """The book's default 1-D regression data (chapters 02 and 03), built once per module."""
    return make_regression_data()


@pytest.fixture
def one_thread():
    """Tiny sequential models train fastest, and most predictably, on one CPU thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
