"""Attention scoring, masking and multi-head attention (d2l 1.0 names and signatures).

Shapes follow d2l: queries (batch, n_q, d_q), keys (batch, n_k, d_k), values (batch, n_k, d_v);
attention weights (batch, n_q, n_k), queries on rows and keys on columns.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

__all__ = [
    "AdditiveAttention",
    "DotProductAttention",
    "EXAMPLE_TEXT",
    "MultiHeadAttention",
    "SCORING_FUNCTIONS",
    "SelfAttentionSteps",
    "masked_softmax",
    "position_letter_tokens",
    "scoring_weights",
    "self_attention_steps",
    "two_head_example",
    "unscaled_max_weight",
    "worked_example",
]


def _check_qkv(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> None:
    """Raise an error naming the tensors when queries, keys and values cannot be attended."""
    for name, t in (("queries", queries), ("keys", keys), ("values", values)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name} must be 3-D (batch, n, d), got shape {tuple(t.shape)}")
    if not (queries.shape[0] == keys.shape[0] == values.shape[0]):
        raise ValueError(
            "queries, keys and values must share the batch size, got shapes "
            f"{tuple(queries.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}"
        )
    if keys.shape[1] != values.shape[1]:
        raise ValueError(
            "keys and values must have the same number of positions, got keys "
            f"{tuple(keys.shape)} and values {tuple(values.shape)}"
        )


def _check_qk(queries: torch.Tensor, keys: torch.Tensor) -> None:
    """Raise an error naming the tensors when queries and keys cannot be scored."""
    for name, t in (("queries", queries), ("keys", keys)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 3:
            raise ValueError(f"{name} must be 3-D (batch, n, d), got shape {tuple(t.shape)}")
    if queries.shape[0] != keys.shape[0]:
        raise ValueError(
            "queries and keys must share the batch size, got shapes "
            f"{tuple(queries.shape)} and {tuple(keys.shape)}"
        )


def _expand_valid_lens(
    valid_lens: torch.Tensor | None, batch: int, n_q: int, device: torch.device
) -> torch.Tensor | None:
    """Return valid lengths as a (batch, n_q) integer tensor, or None for no masking."""
    if valid_lens is None:
        return None
    lens = torch.as_tensor(valid_lens, device=device)
    if lens.dtype == torch.bool or lens.is_complex():
        raise TypeError(f"valid_lens must hold integers, got dtype {lens.dtype}")
    if lens.is_floating_point():
        if not torch.equal(lens, lens.round()):
            raise ValueError("valid_lens must hold whole numbers")
        lens = lens.long()
    if lens.dim() == 1:
        if lens.shape[0] != batch:
            raise ValueError(
                f"valid_lens of shape {tuple(lens.shape)} does not match the batch size {batch}"
            )
        lens = lens[:, None].expand(batch, n_q)
    elif lens.dim() == 2:
        if tuple(lens.shape) != (batch, n_q):
            raise ValueError(
                f"valid_lens of shape {tuple(lens.shape)} must be (batch, n_q) = {(batch, n_q)}"
            )
    else:
        raise ValueError(
            f"valid_lens must be None, (batch,) or (batch, n_q); got shape {tuple(lens.shape)}"
        )
    if (lens < 0).any():
        raise ValueError(f"valid_lens must be non-negative, got {lens.min().item()}")
    return lens


def masked_softmax(X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis of X (batch, n_q, n_k), keeping only the first valid_lens keys.

    valid_lens is None, (batch,) (one length per example) or (batch, n_q) (one per query).
    Masked keys get exactly zero weight; a query with no valid key gets all-zero weights
    (d2l returns uniform weights there). X is never modified, and gradients flow.
    """
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"X must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != 3:
        raise ValueError(f"X must be 3-D (batch, n_q, n_k), got shape {tuple(X.shape)}")
    if not X.is_floating_point():
        raise TypeError(f"X must be a floating-point tensor, got dtype {X.dtype}")
    batch, n_q, n_k = X.shape
    lens = _expand_valid_lens(valid_lens, batch, n_q, X.device)
    if lens is None:
        return torch.softmax(X, dim=-1)
    keep = torch.arange(n_k, device=X.device) < lens[..., None]  # (B, n_q, n_k)
    any_valid = keep.any(dim=-1, keepdim=True)  # (B, n_q, 1)
    # Masked keys score -inf; rows with no valid key score 0 everywhere so the softmax stays finite
    # (no 0/0, hence no NaN in values or gradients), and are then zeroed.
    fill = torch.where(any_valid, float("-inf"), 0.0).to(X.dtype)
    scores = torch.where(keep, X, fill)
    weights = torch.softmax(scores, dim=-1)
    return torch.where(keep, weights, torch.zeros((), dtype=weights.dtype, device=X.device))


