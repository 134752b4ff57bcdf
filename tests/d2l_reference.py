"""d2l's own attention and Transformer code, loaded from the installed `d2l` 1.0.3 as a reference.

`d2l/torch.py` imports torchvision, pandas, requests... at the top, and `d2l` pins numpy 1.23.5, so
it is installed with `pip install --no-deps d2l==1.0.3` (the Makefile does it) and never imported.
`load_d2l()` reads that file, picks the definitions the tests need with `ast`, and runs only those
in a namespace holding torch, nn and math, plus a stand-in `d2l` for the names they look up there.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import types
from functools import cache
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

D2L_VERSION = "1.0.3"
NAMES = (
    "masked_softmax",
    "DotProductAttention",
    "AdditiveAttention",
    "MultiHeadAttention",
    "PositionalEncoding",
    "PositionWiseFFN",
    "AddNorm",
    "TransformerEncoderBlock",
    "TransformerDecoderBlock",
    "BERTEncoder",
    "MaskLM",
)


def d2l_source() -> Path:
    """The installed d2l/torch.py; a clear error saying how to install it when missing."""
    spec = importlib.util.find_spec("d2l")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f'd2l is the tests\' reference: pip install --no-deps "d2l=={D2L_VERSION}" '
            "(make install does it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "torch.py"


def load_d2l_or_skip() -> types.SimpleNamespace:
    """load_d2l(), or skip the calling test with the reason when d2l is not installed.

    Where d2l is meant to be installed (`make test` sets BOOK_REQUIRE_D2L=1), a missing d2l is an
    error instead, so the reference tests cannot quietly stop running.
    """
    import pytest

    try:
        return load_d2l()
    except ModuleNotFoundError as err:
        if os.environ.get("BOOK_REQUIRE_D2L"):
            raise
        pytest.skip(f"d2l's code is the reference here and is not installed: {err}")


@cache
def load_d2l() -> types.SimpleNamespace:
    """d2l's definitions of NAMES (those present in its source) as attributes of a namespace."""
    path = d2l_source()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    wanted = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in NAMES
    ]
    # What the picked definitions look up through `d2l.`: its Module base (an nn.Module with
    # hyper-parameter helpers they do not use), its tensor aliases and the definitions themselves.
    d2l = types.SimpleNamespace(Module=nn.Module, zeros=torch.zeros, arange=torch.arange)
    namespace = {"torch": torch, "nn": nn, "F": F, "math": math, "d2l": d2l}
    code = compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec")
    exec(code, namespace)
    for node in wanted:
        setattr(d2l, node.name, namespace[node.name])
    return d2l
