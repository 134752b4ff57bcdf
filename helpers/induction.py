"""Induction heads (chapter 10): the repeated and periodic sequence tasks, and the measurements
made on a trained `TinyGPT`: per-position loss, scores along a diagonal of a head's weights, the
attention mass on already-seen tokens, and zero- or mean-ablation of one head.

The model, its KV cache and the sampling rule are in `helpers.transformer`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from helpers.transformer import TinyGPT

__all__ = [
    "ablate_head",
    "diagonal_scores",
    "head_output_mean",
    "per_position_loss",
    "periodic_sequences",
    "repeated_sequences",
    "seen_token_mass",
]


def repeated_sequences(
    num: int, half_len: int = 12, vocab_size: int = 16, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`num` sequences of `half_len` uniform random tokens followed by the same tokens again:
    (num, 2 * half_len) int64. Seeded by `generator` (the global generator if None)."""
    for name, value in (("num", num), ("half_len", half_len), ("vocab_size", vocab_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    first = torch.randint(0, vocab_size, (num, half_len), generator=generator)  # (N, L)
    return torch.cat((first, first), dim=1)  # (N, 2L)



def periodic_sequences(
    num: int, length: int = 24, min_period: int = 4, max_period: int = 12, vocab_size: int = 16,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """`num` sequences of `length` tokens, each repeating its first p uniform random tokens with
    its own period p drawn from min_period..max_period: (num, length) int64.

    Because p changes from sequence to sequence, no fixed look-back distance predicts the next
    token; finding the earlier copy of the current token does."""
    if not isinstance(length, int) or not 1 <= min_period <= max_period < length:
        raise ValueError(
            f"need 1 <= min_period <= max_period < length, got min_period={min_period}, "
            f"max_period={max_period}, length={length}"
        )
    tokens = torch.randint(0, vocab_size, (num, length), generator=generator)  # (N, T)
    p = torch.randint(min_period, max_period + 1, (num, 1), generator=generator)  # (N, 1)
    t = torch.arange(length)  # (T,)
    return tokens.gather(1, t % p)  # token t copies token t mod p: (N, T)



def per_position_loss(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting token t + 1 from tokens 0..t, averaged over the batch:
    tokens (batch, T) -> (T - 1,), entry t for the prediction made at position t."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[1] < 2:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
        raise ValueError(f"tokens must be (batch, T) with T >= 2, got {shape}")
    logits = model(tokens[:, :-1])  # (B, T-1, V)
    loss = nn.functional.cross_entropy(
        logits.transpose(1, 2), tokens[:, 1:], reduction="none"
    )  # (B, V, T-1) vs (B, T-1) -> (B, T-1)
    return loss.mean(0)  # (T-1,)



def diagonal_scores(weights: torch.Tensor, offset: int, first_query: int = 0) -> torch.Tensor:
    """Mean weight each head puts on key t - offset for queries t >= max(first_query, offset):
    weights (batch, heads, T, T) -> (heads,). offset 1 scores a previous-token head."""
    if not isinstance(weights, torch.Tensor) or weights.dim() != 4 \
            or weights.shape[-1] != weights.shape[-2]:
        shape = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
        raise ValueError(f"weights must be (batch, heads, T, T), got {shape}")
    T = weights.shape[-1]
    start = max(first_query, offset)
    if not 0 <= offset or start >= T:
        raise ValueError(f"no query t >= {start} has a key t - {offset} among T = {T} positions")
    queries = torch.arange(start, T)  # (n,)
    picked = weights[:, :, queries, queries - offset]  # (B, h, n)
    return picked.mean(dim=(0, 2))  # (h,)



def seen_token_mass(model: nn.Module, tokens: torch.Tensor, stop: int) -> tuple[float, float]:
    """How much the model bets on a repeat: for the predictions made at positions 0..stop-2 of
    tokens (batch, T), the mean probability it gives to tokens already among tokens 0..t, and
    the share of the vocabulary those tokens are (what a uniform guess would give them)."""
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 \
            or not 2 <= stop <= tokens.shape[1]:
        raise ValueError(f"need tokens (batch, T) and 2 <= stop <= T, got stop={stop}")
    probs = torch.softmax(model(tokens[:, : stop - 1]), dim=-1)  # (B, stop-1, V)
    B, n, V = probs.shape
    seen = torch.zeros(B, n, V, dtype=probs.dtype)  # seen[b, t, x] = 1 if x in tokens[b, :t+1]
    for t in range(n):
        seen[:, t].scatter_(1, tokens[:, : t + 1], 1.0)
    mass = (probs * seen).sum(-1).mean().item()
    share = (seen.sum(-1) / V).mean().item()
    return mass, share



def _head_attention(model: TinyGPT, layer: int, head: int):
    if not 0 <= layer < len(model.blks):
        raise ValueError(f"layer must be in 0..{len(model.blks) - 1}, got {layer}")
    att = model.blks[layer].attention
    if not 0 <= head < att.num_heads:
        raise ValueError(f"head must be in 0..{att.num_heads - 1}, got {head}")
    return att



@contextlib.contextmanager
def ablate_head(
    model: TinyGPT, layer: int, head: int, replacement: torch.Tensor | None = None
) -> Iterator[None]:
    """Within the block, head `head` of block `layer` outputs `replacement` (its share of the
    concatenated heads, before W_o) at every position: zeros if None (zero-ablation, as if the
    head were removed), or a (p,) vector such as `head_output_mean(...)` (mean-ablation)."""
    att = _head_attention(model, layer, head)
    if replacement is not None:
        p = att.num_hiddens // att.num_heads
        if not isinstance(replacement, torch.Tensor) or replacement.dim() != 1 \
                or replacement.numel() != p:
            shape = tuple(replacement.shape) if isinstance(replacement, torch.Tensor) \
                else type(replacement)
            raise ValueError(f"replacement must be a (p,) tensor (one head's width), got {shape}")

    def replace_head(_module, _inputs, out):  # out (B*h, T_new, p), row b*h + i is head i
        out = out.clone()
        view = out.view(-1, att.num_heads, *out.shape[1:])  # (B, h, T_new, p)
        view[:, head] = 0 if replacement is None else replacement.to(out)
        return out

    handle = att.attention.register_forward_hook(replace_head)
    try:
        yield
    finally:
        handle.remove()



def head_output_mean(model: TinyGPT, layer: int, head: int, tokens: torch.Tensor) -> torch.Tensor:
    """The mean of head `head`'s output (before W_o) over every sequence and position of tokens
    (batch, T): (p,). Replacing the head's output by it (`ablate_head(..., replacement=...)`)
    removes what the head says about *this* input while keeping its average contribution."""
    att = _head_attention(model, layer, head)
    seen = []

    def record(_module, _inputs, out):  # out (B*h, T, p)
        seen.append(out.view(-1, att.num_heads, *out.shape[1:])[:, head].detach())  # (B, T, p)

    handle = att.attention.register_forward_hook(record)
    try:
        with torch.no_grad():
            model(tokens)
    finally:
        handle.remove()
    return seen[0].reshape(-1, seen[0].shape[-1]).mean(0)  # (p,)