class DotProductAttention(nn.Module):
    """Scaled dot-product attention: softmax(Q Kᵀ / √d) V (d2l's `DotProductAttention`)."""

    def __init__(self, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """queries (B, n_q, d), keys (B, n_k, d) -> scores qᵀk / √d, (B, n_q, n_k)."""
        _check_qk(queries, keys)
        if queries.shape[-1] != keys.shape[-1]:
            raise ValueError(
                "dot-product attention needs queries and keys of the same width, got queries "
                f"{tuple(queries.shape)} and keys {tuple(keys.shape)}"
            )
        d = queries.shape[-1]
        return torch.bmm(queries, keys.transpose(1, 2)) / math.sqrt(d)  # (B, n_q, d) @ (B, d, n_k)

    def forward(self, queries, keys, values, valid_lens=None):
        """queries (B, n_q, d), keys (B, n_k, d), values (B, n_k, d_v) -> (B, n_q, d_v)."""
        _check_qkv(queries, keys, values)
        scores = self.scores(queries, keys)  # (B, n_q, n_k)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, n_q, d_v)


class AdditiveAttention(nn.Module):
    """Additive attention: a(q, k) = w_vᵀ tanh(W_q q + W_k k) (d2l's `AdditiveAttention`)."""

    def __init__(self, num_hiddens: int, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.W_k = nn.LazyLinear(num_hiddens, bias=False)
        self.W_q = nn.LazyLinear(num_hiddens, bias=False)
        self.w_v = nn.LazyLinear(1, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def scores(self, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """queries (B, n_q, d_q), keys (B, n_k, d_k) -> w_vᵀ tanh(W_q q + W_k k), (B, n_q, n_k)."""
        _check_qk(queries, keys)
        queries, keys = self.W_q(queries), self.W_k(keys)  # (B, n_q, h), (B, n_k, h)
        features = torch.tanh(queries.unsqueeze(2) + keys.unsqueeze(1))  # (B, n_q, n_k, h)
        return self.w_v(features).squeeze(-1)  # (B, n_q, n_k, h) -> (B, n_q, n_k)

    def forward(self, queries, keys, values, valid_lens=None):
        """queries (B, n_q, d_q), keys (B, n_k, d_k), values (B, n_k, d_v) -> (B, n_q, d_v)."""
        _check_qkv(queries, keys, values)
        scores = self.scores(queries, keys)  # (B, n_q, n_k)
        self.attention_weights = masked_softmax(scores, valid_lens)
        return torch.bmm(self.dropout(self.attention_weights), values)  # (B, n_q, d_v)


SCORING_FUNCTIONS = ("scaled dot product", "dot product", "additive", "gaussian")


def scoring_weights(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scoring: str,
    valid_lens: torch.Tensor | None = None,
    additive: AdditiveAttention | None = None,
) -> torch.Tensor:
    """Attention weights (B, n_q, n_k) of queries (B, n_q, d) over keys (B, n_k, d), by name.

    scoring: "scaled dot product" (qᵀk/√d, `DotProductAttention.scores`), "dot product" (qᵀk),
    "additive" (`additive.scores`, an `AdditiveAttention`) or "gaussian" (-‖q - k‖²/2, chapter
    02's kernel). valid_lens as in `masked_softmax`.
    """
    _check_qk(queries, keys)
    if scoring == "scaled dot product":
        scores = DotProductAttention().scores(queries, keys)  # (B, n_q, n_k)
    elif scoring == "dot product":
        scores = torch.bmm(queries, keys.transpose(1, 2))  # (B, n_q, d) @ (B, d, n_k)
    elif scoring == "additive":
        if not isinstance(additive, AdditiveAttention):
            raise TypeError("scoring='additive' needs an AdditiveAttention module as `additive`")
        scores = additive.scores(queries, keys)  # (B, n_q, n_k)
    elif scoring == "gaussian":
        diff = queries.unsqueeze(2) - keys.unsqueeze(1)  # (B, n_q, 1, d) - (B, 1, n_k, d)
        scores = -(diff**2).sum(-1) / 2  # (B, n_q, n_k)
    else:
        raise ValueError(f"scoring must be one of {SCORING_FUNCTIONS}, got {scoring!r}")
    return masked_softmax(scores, valid_lens)  # (B, n_q, n_k)


class SelfAttentionSteps(NamedTuple):
    """Every intermediate of single-head self-attention (returned by `self_attention_steps`).

    For n inputs: queries, keys (n, d_k); values (n, d_v); scores, weights (n_q, n_k) with
    n_q = n_k = n, queries on rows; weighted_values (n_q, n_k, d_v); outputs (n_q, d_v).
    Leading batch dimensions of x, if any, come first in every field.
    """

    queries: torch.Tensor
    keys: torch.Tensor
    values: torch.Tensor
    scores: torch.Tensor
    weights: torch.Tensor
    weighted_values: torch.Tensor
    outputs: torch.Tensor


def self_attention_steps(
    x: torch.Tensor,
    w_query: torch.Tensor,
    w_key: torch.Tensor,
    w_value: torch.Tensor,
    scale: bool = False,
) -> SelfAttentionSteps:
    """Self-attention on x (..., n, d_in), step by step, with (d_in, d) weight matrices.

    scores = Q Kᵀ (divided by √d_k when `scale`), weights = softmax(scores) over the keys,
    weighted_values[i, j] = weights[i, j] * values[j], outputs[i] = sum_j weighted_values[i, j].
    """
    named = (("x", x), ("w_query", w_query), ("w_key", w_key), ("w_value", w_value))
    for name, t in named:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if x.dim() < 2:
        raise ValueError(f"x must be (..., n, d_in), got shape {tuple(x.shape)}")
    for name, w in named[1:]:
        if w.dim() != 2 or w.shape[0] != x.shape[-1]:
            raise ValueError(
                f"{name} must be (d_in, d) with d_in = x.shape[-1] = {x.shape[-1]}; "
                f"got {name} {tuple(w.shape)} and x {tuple(x.shape)}"
            )
    if w_query.shape[1] != w_key.shape[1]:
        raise ValueError(
            "w_query and w_key must produce queries and keys of the same width, got w_query "
            f"{tuple(w_query.shape)} and w_key {tuple(w_key.shape)}"
        )
    queries = x @ w_query  # (..., n, d_in) @ (d_in, d_k) -> (..., n, d_k)
    keys = x @ w_key  # (..., n, d_in) @ (d_in, d_k) -> (..., n, d_k)
    values = x @ w_value  # (..., n, d_in) @ (d_in, d_v) -> (..., n, d_v)
    scores = queries @ keys.transpose(-2, -1)  # (..., n, d_k) @ (..., d_k, n) -> (..., n, n)
    if scale:
        scores = scores / math.sqrt(keys.shape[-1])
    weights = torch.softmax(scores, dim=-1)  # (..., n_q, n_k), each row sums to 1
    weighted_values = weights[..., :, :, None] * values[..., None, :, :]  # (..., n_q, n_k, d_v)
    outputs = weighted_values.sum(dim=-2)  # (..., n_q, d_v)
    return SelfAttentionSteps(queries, keys, values, scores, weights, weighted_values, outputs)


def worked_example(
    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chapter 4's running case: x (3, 4) and w_query, w_key, w_value, each (4, 3)."""
    x = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]
    w_query = [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
    w_key = [[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]]
    w_value = [[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]]
    return tuple(torch.tensor(t, dtype=dtype, device=device) for t in (x, w_query, w_key, w_value))


class MultiHeadAttention(nn.Module):
    """Multi-head attention: `num_heads` dot-product heads run as one batched product (d2l 1.0).

    Head i sees its own slice of the projections: rows i*p .. (i+1)*p - 1 of `W_q`, `W_k` and `W_v`,
    with p = num_hiddens / num_heads, so p_q = p_k = p_v = p_o / num_heads.
    """

    def __init__(
        self, num_hiddens: int, num_heads: int, dropout: float = 0.0, bias=False, **kwargs
    ):
        super().__init__(**kwargs)
        for name, value in (("num_hiddens", num_hiddens), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if num_heads <= 0 or num_hiddens <= 0 or num_hiddens % num_heads != 0:
            raise ValueError(
                f"num_hiddens ({num_hiddens}) must be a positive multiple of "
                f"num_heads ({num_heads})"
            )
        self.num_heads = num_heads
        self.num_hiddens = num_hiddens
        self.attention = DotProductAttention(dropout)
        self.W_q = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_k = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_v = nn.LazyLinear(num_hiddens, bias=bias)
        self.W_o = nn.LazyLinear(num_hiddens, bias=bias)

    def transpose_qkv(self, X: torch.Tensor) -> torch.Tensor:
        """(B, n, num_hiddens) -> (B * num_heads, n, num_hiddens / num_heads); head i of example b
        lands at row b * num_heads + i."""
        if X.dim() != 3 or X.shape[-1] % self.num_heads != 0:
            raise ValueError(
                f"X must be (batch, n, num_heads * p) with num_heads={self.num_heads}, "
                f"got shape {tuple(X.shape)}"
            )
        X = X.reshape(X.shape[0], X.shape[1], self.num_heads, -1)  # (B, n, h, p)
        X = X.permute(0, 2, 1, 3)  # (B, h, n, p)
        return X.reshape(-1, X.shape[2], X.shape[3])  # (B*h, n, p)

    def transpose_output(self, X: torch.Tensor) -> torch.Tensor:
        """Undo `transpose_qkv`: (B * num_heads, n, p) -> (B, n, num_heads * p)."""
        if X.dim() != 3 or X.shape[0] % self.num_heads != 0:
            raise ValueError(
                f"X must be (batch * num_heads, n, p) with num_heads={self.num_heads}, "
                f"got shape {tuple(X.shape)}"
            )
        X = X.reshape(-1, self.num_heads, X.shape[1], X.shape[2])  # (B, h, n, p)
        X = X.permute(0, 2, 1, 3)  # (B, n, h, p)
        return X.reshape(X.shape[0], X.shape[1], -1)  # (B, n, h*p)

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """Per-head weights of the last forward call, (B * num_heads, n_q, n_k) as in d2l."""
        return self.attention.attention_weights

    @property
    def head_weights(self) -> torch.Tensor | None:
        """The same weights split by head for plotting: (B, num_heads, n_q, n_k)."""
        w = self.attention.attention_weights
        return None if w is None else w.reshape(-1, self.num_heads, *w.shape[1:])

    def head_projections(self, i: int) -> dict[str, torch.Tensor]:
        """Head i's slices of the projection weights: W_q, W_k, W_v rows (p, d_in) and the
        W_o columns (num_hiddens, p) that read the head's output."""
        if not 0 <= i < self.num_heads:
            raise ValueError(f"head index must be in [0, {self.num_heads}), got {i}")
        p = self.num_hiddens // self.num_heads
        rows = slice(i * p, (i + 1) * p)
        return {
            "W_q": self.W_q.weight[rows],
            "W_k": self.W_k.weight[rows],
            "W_v": self.W_v.weight[rows],
            "W_o": self.W_o.weight[:, rows],
        }

    def forward(self, queries, keys, values, valid_lens=None):
        """queries (B, n_q, d_q), keys (B, n_k, d_k), values (B, n_k, d_v) -> (B, n_q, num_hiddens).

        valid_lens: None, (B,) or (B, n_q); each head gets the same mask.
        """
        _check_qkv(queries, keys, values)
        batch = queries.shape[0]
        queries = self.transpose_qkv(self.W_q(queries))  # (B*h, n_q, p)
        keys = self.transpose_qkv(self.W_k(keys))  # (B*h, n_k, p)
        values = self.transpose_qkv(self.W_v(values))  # (B*h, n_k, p)
        if valid_lens is not None:
            # (B,) -> (B*h,) or (B, n_q) -> (B*h, n_q): row b*h + i is head i of example b
            valid_lens = torch.as_tensor(valid_lens, device=queries.device)
            if valid_lens.dim() not in (1, 2) or valid_lens.shape[0] != batch:
                raise ValueError(
                    f"valid_lens must be (batch,) or (batch, n_q) with batch={batch}, "
                    f"got shape {tuple(valid_lens.shape)}"
                )
            valid_lens = torch.repeat_interleave(valid_lens, repeats=self.num_heads, dim=0)
        output = self.attention(queries, keys, values, valid_lens)  # (B*h, n_q, p)
        return self.W_o(self.transpose_output(output))  # (B, n_q, num_hiddens)


def unscaled_max_weight(
    d: int = 256, n_q: int = 1000, n_k: int = 10, seed: int = 0, copies: int = 1
) -> float:
    """Mean over n_q random queries of the largest weight of softmax(q kᵀ) (no 1/√d) over n_k keys.

    Entries of queries and keys are independent N(0, 1); the generator is seeded with `seed`.
    With `copies` > 1 every key appears that many times, so a query attends over n_k * copies
    keys of which only n_k are distinct (the draws are the same as with copies=1).
    """
    if copies < 1:
        raise ValueError(f"copies must be at least 1, got {copies}")
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, n_q, d, generator=gen, dtype=torch.float64)  # (1, n_q, d)
    k = torch.randn(1, n_k, d, generator=gen, dtype=torch.float64)  # (1, n_k, d)
    k = k.repeat(1, copies, 1)  # (1, n_k * copies, d): the n_k keys, then again, `copies` times
    weights = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # (1, n_q, d) @ (1, d, n_k * copies)
    return weights.max(dim=-1).values.mean().item()


EXAMPLE_TEXT = "abcabdca"  # section 6.6's sequence



def position_letter_tokens(text: str = EXAMPLE_TEXT) -> tuple[torch.Tensor, list[str]]:
    """Tokens (1, n, n + n_letters): a one-hot position, then a one-hot letter; and the letters."""
    letters, n = sorted(set(text)), len(text)
    pos = torch.eye(n)  # (n, n) one-hot positions
    let = torch.eye(len(letters))[[letters.index(c) for c in text]]  # (n, n_letters)
    return torch.cat([pos, let], dim=-1)[None], letters  # (1, n, n + n_letters)



def two_head_example(
    text: str = EXAMPLE_TEXT, head0_query: torch.Tensor | None = None, sharpness: float = 20.0
) -> MultiHeadAttention:
    """Section 6.6's model: head 0 attends by position, head 1 by letter (8 positions, 4 letters).

    head0_query: the (n, n) block of W_q that maps a position to head 0's query; by default
    `sharpness` times "the position before mine". The model has been run once on the tokens of
    `text`, so its `head_weights` are (1, 2, n, n).
    """
    tokens, letters = position_letter_tokens(text)
    n, n_let = len(text), len(letters)
    if n != 8 or n_let != 4:
        raise ValueError(f"the example needs 8 tokens and 4 distinct letters, got {text!r}")
    model = MultiHeadAttention(16, 2, dropout=0.0)
    model(tokens, tokens, tokens)  # size the lazy layers
    if head0_query is None:
        head0_query = sharpness * torch.diag(torch.ones(n - 1), diagonal=1)  # e_j -> e_{j-1}
    with torch.no_grad():
        for W in (model.W_q, model.W_k, model.W_v, model.W_o):
            W.weight.zero_()
        model.W_q.weight[0:8, 0:8] = torch.as_tensor(head0_query, dtype=torch.float32)
        model.W_k.weight[0:8, 0:8] = torch.eye(n)  # head 0 key: "my position"
        model.W_q.weight[8:12, 8:12] = sharpness * torch.eye(4)  # head 1 query: "my letter"
        model.W_k.weight[8:12, 8:12] = torch.eye(4)  # head 1 key: "my letter"
        model.W_v.weight[0:4, 8:12] = torch.eye(4)  # head 0 value: the letter it finds
        model.W_v.weight[8:16, 0:8] = torch.eye(8)  # head 1 value: the position it finds
        model.W_o.weight.copy_(torch.eye(16))
        model(tokens, tokens, tokens)
    return model
