"""Chapter 10, generating with attention: the repeated-sequence task, the measurements the chapter
makes on a trained TinyGPT (per-position loss, head scores, head ablation), the two explorers and
the exercises' self-checks.

The model, its KV cache and the sampling rule live in `helpers.transformer` (`TinyGPT`,
`generate`, `next_token_probs`); this module only measures, draws and checks.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from helpers.explorer import as_number, build_explorer, check, self_check
from helpers.transformer import TinyGPT, next_token_probs

__all__ = [
    "EXPLORER_DEMOS",
    "ablate_head",
    "attention_heads_explorer",
    "check_induction_key",
    "check_kv_cache_bytes",
    "check_top_k_mass",
    "diagonal_scores",
    "per_position_loss",
    "periodic_sequences",
    "repeated_sequences",
    "sampling_explorer",
]


# ---------------------------------------------------------------------------------------------
# The task and the measurements
# ---------------------------------------------------------------------------------------------


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


@contextlib.contextmanager
def ablate_head(model: TinyGPT, layer: int, head: int) -> Iterator[None]:
    """Within the block, head `head` of block `layer` outputs zeros (its share of the
    concatenated heads, before W_o), so the model runs as if that head were removed."""
    if not 0 <= layer < len(model.blks):
        raise ValueError(f"layer must be in 0..{len(model.blks) - 1}, got {layer}")
    att = model.blks[layer].attention
    if not 0 <= head < att.num_heads:
        raise ValueError(f"head must be in 0..{att.num_heads - 1}, got {head}")

    def zero_head(_module, _inputs, out):  # out (B*h, T_new, p), row b*h + i is head i
        out = out.clone()
        out.view(-1, att.num_heads, *out.shape[1:])[:, head] = 0  # (B, h, T_new, p)
        return out

    handle = att.attention.register_forward_hook(zero_head)
    try:
        yield
    finally:
        handle.remove()


# ---------------------------------------------------------------------------------------------
# Explorers
# ---------------------------------------------------------------------------------------------


def attention_heads_explorer(
    weights: list[torch.Tensor], half_len: int, tokens: torch.Tensor | None = None
) -> widgets.VBox:
    """Per layer and head, one sequence's attention weights and the two diagonals that name a
    previous-token head (key t - 1) and an induction head (key t - half_len + 1).

    weights: per layer (heads, T, T) for one sequence (e.g. `model.attention_weights[i][0]`).
    Controls: layer, head. State: `layer`, `head`, `weights`, `prev_score`, `induction_score`.
    """
    if not weights or any(not isinstance(w, torch.Tensor) or w.dim() != 3 for w in weights):
        raise ValueError("weights must be a non-empty list of (heads, T, T) tensors")
    shapes = {tuple(w.shape) for w in weights}
    if len(shapes) != 1 or weights[0].shape[-1] != weights[0].shape[-2]:
        raise ValueError(f"every layer's weights must share one (heads, T, T) shape, got {shapes}")
    heads, T, _ = weights[0].shape
    if not 1 <= half_len < T:
        raise ValueError(f"half_len must be in 1..{T - 1}, got {half_len}")
    maps = [w.detach().float().cpu().numpy() for w in weights]
    prev = [diagonal_scores(w[None].float(), 1).tolist() for w in weights]
    induct = [diagonal_scores(w[None].float(), half_len - 1, half_len).tolist() for w in weights]

    fig = Figure(figsize=(5.6, 4.6), dpi=80)
    fig.subplots_adjust(left=0.12, right=0.9, bottom=0.11, top=0.9)
    ax = fig.subplots()
    im = ax.imshow(maps[0][0], cmap="Reds", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, ticks=[0, 0.5, 1], label="weight")
    t = np.arange(T)
    ax.plot(t[1:] - 1, t[1:], "s", mfc="none", mec="tab:blue", ms=5, mew=0.8,
            label="key t - 1")
    second = t[half_len:]
    ax.plot(second - half_len + 1, second, "o", mfc="none", mec="tab:green", ms=5, mew=0.8,
            label=f"key t - {half_len - 1}")
    ax.axhline(half_len - 0.5, color="gray", lw=0.6, ls="--")
    ticks = list(range(0, T, 4))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if tokens is not None:
        labels = [str(int(x)) for x in tokens[:T]]
        ax.set_xticks(range(T), labels=labels, fontsize=6)
        ax.set_yticks(range(T), labels=labels, fontsize=6)
    ax.set(xlabel="key position" if tokens is None else "key (token id; positions from 0)",
           ylabel="query position" if tokens is None else "query (token id)")
    title = ax.set_title("")

    def draw(layer: int, head: int):
        im.set_data(maps[layer][head])
        p, q = prev[layer][head], induct[layer][head]
        title.set_text(f"layer {layer}, head {head}: previous-token score {p:.2f}, "
                       f"induction score {q:.2f}")
        state = {"layer": layer, "head": head, "weights": maps[layer][head],
                 "prev_score": p, "induction_score": q}
        return fig, state

    controls = {
        "layer": widgets.Dropdown(options=list(range(len(maps))), value=0, description="layer"),
        "head": widgets.Dropdown(options=list(range(heads)), value=0, description="head"),
    }
    return build_explorer(controls, draw, title="Attention weights of one sequence, per layer "
                          "and head (rows: queries, columns: keys; squares: key t - 1; circles: "
                          f"key t - {half_len - 1})")


def sampling_explorer(logits: torch.Tensor, labels: list[str] | None = None) -> widgets.VBox:
    """Bars of `next_token_probs(logits, temperature, top_k)` for one next-token distribution.

    logits: (vocab,). Controls: temperature, top_k (the vocabulary size means no cut).
    State: `probs`, `kept_mass` (the mass of the top_k tokens at this temperature before
    renormalising), `entropy` (nats).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or logits.numel() < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
        raise ValueError(f"logits must be a (vocab,) tensor with vocab >= 2, got {shape}")
    logits = logits.detach().double().cpu()
    V = logits.numel()
    order = torch.argsort(logits, descending=True)

    fig = Figure(figsize=(6.4, 2.8), dpi=80)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.86)
    ax = fig.subplots()
    x = np.arange(V)
    bars = ax.bar(x, np.zeros(V), color="tab:red")
    ax.set_xticks(x, labels=labels if labels is not None else [str(i) for i in range(V)],
                  fontsize=7)
    ax.set(xlabel="next token", ylabel="probability", ylim=(0, 1.02), xlim=(-0.6, V - 0.4))
    title = ax.set_title("")

    def draw(temperature: float, top_k: int):
        k = None if top_k >= V else int(top_k)
        probs = next_token_probs(logits, float(temperature), k)  # (V,)
        for bar, h in zip(bars, probs.tolist(), strict=True):
            bar.set_height(h)
        if temperature == 0:
            kept = 1.0
        else:
            full = torch.softmax(logits / temperature, 0)  # (V,)
            kept = float(full[order[: min(int(top_k), V)]].sum())
        nz = probs[probs > 0]
        entropy = float(-(nz * nz.log()).sum())
        title.set_text(f"temperature {temperature:.2f}, top_k {'all' if k is None else k}: "
                       f"top_k keeps {kept:.3f} of the mass; entropy {entropy:.2f} nats")
        state = {"probs": probs.numpy(), "kept_mass": kept, "entropy": entropy}
        return fig, state

    controls = {
        "temperature": widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05,
                                           description="temperature"),
        "top_k": widgets.IntSlider(value=V, min=1, max=V, description="top_k"),
    }
    return build_explorer(controls, draw, title="One next-token distribution: temperature and "
                          "top-k (top_k at its maximum keeps every token)")


