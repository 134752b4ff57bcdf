"""Chapter 9, the Transformer block by block: the attention explorer, the planted-bug blocks of
exercise 3 and the exercises' self-checks.

The weights the explorer draws come from `helpers.transformer` (`collect_attention`); this module
draws them and checks the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter
from torch import nn

from helpers import seq2seq as s2s
from helpers.plotting import to_numpy
from helpers.transformer import collect_attention, make_transformer_seq2seq
from helpers.ui.checks import ReaderError, as_number, check, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "BUG_NAMES",
    "EXPLORER_DEMOS",
    "KINDS",
    "PlantedBlockA",
    "PlantedBlockB",
    "PlantedBlockC",
    "PlantedBlockD",
    "PlantedBlockE",
    "PlantedBlockF",
    "TinyCausalBlock",
    "attention_explorer",
    "check_causal_mask",
    "check_encoder_block_parameters",
    "check_find_the_bug",
    "is_causal",
    "matches_sdpa",
    "output_is_normalised",
    "property_report",
]

KINDS = ("encoder self", "decoder self", "cross")


# ---------------------------------------------------------------------------------------------
# Every attention map of an encoder-decoder Transformer, and the explorer that shows them
# ---------------------------------------------------------------------------------------------


def attention_explorer(
    sources: Sequence[str], predictions: Sequence[str], weights: dict[str, Any]
) -> widgets.VBox:
    """Pick an example, a kind of attention, a layer and a head; see that head's weights.

    sources, predictions: N strings (one character per token, predictions without the end token);
    weights: `collect_attention`'s dict, decoder fed [BOS, prediction]. Queries are rows, keys
    columns; layers, heads and positions are counted from 0. State: the control values, `rows`
    and `cols` (tick labels) and `weights`, the matrix drawn.
    """
    w = {k: to_numpy(weights[k]).astype(float) for k in KINDS}
    n_ex, n_layers, n_heads = w["cross"].shape[:3]
    if not len(sources) == len(predictions) == n_ex or w["encoder self"].shape[:3] != (
        n_ex, n_layers, n_heads
    ):
        raise ValueError(
            f"need N sources, N predictions and weights (N, layers, heads, ...); got "
            f"{len(sources)} sources, {len(predictions)} predictions, cross weights of shape "
            f"{w['cross'].shape}, encoder weights of shape {w['encoder self'].shape}"
        )
    size = max(w["encoder self"].shape[-1], w["cross"].shape[-2])

    fig = Figure(figsize=(4.8, 4.2))
    ax = fig.add_axes((0.2, 0.16, 0.6, 0.7))
    cax = fig.add_axes((0.84, 0.16, 0.03, 0.7))
    image = ax.imshow(np.zeros((size, size)), cmap="Reds", vmin=0, vmax=1)
    fig.colorbar(image, cax=cax, label="weight", ticks=[0, 0.5, 1])
    ax.set_xticks(range(size))
    ax.set_yticks(range(size))
    # Tick labels read the current lists at render time: no new tick objects on a redraw.
    current: dict[str, list[str]] = {"x": [], "y": []}

    def _label(axis: str) -> FuncFormatter:
        return FuncFormatter(
            lambda v, _pos: current[axis][int(v)] if 0 <= int(v) < len(current[axis]) else ""
        )

    ax.xaxis.set_major_formatter(_label("x"))
    ax.yaxis.set_major_formatter(_label("y"))
    title = ax.set_title("")

    def labels(kind: str, src: str, pred: str) -> tuple[list[str], list[str]]:
        dec_in = [f"{t} {c}" for t, c in enumerate(["BOS", *pred])]  # decoder inputs
        enc = [f"{c}\n{i}" for i, c in enumerate(src)]
        if kind == "encoder self":
            return [f"{i} {c}" for i, c in enumerate(src)], enc
        if kind == "decoder self":
            return dec_in, [f"{c}\n{t}" for t, c in enumerate(["BOS", *pred])]
        return [f"{t} {c}" for t, c in enumerate([*pred, "EOS"])], enc  # rows: what step t writes

    def draw(example: int, kind: str, layer: int, head: int) -> tuple[Figure, dict[str, Any]]:
        src, pred = sources[example], predictions[example]
        rows, cols = labels(kind, src, pred)
        m = w[kind][example, layer, head, : len(rows), : len(cols)]  # (queries, keys)
        shown = np.full((size, size), np.nan)
        shown[: len(rows), : len(cols)] = m
        image.set_data(np.ma.masked_invalid(shown))
        ax.set_xlim(-0.5, len(cols) - 0.5)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        current["x"], current["y"] = cols, rows
        xlabel = "decoder input (keys)" if kind == "decoder self" else "source (keys)"
        ylabel = "source (queries)" if kind == "encoder self" else "decoder step (queries)"
        if ax.get_xlabel() != xlabel:
            ax.set_xlabel(xlabel)
        if ax.get_ylabel() != ylabel:
            ax.set_ylabel(ylabel)
        title.set_text(f"{kind}, layer {layer}, head {head}: {src} -> {pred}")
        state = {"example": example, "kind": kind, "layer": layer, "head": head,
                 "rows": rows, "cols": cols, "weights": m.copy()}
        return fig, state

    controls = {
        "example": widgets.IntSlider(value=0, min=0, max=n_ex - 1, description="example"),
        "kind": widgets.Dropdown(options=list(KINDS), value="cross", description="attention"),
        "layer": widgets.IntSlider(value=n_layers - 1, min=0, max=n_layers - 1,
                                   description="layer"),
        "head": widgets.IntSlider(value=0, min=0, max=n_heads - 1, description="head"),
    }
    return build_explorer(controls, draw, title="Which attention, which layer, which head?")


def _demo_attention_explorer() -> widgets.VBox:
    """The explorer on 20 chapter-like reversal examples and an untrained 2-block model."""
    torch.manual_seed(0)
    model = make_transformer_seq2seq(13)
    data = s2s.make_seq_task(20, 3, 10, 10, task="reverse", seed=2)
    sources = [s2s.to_text(s) for s in data.src]
    predictions = [src[::-1] for src in sources]
    dec_in = s2s.decoder_input(data.tgt)  # [BOS, reversed source, ...]
    weights = collect_attention(model, data.src, data.src_len, dec_in)
    return attention_explorer(sources, predictions, weights)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"attention": _demo_attention_explorer}


# ---------------------------------------------------------------------------------------------
# Exercise 3: six blocks, each with at most one planted bug
# ---------------------------------------------------------------------------------------------


class TinyCausalBlock(nn.Module):
    """A post-norm causal self-attention block: ln(X + W_o attention(X W_q, X W_k, X W_v)).

    X (batch, T, num_hiddens) -> (batch, T, num_hiddens); query t sees keys 0..t. Each step is a
    method, so each planted-bug block below changes one of them.
    """

    def __init__(self, num_hiddens: int = 16, num_heads: int = 2):
        super().__init__()
        self.num_hiddens, self.num_heads = num_hiddens, num_heads
        self.W_q, self.W_k, self.W_v, self.W_o = (
            nn.Linear(num_hiddens, num_hiddens, bias=False) for _ in range(4)
        )
        self.ln = nn.LayerNorm(num_hiddens)

    def mask(self, T: int) -> torch.Tensor:
        """(T, T) bool: True where query t may see key s."""
        return torch.tril(torch.ones(T, T, dtype=torch.bool))

    def scale(self) -> float:
        """The factor the scores are multiplied by: 1 / sqrt(head width)."""
        return 1 / math.sqrt(self.num_hiddens // self.num_heads)

    def add_norm(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """Post-norm residual: ln(X + Y)."""
        return self.ln(X + Y)

    def weights(self, X: torch.Tensor) -> torch.Tensor:
        """X (B, T, d) -> attention weights (B, heads, T, T)."""
        B, T, d = X.shape
        h = self.num_heads
        q = self.W_q(X).reshape(B, T, h, d // h).transpose(1, 2)  # (B, h, T, p)
        k = self.W_k(X).reshape(B, T, h, d // h).transpose(1, 2)  # (B, h, T, p)
        # (B, h, T, p) @ (B, h, p, T) -> (B, h, T, T)
        scores = q @ k.transpose(-1, -2) * self.scale()
        scores = scores.masked_fill(~self.mask(T), float("-inf"))
        return torch.softmax(scores, dim=-1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (B, T, d) -> (B, T, d)."""
        B, T, d = X.shape
        h = self.num_heads
        v = self.W_v(X).reshape(B, T, h, d // h).transpose(1, 2)  # (B, h, T, p)
        out = (self.weights(X) @ v).transpose(1, 2).reshape(B, T, d)  # (B, h, T, T) @ (B, h, T, p)
        return self.add_norm(X, self.W_o(out))


class PlantedBlockA(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def scale(self) -> float:
        return 1 / math.sqrt(self.num_hiddens)


class PlantedBlockB(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def add_norm(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(X) + Y


class PlantedBlockC(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def mask(self, T: int) -> torch.Tensor:
        return torch.triu(torch.ones(T, T, dtype=torch.bool))


class PlantedBlockD(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def mask(self, T: int) -> torch.Tensor:
        ones = torch.ones(T, T, dtype=torch.bool)
        return torch.tril(ones) & torch.triu(ones, diagonal=-2)


class PlantedBlockE(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def add_norm(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        return self.ln(X + Y)


class PlantedBlockF(TinyCausalBlock):
    """TinyCausalBlock with one bug, or none."""

    def scale(self) -> float:
        return 1.0


_PLANTED = {"A": ("scale", PlantedBlockA), "B": ("residual", PlantedBlockB),
            "C": ("mask", PlantedBlockC), "D": ("mask", PlantedBlockD),
            "E": ("none", PlantedBlockE), "F": ("scale", PlantedBlockF)}
BUG_NAMES = ("residual", "mask", "scale", "none")


def _block_input(seed: int = 0, T: int = 6, d: int = 16) -> torch.Tensor:
    """A fixed random input (1, T, d) for the property tests."""
    return torch.randn(1, T, d, generator=torch.Generator().manual_seed(seed))


def is_causal(block: nn.Module) -> bool:
    """True if changing the tokens after position t leaves the block's output at t unchanged."""
    X = _block_input()
    with torch.no_grad():
        Y = block(X)
        for t in range(X.shape[1] - 1):
            X2 = X.clone()
            X2[:, t + 1 :] = _block_input(seed=t + 1)[:, t + 1 :]
            if not torch.allclose(block(X2)[:, : t + 1], Y[:, : t + 1], atol=1e-5):
                return False
    return True


def output_is_normalised(block: nn.Module) -> bool:
    """True if every output position has mean 0 and standard deviation 1 over its features (what
    a post-norm block ending in a fresh LayerNorm gives)."""
    with torch.no_grad():
        Y = block(_block_input())
    mean, std = Y.mean(-1), Y.std(-1, unbiased=False)
    return bool(torch.allclose(mean, torch.zeros_like(mean), atol=1e-4)
                and torch.allclose(std, torch.ones_like(std), atol=1e-3))


def matches_sdpa(block: TinyCausalBlock) -> bool:
    """True if the block's weights times its values equal PyTorch's causal scaled dot-product
    attention on the same projections."""
    X = _block_input()
    B, T, d = X.shape
    h = block.num_heads
    with torch.no_grad():
        q, k, v = (W(X).reshape(B, T, h, d // h).transpose(1, 2)
                   for W in (block.W_q, block.W_k, block.W_v))  # (B, h, T, p) each
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        got = block.weights(X) @ v  # (B, h, T, T) @ (B, h, T, p) -> (B, h, T, p)
    return bool(torch.allclose(got, want, atol=1e-5))


def property_report() -> dict[str, dict[str, bool]]:
    """Run the three property tests on the correct block and the planted ones; print a table."""
    torch.manual_seed(0)
    blocks = {"correct": TinyCausalBlock()}
    for name, (_, cls) in _PLANTED.items():
        torch.manual_seed(0)
        blocks[name] = cls()
    tests = {"is_causal": is_causal, "output_is_normalised": output_is_normalised,
             "matches_sdpa": matches_sdpa}
    report = {name: {t: fn(b) for t, fn in tests.items()} for name, b in blocks.items()}
    print(f"{'block':>8} | " + " | ".join(f"{t:>20}" for t in tests))
    for name, row in report.items():
        cells = (f"{'pass' if ok else 'FAIL':>20}" for ok in row.values())
        print(f"{name:>8} | " + " | ".join(cells))
    return report


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def _call(fn: Callable, args: tuple, signature: str) -> Any:
    """fn(*args), with a clear message when the reader's function takes other arguments."""
    try:
        return fn(*args)
    except TypeError as exc:
        if "positional argument" in str(exc) and exc.__traceback__.tb_next is None:
            raise ReaderError(f"your function must take the arguments {signature}.") from None
        raise


def _encoder_block_count(d: int, f: int) -> int:
    """Parameters of TransformerEncoderBlock(d, f, h, ...): 4 d x d projections without biases,
    FFN d -> f -> d with biases, two LayerNorms (scale and shift); h does not enter."""
    return 4 * d * d + (d * f + f) + (f * d + d) + 2 * 2 * d


# (d, f, heads): the book's block, others, and sizes far too large to build (4 d^2 floats alone
# would need terabytes), so only a formula answers them.
_BLOCK_SIZES = ((32, 64, 4), (48, 96, 6), (64, 256, 1), (12288, 49152, 96),
                (2**20, 2**22, 64), (10**7, 4 * 10**7, 80))


@self_check
def check_encoder_block_parameters(fn: Any) -> bool:
    """Exercise 1 (predict first): fn(d, f, h) -> parameters of TransformerEncoderBlock(d, f, h),
    checked at sizes too large to build."""
    if not callable(fn):
        raise ReaderError("define a function block_parameters(d, f, h) that returns a number.")
    ok = True
    for d, f, h in _BLOCK_SIZES:
        if (value := _call(fn, (d, f, h), "(d, f, h)")) is None:
            raise ReaderError(
                "your function returns None: replace the None in it with your formula."
            )
        got = as_number(value, f"block_parameters({d}, {f}, {h})")
        ok = ok and got == _encoder_block_count(d, f)
    return check(
        ok,
        "count four parts as functions of d and f: the attention's four d x d projections (no "
        "biases), the FFN's two dense layers (d -> f and f -> d, each with a bias), and two "
        "LayerNorms (each has a scale and a shift per feature). Does the number of heads change "
        "any of them?",
        "Correct! The heads split the projections, they do not add parameters. The FFN holds "
        "about half of the block's parameters here (f = 2d: 4d² of about 8d²), and two thirds "
        "with the usual f = 4d (8d² of about 12d²), although it never mixes positions.",
    )


def _as_bool_matrix(value: Any, shape: tuple[int, int], call: str) -> torch.Tensor:
    """The reader's mask as a bool tensor of `shape`, with a clear message otherwise."""
    if value is None:
        raise ReaderError("your function returns None: replace the None in it with your code.")
    try:
        m = torch.as_tensor(np.asarray(value, dtype=float))
    except (TypeError, ValueError) as exc:
        raise ReaderError(f"{call} must return a matrix of True/False.") from exc
    if tuple(m.shape) != shape:
        raise ReaderError(f"{call} returned shape {tuple(m.shape)}; it must be {shape}.")
    if not torch.all((m == 0) | (m == 1)):
        raise ReaderError(f"{call} must hold True/False (or 1/0) only.")
    return m.bool()


@self_check
def check_causal_mask(fn: Any) -> bool:
    """Exercise 2: fn(T_new, T_past) -> the (T_new, T_past + T_new) bool mask of decoder
    self-attention when T_past positions are already stored (True = may see)."""
    if not callable(fn):
        raise ReaderError(
            "define a function causal_mask(T_new, T_past) that returns a "
            "(T_new, T_past + T_new) matrix."
        )
    ok = True
    for t_new, t_past in ((1, 0), (4, 0), (1, 5), (3, 2), (2, 7), (6, 1)):
        m = _as_bool_matrix(_call(fn, (t_new, t_past), "(T_new, T_past)"), (t_new, t_past + t_new),
                            f"causal_mask({t_new}, {t_past})")
        query_pos = t_past + torch.arange(t_new)  # absolute positions of the new queries
        ok = ok and torch.equal(m, torch.arange(t_past + t_new)[None, :] <= query_pos[:, None])
    return check(
        bool(ok),
        "row r is the new query at absolute position T_past + r; column s is the key at absolute "
        "position s (the stored ones first). Which keys may that query see, and may it see "
        "itself? Try causal_mask(1, 5) (one new token after five stored ones) by hand first.",
        "Correct! With no stored positions it is the training mask; with one new query it is a "
        "row of all True. A mask aligned to the top-left corner instead is a classic decoding bug.",
    )


@self_check
def check_find_the_bug(answer: Any) -> bool:
    """Exercise 3: a dict naming the bug of each block, e.g. {"A": "mask", ..., "F": "none"}."""
    if not isinstance(answer, dict) or set(answer) != set(_PLANTED):
        raise ReaderError(
            "answer with a dict with the keys " + ", ".join(map(repr, _PLANTED)) + "."
        )
    for key, value in answer.items():
        if value not in BUG_NAMES:
            raise ReaderError(
                f"block {key}: name its bug with one of {', '.join(map(repr, BUG_NAMES))}; "
                f"got {value!r}."
            )
    return check(
        all(answer[k] == bug for k, (bug, _) in _PLANTED.items()),
        "not every block is named right (the check does not say which). For each kind of bug, "
        "work out which of the three property tests it must break and which it cannot. Where two "
        "kinds would fail the same tests, the failures alone cannot decide: look at what those "
        "blocks compute, their attention weights block.weights(X), or at their code.",
        "Correct! Each bug leaves the shapes right and the code running: only a property test "
        "finds it, and a test that fails says that something is wrong, not always what. A mask "
        "that hides keys and a wrong factor on the scores both break only the comparison with "
        "SDPA; the weights tell them apart (exact zeros below the diagonal, or every row "
        "sharper or flatter than it should be).",
    )
