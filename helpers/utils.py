"""Seeds and devices: the small things every chapter needs first."""

from __future__ import annotations

import random
import sys

import numpy as np
import torch

__all__ = [
    "MIN_PYTHON",
    "MIN_TORCH",
    "TORCH_BELOW",
    "book_setup",
    "cpu",
    "describe_device",
    "num_gpus",
    "set_seed",
    "try_gpu",
]

MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
# The supported range of PyTorch, >=2.9,<3 (pyproject.toml's [tool.attention-book] torch).
MIN_TORCH = (2, 9)
TORCH_BELOW = (3, 0)


def set_seed(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch; return a `torch.Generator` seeded the same way."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cpu() -> torch.device:
    """The CPU device (d2l's `d2l.cpu`)."""
    return torch.device("cpu")


def num_gpus() -> int:
    """Number of CUDA devices PyTorch can see (d2l's `d2l.num_gpus`)."""
    return torch.cuda.device_count()


def try_gpu(i: int = 0) -> torch.device:
    """GPU `i` if it exists, else the CPU (d2l's `d2l.try_gpu`)."""
    if num_gpus() >= i + 1:
        return torch.device(f"cuda:{i}")
    return cpu()


def describe_device(device: torch.device) -> str:
    """One sentence for the set-up cell: which device runs the book, and how to get a GPU."""
    if device.type == "cuda":
        return f"Running on {torch.cuda.get_device_name(device)} ({device})."
    return (
        "Running on the CPU: every chapter is sized for it. For a GPU on Colab choose "
        "Runtime > Change runtime type > GPU; the code runs unchanged."
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13)."""
    return tuple(int(p) for p in version.split("+")[0].split(".")[:2] if p.isdigit())


def book_setup(seed: int = 0) -> torch.device:
    """Every chapter's first step: check Python and PyTorch, seed, pick and name a device.

    Returns the device (a GPU when there is one, else the CPU) and prints one sentence about it.
    """
    if sys.version_info[:2] < MIN_PYTHON:
        raise RuntimeError(
            f"this book needs Python {'.'.join(map(str, MIN_PYTHON))} or newer, "
            f"found {sys.version.split()[0]}"
        )
    if not MIN_TORCH <= _version_tuple(torch.__version__) < TORCH_BELOW:
        raise RuntimeError(
            f"this book needs PyTorch {'.'.join(map(str, MIN_TORCH))} or newer, below "
            f"{'.'.join(map(str, TORCH_BELOW))}; found {torch.__version__}"
        )
    set_seed(seed)
    device = try_gpu()
    print(describe_device(device))
    return device


