"""Claims about trained or timed numbers, checked where the notebook makes them.

A number that comes from training or timing moves with the PyTorch version and the machine, so a
notebook prints it in a cell whose output is not compared digit by digit. What the prose says about
it ("about 0.98", "faster than the loop") is checked in a visible line instead:

    claim("small embeddings reach accuracy >= 0.95", acc_small >= 0.95)

prints `✓ small embeddings reach accuracy >= 0.95` (no digits, so the line is the same on every
PyTorch and machine) and raises `ClaimError` with the measured value when the claim fails.
"""

from __future__ import annotations

import math
import re

__all__ = ["ClaimError", "claim", "claim_between"]

# A claim must say how it could fail: a comparison or a tolerance in its own words.
_TOLERANCE = re.compile(
    r"[<>≤≥±≈]|<=|>=|\bin \[[^\]]+,[^\]]+\]|"
    r"\b(at least|at most|within|between|more than|less than|fewer than|"
    r"below|above|under|over|faster|slower|longer|shorter|higher|lower|smaller|larger|bigger|beats?|"
    r"equals?|"
    r"same|flat|grows?|falls?|rises?|exceeds?)\b",
    re.IGNORECASE,
)


class ClaimError(AssertionError):
    """A claim the prose makes about a measured number does not hold on this run."""


def _as_bool(holds, name: str) -> bool:
    try:
        import torch

        if isinstance(holds, torch.Tensor):
            if holds.numel() != 1:
                raise TypeError(f"{name} must be one truth value, got a tensor of shape "
                                f"{tuple(holds.shape)}")
            holds = holds.item()
    except ImportError:  # pragma: no cover - torch is a requirement
        pass
    if hasattr(holds, "item") and not isinstance(holds, (bool, int, float)):
        holds = holds.item()  # NumPy scalars
    if not isinstance(holds, (bool, int)) or isinstance(holds, float):
        raise TypeError(
            f"{name} must be a bool (the claim's condition), got {type(holds).__name__}"
        )
    return bool(holds)


def claim(statement: str, holds, measured=None) -> None:
    """Print `✓ statement` if `holds`, else raise ClaimError (naming `measured` if given)."""
    if not isinstance(statement, str) or not statement.strip():
        raise TypeError("statement must be a non-empty str that says what is claimed")
    if not _TOLERANCE.search(statement):
        raise ValueError(
            f"statement {statement!r} states no comparison or tolerance (e.g. '>= 0.95', "
            "'within 10 %', 'faster than'): say how the claim could fail"
        )
    if not _as_bool(holds, "holds"):
        extra = f" (measured {measured})" if measured is not None else ""
        raise ClaimError(f"claim does not hold on this run: {statement}{extra}")
    print(f"✓ {statement}")


def claim_between(statement: str, value, low: float, high: float) -> None:
    """Claim `low <= value <= high`; the statement names the range, e.g. 'loss in [0.3, 0.5]'."""
    v = float(value)
    if math.isnan(v):
        raise ClaimError(f"claim does not hold on this run: {statement} (measured NaN)")
    if not low <= high:
        raise ValueError(f"low must be <= high, got low={low}, high={high}")
    claim(statement, low <= v <= high, measured=f"{v:.4g}")