def _demo_attention_heads() -> widgets.VBox:
    gen = torch.Generator().manual_seed(1)
    L, heads = 12, 2
    T = 2 * L
    maps = []
    for kind in ("prev", "induction"):
        w = torch.rand(heads, T, T, generator=gen).tril()  # (h, T, T)
        t = torch.arange(1, T)
        if kind == "prev":
            w[0, t, t - 1] += 20
        else:
            s = torch.arange(L, T)
            w[1, s, s - L + 1] += 20
        maps.append(w / w.sum(-1, keepdim=True))
    return attention_heads_explorer(maps, L)


def _demo_sampling() -> widgets.VBox:
    logits = torch.tensor([3.1, 2.4, 1.9, 1.2, 0.8, 0.3, 0.0, -0.4, -0.9, -1.5, -2.0, -2.2,
                           -2.7, -3.0, -3.3, -4.0])
    return sampling_explorer(logits)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    "attention_heads": _demo_attention_heads,
    "sampling": _demo_sampling,
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


@self_check
def check_kv_cache_bytes(
    answer: Any, layers: int = 12, heads: int = 12, head_width: int = 64, length: int = 1024,
    bytes_per_number: int = 4,
) -> bool:
    """Exercise 1 (predict): bytes of a float32 KV cache for one sequence of `length` tokens in a
    model of GPT-2 small's shape."""
    got = as_number(answer)
    want = 2 * layers * heads * head_width * length * bytes_per_number
    hint = ("every layer stores keys AND values, for every head and every position; each "
            "number is a float32.")
    if abs(got - want / 2) <= 0.01 * want:
        hint = "close: did you count the keys and the values?"
    return check(abs(got - want) <= 0.01 * want, hint,
                 "Correct: that is per sequence; a batch multiplies it.")


@self_check
def check_induction_key(answer: Any, t: int = 22, half_len: int = 15) -> bool:
    """Exercise 2: the key position an induction head reads for the query at position t in the
    second half of a sequence whose two halves of `half_len` tokens are equal."""
    got = as_number(answer)
    want = t - half_len + 1
    hint = ("the token at t appeared before at t - half_len; the head reads the token that "
            "FOLLOWED that earlier copy, because that is what comes next now.")
    if got == t - half_len:
        hint = ("that key holds the same token as position t; what the model needs is the one "
                "after it.")
    return check(got == want, hint, "Correct: one position after the earlier copy.")


TOP_K_LOGITS = (2.0, 1.0, 0.5, 0.0, -1.0)


@self_check
def check_top_k_mass(
    answer: Any, logits: tuple[float, ...] = TOP_K_LOGITS, top_k: int = 2, temperature: float = 1.0
) -> bool:
    """Exercise 3: the share of the full softmax(logits / temperature) that the top_k largest
    logits hold (the mass top-k sampling keeps before renormalising)."""
    got = as_number(answer)
    e = [math.exp(x / temperature) for x in logits]
    want = sum(sorted(e, reverse=True)[:top_k]) / sum(e)
    hint = ("take the softmax over ALL the logits first, then add the probabilities of the "
            f"{top_k} largest.")
    if abs(got - 1.0) <= 1e-3:
        hint = ("after renormalising the kept tokens sum to 1; the question asks for their share "
                "before that.")
    return check(abs(got - want) <= 2e-3, hint,
                 "Correct: the rest of the mass is what top-k throws away.")
