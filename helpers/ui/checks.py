"""The self-check framework every chapter's exercises use.

A self-check takes the reader's answer and prints whether it is right, with a hint when it is not.
`self_check` gives every check the same contract: the untouched placeholder `None` asks for an
answer, a malformed answer (`ReaderError`) or an exception raised by the reader's own code is
caught and explained, and the answer is never printed. An exception from the check's own code is
not a wrong answer: it propagates, so a broken check can never pass as a rejection.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
import sysconfig
from collections.abc import Callable
from typing import Any

__all__ = [
    "CHECKS",
    "REPLACE_NONE",
    "ReaderError",
    "as_choice",
    "as_number",
    "as_tensor",
    "check",
    "matches",
    "self_check",
]


REPLACE_NONE = "Replace None with your answer, then run the cell again."

CHECKS: list[Callable[..., bool]] = []  # every check made with `self_check`, for the tests


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


class ReaderError(Exception):
    """Raised inside a check to tell the reader what is wrong with the form of an answer (type,
    shape); `self_check` prints the message after "Not yet:"."""


# helpers/ (this file is helpers/ui/checks.py): frames under it are the book's, not the reader's
_HELPERS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LIBRARY_DIRS = tuple(
    {os.path.abspath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib",
                                                         "platlib")}
)


def _raised_in_reader_code(err: BaseException) -> bool:
    """True when a frame of err's traceback is the reader's code (a notebook cell or a file of
    theirs), not this package, the standard library or an installed library."""
    tb = err.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename
        if not name.startswith("<frozen"):
            path = os.path.abspath(name)
            if not path.startswith(_HELPERS_DIR) and not path.startswith(_LIBRARY_DIRS):
                return True
        tb = tb.tb_next
    return False


def self_check(fn: Callable[..., bool]) -> Callable[..., bool]:
    """Give a check the book's contract. Its first argument is the reader's answer.

    - `None` (the untouched placeholder): prints `REPLACE_NONE` and returns False, nothing else;
    - a malformed answer (the check raises `ReaderError`) or an exception raised inside the
      reader's own function: explained, returns False;
    - any other exception is the check's own failure and propagates (never a silent "wrong");
    - otherwise the check itself decides and prints praise or a hint (never the answer).

    Every check must be callable with the answer alone (other parameters have defaults), so one
    test can hold all of them to this contract.
    """
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(answer: Any = None, *args: Any, **kwargs: Any) -> bool:
        signature.bind(answer, *args, **kwargs)  # a wrong call is the notebook's bug: let it raise
        if answer is None:
            print(REPLACE_NONE)
            return False
        try:
            return bool(fn(answer, *args, **kwargs))
        except ReaderError as err:
            print(f"Not yet: {err}")
            return False
        except Exception as err:
            if not _raised_in_reader_code(err):
                raise  # the check itself failed: a bug in the book, not a wrong answer
            print(
                f"Not yet: checking your answer raised {type(err).__name__}: {err}. "
                "Look at its type and shape, then try again."
            )
            return False

    CHECKS.append(wrapper)
    return wrapper


def as_number(answer: Any, name: str = "your answer") -> float:
    """A finite float from an int, float, 0-d tensor or array; a clear message otherwise."""
    if isinstance(answer, bool):
        raise ReaderError(f"{name} should be a number, not {answer!r}.")
    try:
        value = float(answer)
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a number (int or float), got {type(answer).__name__}."
        ) from None
    if not math.isfinite(value):
        raise ReaderError(f"{name} should be a finite number, got {value}.")
    return value


def as_tensor(answer: Any, name: str = "your answer", dtype: Any = None):
    """A tensor (float64 unless `dtype`) from a tensor, array or nested list; a clear message
    otherwise."""
    import torch

    try:
        return torch.as_tensor(answer, dtype=dtype or torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a tensor or a (nested) list of numbers, got "
            f"{type(answer).__name__}."
        ) from None


def as_choice(answer: Any, options: tuple[str, ...], name: str = "your answer") -> str:
    """One of `options` (lower case), from a string in any case with any surrounding spaces."""
    if not isinstance(answer, str) or answer.strip().lower() not in options:
        listed = ", ".join(repr(o) for o in options)
        raise ReaderError(f"{name} should be one of the strings {listed}, got {answer!r}.")
    return answer.strip().lower()


def matches(answer: Any, want: Any, atol: float = 1e-4, name: str = "your answer") -> bool:
    """True when `answer` (tensor, array or nested list) has want's shape and values within atol.

    A shape mismatch raises a reader-facing message that names both shapes.
    """
    import torch

    try:
        got = torch.as_tensor(answer, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError):
        raise ReaderError(
            f"{name} should be a tensor or a list of numbers, got {type(answer).__name__}."
        ) from None
    want = torch.as_tensor(want).detach().cpu().double()
    if got.shape != want.shape:
        raise ReaderError(
            f"{name} has shape {tuple(got.shape)}; the exercise asks for shape "
            f"{tuple(want.shape)}."
        )
    return bool(torch.allclose(got, want, atol=atol, rtol=0))
