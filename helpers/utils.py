"""Seeds and devices: the small things every chapter needs first."""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["cpu", "describe_device", "num_gpus", "set_seed", "try_gpu"]


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
