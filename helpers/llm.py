"""Attention as today's language models use it (chapter 14).

- `GroupedQueryAttention`: `num_heads` query heads share `num_kv_heads` key/value heads
  (multi-head when they are equal, multi-query when there is one); query head i reads key/value
  head i // (num_heads / num_kv_heads).
- `kv_cache_bytes_per_token` and `PUBLISHED_CONFIGS`: what the KV cache of a real model costs.
- `sliding_window_mask`: causal attention limited to the last `window` keys, plus `num_sinks`
  first keys that every query keeps; one function for prefill and decoding shapes.
- `GQAGPT`: chapter 10's TinyGPT with grouped-query attention, an optional sliding window with
  sinks and a rolling-buffer KV cache of fixed size; `from_tinygpt` converts a trained TinyGPT by
  mean-pooling its key/value heads (Ainslie et al. 2023).
- FlexAttention: the same masks as `mask_mod`s and ALiBi or soft-capping as `score_mod`s, with
  dense references for `scaled_dot_product_attention`.
- `decode_cost` / `prefill_cost`: floating-point operations and bytes moved per token.

Shapes: X (batch, n, num_hiddens); per-head tensors (batch, heads, n, head_dim).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from helpers.transformer import LearnedPositionalEmbedding, PositionWiseFFN, TinyGPT

__all__ = [
    "GQAGPT",
    "GQAGPTBlock",
    "GQA_ASSETS",
    "GroupedQueryAttention",
    "ModelConfig",
    "PUBLISHED_CONFIGS",
    "UPTRAIN",
    "alibi_bias",
    "alibi_score_mod",
    "alibi_slopes",
    "causal_mask_mod",
    "decode_cost",
    "decode_tokens_per_second",
    "document_mask",
    "document_mask_mod",
    "flex_attention_eager",
    "from_tinygpt",
    "grouped_attention",
    "heldout_sequences",
    "kv_cache_allocated_bytes",
    "kv_cache_bytes",
    "kv_cache_bytes_per_token",
    "load_gqa_models",
    "mask_from_mod",
    "next_char_bits",
    "prefill_cost",
    "recomputed_window_bits",
    "sliding_window_mask",
    "sliding_window_mask_mod",
    "softcap_score_mod",
    "uptrain",
    "visible_keys",
]


def _positive_int(name: str, value, allow_zero: bool = False) -> int:
    """value as an int >= 1 (>= 0 with allow_zero), else a ValueError/TypeError naming it."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < (0 if allow_zero else 1):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '>= 1'}, got {value}")
    return value


# ---------------------------------------------------------------------------------------------
# Masks: which keys a query may see
# ---------------------------------------------------------------------------------------------


def visible_keys(query_pos: torch.Tensor, key_pos: torch.Tensor, window: int | None = None,
                 num_sinks: int = 0) -> torch.Tensor:
    """Bool (n_q, n_k): key position j is visible to query position p when 0 <= j <= p and
    (window is None or p - j < window or j < num_sinks). Negative key positions are empty slots."""
    p = query_pos[:, None]  # (n_q, 1)
    j = key_pos[None, :]  # (1, n_k)
    ok = (j >= 0) & (j <= p)  # (n_q, n_k)
    if window is not None:
        ok = ok & ((p - j < window) | (j < num_sinks))
    return ok


def sliding_window_mask(num_queries: int, num_keys: int, window: int, num_sinks: int = 0,
                        device=None) -> torch.Tensor:
    """Bool (num_queries, num_keys), True where the query may attend.

    The queries are the last num_queries of the num_keys positions (num_queries = num_keys for a
    prompt, fewer when decoding with a cache): the query at position p sees key j when j <= p
    and (p - j < window or j < num_sinks).
    """
    _positive_int("num_queries", num_queries)
    _positive_int("num_keys", num_keys)
    _positive_int("window", window)
    _positive_int("num_sinks", num_sinks, allow_zero=True)
    if num_queries > num_keys:
        raise ValueError(f"num_queries ({num_queries}) must be <= num_keys ({num_keys}): the "
                         "queries are the last positions of the keys")
    q_pos = torch.arange(num_keys - num_queries, num_keys, device=device)  # (n_q,)
    return visible_keys(q_pos, torch.arange(num_keys, device=device), window, num_sinks)


def document_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """Bool (n, n) for packed documents: causal, and only within the query's own document.

    doc_ids: (n,) the document each position belongs to."""
    if not isinstance(doc_ids, torch.Tensor) or doc_ids.dim() != 1:
        raise ValueError(f"doc_ids must be a 1-D tensor, got {getattr(doc_ids, 'shape', doc_ids)}")
    n = doc_ids.numel()
    causal = torch.ones(n, n, dtype=torch.bool, device=doc_ids.device).tril()  # (n, n)
    return causal & (doc_ids[:, None] == doc_ids[None, :])


# ---------------------------------------------------------------------------------------------
# Grouped-query attention
# ---------------------------------------------------------------------------------------------


def grouped_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention where query head i reads key/value head i // (h / g).

    q (B, h, n_q, p), k and v (B, g, n_k, p), mask None or bool broadcastable to (n_q, n_k)
    (True = may attend) -> (output (B, h, n_q, p), weights (B, h, n_q, n_k)). The g key/value
    heads are never copied h / g times: a group's query heads become extra rows of one product.
    """
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise ValueError(f"{name} must be a 4-D tensor (batch, heads, n, head_dim), got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
    B, h, n_q, p = q.shape
    g, n_k = k.shape[1], k.shape[2]
    if k.shape != v.shape or k.shape[0] != B or k.shape[-1] != p:
        raise ValueError(f"k and v must be (batch={B}, g, n_k, {p}) and equal, got "
                         f"{tuple(k.shape)} and {tuple(v.shape)}")
    if h % g:
        raise ValueError(f"the query heads ({h}) must be a multiple of the key/value heads ({g})")
    r = h // g
    # the r query heads of a group read the same keys: stack them as r * n_q rows of one product
    qg = q.reshape(B, g, r * n_q, p)  # heads i = j*r .. j*r + r-1 read key/value head j
    scores = qg @ k.transpose(-2, -1) / math.sqrt(p)  # (B,g,r*n_q,p) @ (B,g,p,n_k)
    scores = scores.reshape(B, g, r, n_q, n_k)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, g, r, n_q, n_k)
    weights = torch.softmax(scores, dim=-1)  # (B, g, r, n_q, n_k)
    out = weights.reshape(B, g, r * n_q, n_k) @ v  # (B,g,r*n_q,n_k) @ (B,g,n_k,p)
    return out.reshape(B, h, n_q, p), weights.reshape(B, h, n_q, n_k)


class GroupedQueryAttention(nn.Module):
    """Self-attention with `num_heads` query heads and `num_kv_heads` key/value heads.

    W_q maps to num_hiddens (num_heads heads of width p = num_hiddens / num_heads), W_k and W_v
    to num_kv_heads * p, W_o back to num_hiddens. num_kv_heads = num_heads is multi-head
    attention (the same numbers as `helpers.attention.MultiHeadAttention` with the same weights),
    num_kv_heads = 1 is multi-query attention.
    """

    def __init__(self, num_hiddens: int, num_heads: int, num_kv_heads: int,
                 dropout: float = 0.0, bias: bool = False):
        super().__init__()
        _positive_int("num_hiddens", num_hiddens)
        _positive_int("num_heads", num_heads)
        _positive_int("num_kv_heads", num_kv_heads)
        if num_hiddens % num_heads:
            raise ValueError(f"num_hiddens ({num_hiddens}) must be a multiple of num_heads "
                             f"({num_heads})")
        if num_heads % num_kv_heads:
            raise ValueError(f"num_heads ({num_heads}) must be a multiple of num_kv_heads "
                             f"({num_kv_heads}): each key/value head serves a whole group")
        self.num_hiddens, self.num_heads, self.num_kv_heads = num_hiddens, num_heads, num_kv_heads
        self.head_dim = num_hiddens // num_heads
        kv_width = num_kv_heads * self.head_dim
        self.W_q = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.W_k = nn.Linear(num_hiddens, kv_width, bias=bias)
        self.W_v = nn.Linear(num_hiddens, kv_width, bias=bias)
        self.W_o = nn.Linear(num_hiddens, num_hiddens, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.attention_weights: torch.Tensor | None = None

    def project(self, X: torch.Tensor):
        """X (B, n, num_hiddens) -> q (B, h, n, p), k and v (B, g, n, p)."""
        if not isinstance(X, torch.Tensor) or X.dim() != 3 or X.shape[-1] != self.num_hiddens:
            raise ValueError(f"X must be (batch, n, {self.num_hiddens}), got "
                             f"{getattr(X, 'shape', type(X).__name__)}")
        B, n, _ = X.shape
        q = self.W_q(X).reshape(B, n, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.W_k(X).reshape(B, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.W_v(X).reshape(B, n, self.num_kv_heads, self.head_dim).transpose(1, 2)
        return q, k, v  # (B, h, n, p), (B, g, n, p), (B, g, n, p)

    def attend(self, q, k, v, mask=None) -> torch.Tensor:
        """Grouped attention of projected heads, then W_o: -> (B, n_q, num_hiddens)."""
        out, weights = grouped_attention(q, k, v, mask)  # (B, h, n_q, p), (B, h, n_q, n_k)
        self.attention_weights = weights
        if self.training and self.dropout.p > 0:  # dropout on the weights, as in d2l
            out = self.dropout(weights) @ torch.repeat_interleave(
                v, self.num_heads // self.num_kv_heads, dim=1)  # (B, h, n_q, p)
        B, _, n_q, _ = out.shape
        return self.W_o(out.transpose(1, 2).reshape(B, n_q, self.num_hiddens))

    def forward(self, X: torch.Tensor, is_causal: bool = True,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """X (batch, n, num_hiddens) -> (batch, n, num_hiddens). `mask` (bool (n, n), True = may
        attend) replaces the causal mask when given."""
        q, k, v = self.project(X)
        n = X.shape[1]
        if mask is None and is_causal:
            mask = torch.ones(n, n, dtype=torch.bool, device=X.device).tril()  # (n, n)
        return self.attend(q, k, v, mask)


# ---------------------------------------------------------------------------------------------
# The KV cache in bytes, and published configurations
# ---------------------------------------------------------------------------------------------


def kv_cache_bytes_per_token(num_layers: int, num_kv_heads: int, head_dim: int,
                             bytes_per_element: int = 2) -> int:
    """Bytes one token adds to the KV cache: a key and a value of head_dim numbers per key/value
    head and layer, 2 * num_layers * num_kv_heads * head_dim * bytes_per_element."""
    for name, value in (("num_layers", num_layers), ("num_kv_heads", num_kv_heads),
                        ("head_dim", head_dim), ("bytes_per_element", bytes_per_element)):
        _positive_int(name, value)
    return 2 * num_layers * num_kv_heads * head_dim * bytes_per_element


@dataclass(frozen=True)
class ModelConfig:
    """The attention shape of a published model and where the numbers come from."""

    name: str
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    context: int
    num_params: float  # parameters, for the weights' bytes
    window: int | None = None  # sliding window (the cache never holds more tokens)
    source: str = ""

    def bytes_per_token(self, num_kv_heads: int | None = None, bytes_per_element: int = 2) -> int:
        """KV-cache bytes per token (optionally with another number of key/value heads)."""
        return kv_cache_bytes_per_token(self.num_layers, num_kv_heads or self.num_kv_heads,
                                        self.head_dim, bytes_per_element)


def kv_cache_bytes(config: ModelConfig, context: int, batch: int = 1,
                   num_kv_heads: int | None = None, window: int | None = None,
                   bytes_per_element: int = 2) -> int:
    """Bytes of the KV cache of `batch` sequences of `context` tokens; a window (the config's
    unless given) caps the tokens held."""
    _positive_int("context", context)
    _positive_int("batch", batch)
    window = window if window is not None else config.window
    held = context if window is None else min(context, window)
    return batch * held * config.bytes_per_token(num_kv_heads, bytes_per_element)


PUBLISHED_CONFIGS: dict[str, ModelConfig] = {
    c.name: c
    for c in (
        ModelConfig("GPT-2 small", 12, 12, 12, 64, 1024, 124e6,
                    source="Radford et al. 2019; Hugging Face gpt2 config.json: n_layer 12, "
                    "n_head 12, n_embd 768, n_ctx 1024"),
        ModelConfig("Llama-2-7B", 32, 32, 32, 128, 4096, 6.7e9,
                    source="Touvron et al. 2023 (arXiv:2307.09288); meta-llama/Llama-2-7b-hf "
                    "config.json: 32 layers, 32 heads, 32 key/value heads, hidden 4096"),
        ModelConfig("Llama-2-70B", 80, 64, 8, 128, 4096, 69e9,
                    source="Touvron et al. 2023 (GQA for 34B and 70B); meta-llama/Llama-2-70b-hf "
                    "config.json: 80 layers, 64 heads, 8 key/value heads, hidden 8192"),
        ModelConfig("Llama-3-8B", 32, 32, 8, 128, 8192, 8.0e9,
                    source="meta-llama/Meta-Llama-3-8B model card and config.json: 32 layers, "
                    "32 heads, 8 key/value heads, hidden 4096, 8192 positions"),
        ModelConfig("Mistral-7B v0.1", 32, 32, 8, 128, 8192, 7.3e9, window=4096,
                    source="Jiang et al. 2023 (arXiv:2310.06825), Table 1: n_layers 32, n_heads "
                    "32, n_kv_heads 8, head_dim 128, window_size 4096, context_len 8192 (v0.1; "
                    "v0.2 and later drop the window and read 32k tokens)"),
    )
}


# ---------------------------------------------------------------------------------------------
# A TinyGPT with grouped-query attention, sliding windows, sinks and a rolling KV cache
# ---------------------------------------------------------------------------------------------


class GQAGPTBlock(nn.Module):
    """TinyGPT's pre-norm block with `GroupedQueryAttention` (the same parameter names)."""

    def __init__(self, num_hiddens: int, num_heads: int, num_kv_heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(num_hiddens)
        self.attention = GroupedQueryAttention(num_hiddens, num_heads, num_kv_heads, dropout)
        self.ln2 = nn.LayerNorm(num_hiddens)
        self.ffn = PositionWiseFFN(4 * num_hiddens, num_hiddens)
        self.dropout = nn.Dropout(dropout)

    def forward(self, X: torch.Tensor, positions: torch.Tensor, window: int | None,
                num_sinks: int, cache: dict | None = None) -> torch.Tensor:
        """X (B, n, d) at `positions` (n,) -> (B, n, d); reads and updates `cache` in place."""
        att = self.attention
        q, k, v = att.project(self.ln1(X))  # (B, h, n, p), (B, g, n, p), (B, g, n, p)
        if cache is not None and cache["size"] is None:  # a growing cache: append, then read
            k_all, v_all, key_pos = _cache_append(cache, k, v, positions)
        elif cache is not None and cache["k"] is not None:  # rolling: the buffer and the new
            k_all = torch.cat((cache["k"], k), dim=2)  # (B, g, slots + n, p)
            v_all = torch.cat((cache["v"], v), dim=2)
            key_pos = torch.cat((cache["pos"], positions))  # (slots + n,)
        else:
            k_all, v_all, key_pos = k, v, positions
        mask = visible_keys(positions, key_pos, window, num_sinks)  # (n, keys)
        X = X + self.dropout(att.attend(q, k_all, v_all, mask))
        if cache is not None and cache["size"] is not None:
            _cache_roll(cache, k, v, positions, window, num_sinks)
        return X + self.dropout(self.ffn(self.ln2(X)))


def kv_cache_allocated_bytes(cache: list[dict]) -> int:
    """Bytes of memory a KV cache's keys and values occupy, whole buffers included: a growing
    GQAGPT cache is a view of a buffer allocated once for max_len positions."""
    storages = {}
    for c in cache:
        for t in (c["k"], c["v"]):
            if t is not None:
                storage = t.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def _cache_append(cache: dict, k, v, positions):
    """Write new keys/values (B, g, n, p) after the cached ones, in a buffer allocated once for
    `capacity` positions (no copy of the old entries per step); return views of all of them."""
    B, g, n, p = k.shape
    if cache["k"] is None:
        cache["k_buf"] = k.new_empty(B, g, cache["capacity"], p)
        cache["v_buf"] = v.new_empty(B, g, cache["capacity"], p)
        cache["length"] = 0
    start, end = cache["length"], cache["length"] + n
    if end > cache["capacity"]:
        raise ValueError(f"the cache holds {cache['capacity']} positions; {end} requested")
    cache["k_buf"][:, :, start:end] = k
    cache["v_buf"][:, :, start:end] = v
    cache["length"] = end
    cache["k"] = cache["k_buf"][:, :, :end]  # (B, g, end, p) views: their bytes are the cache's
    cache["v"] = cache["v_buf"][:, :, :end]
    cache["pos"] = torch.arange(end, device=k.device)
    return cache["k"], cache["v"], cache["pos"]


def _cache_roll(cache: dict, k, v, positions, window: int, num_sinks: int) -> None:
    """Write new keys/values into their rolling slots: sinks keep the first num_sinks slots,
    position j >= num_sinks goes to slot num_sinks + (j - num_sinks) % window."""
    size = cache["size"]
    if cache["k"] is None:  # first call: a fixed buffer of `size` slots, all empty
        B, g, _, p = k.shape
        cache["k"] = k.new_zeros(B, g, size, p)
        cache["v"] = v.new_zeros(B, g, size, p)
        cache["pos"] = torch.full((size,), -1, dtype=torch.long, device=k.device)
    last = int(positions[-1])
    # only the positions a later query can still see survive: the sinks and the last `window`
    keep = (positions < num_sinks) | (last - positions < window)  # (n,)
    j = positions[keep]
    slots = torch.where(j < num_sinks, j, num_sinks + (j - num_sinks) % window)  # (kept,)
    cache["k"][:, :, slots] = k[:, :, keep]
    cache["v"][:, :, slots] = v[:, :, keep]
    cache["pos"][slots] = j


class GQAGPT(nn.Module):
    """TinyGPT (token + learned position embeddings, pre-norm blocks, final norm, linear head)
    with grouped-query attention. `window` (None = full causal) and `num_sinks` set which keys
    each query sees; change them on a model to evaluate the same weights with another mask.

    forward(tokens, cache) decodes with a KV cache from `new_cache()`: a growing one, or with
    `rolling=True` a fixed buffer of window + num_sinks slots (Mistral's rolling buffer) that
    gives the same outputs as recomputing with `sliding_window_mask`.
    """

    def __init__(self, vocab_size: int, num_hiddens: int, num_heads: int, num_kv_heads: int,
                 num_layers: int, max_len: int, dropout: float = 0.0,
                 window: int | None = None, num_sinks: int = 0):
        super().__init__()
        _positive_int("num_layers", num_layers)
        _positive_int("max_len", max_len)
        self.vocab_size, self.max_len = vocab_size, max_len
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.window, self.num_sinks = window, num_sinks
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_embedding = LearnedPositionalEmbedding(num_hiddens, dropout, max_len)
        self.blks = nn.ModuleList(
            GQAGPTBlock(num_hiddens, num_heads, num_kv_heads, dropout) for _ in range(num_layers)
        )
        self.ln_final = nn.LayerNorm(num_hiddens)
        self.head = nn.Linear(num_hiddens, vocab_size)
        with torch.no_grad():  # materialise the lazy feed-forward layers
            self(torch.zeros(1, 1, dtype=torch.long))

    def _check_mask_settings(self) -> None:
        if self.window is not None:
            _positive_int("window", self.window)
        _positive_int("num_sinks", self.num_sinks, allow_zero=True)

    def new_cache(self, rolling: bool = False) -> list[dict]:
        """An empty KV cache for inference, one dict per block ("k", "v": (B, g, slots, p);
        "pos": (slots,) the position in each slot, -1 if empty). Growing: written in place into a
        buffer of max_len positions. rolling=True: window + num_sinks slots (needs a window)."""
        self._check_mask_settings()
        if rolling and self.window is None:
            raise ValueError("a rolling cache needs a window: set model.window first")
        size = self.window + self.num_sinks if rolling else None
        return [{"k": None, "v": None, "pos": None, "size": size, "capacity": self.max_len}
                for _ in self.blks]

    def forward(self, tokens: torch.Tensor, cache: list[dict] | None = None) -> torch.Tensor:
        """tokens (batch, n) -> logits (batch, n, vocab_size); with a cache, the positions after
        the cached ones."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
            raise ValueError(f"tokens must be a (batch, n) tensor of ids, got {shape}")
        self._check_mask_settings()
        start = 0
        if cache is not None and cache[0]["pos"] is not None:
            start = int(cache[0]["pos"].max()) + 1
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)  # (n,)
        X = self.pos_embedding(self.embedding(tokens), offset=start)  # (B, n, d)
        for i, blk in enumerate(self.blks):
            X = blk(X, positions, self.window, self.num_sinks, None if cache is None else cache[i])
        return self.head(self.ln_final(X))  # (B, n, vocab_size)

    @property
    def attention_weights(self) -> list[torch.Tensor | None]:
        """Per block, the last call's weights (batch, heads, n_q, n_k)."""
        return [blk.attention.attention_weights for blk in self.blks]


def from_tinygpt(model: TinyGPT, num_kv_heads: int) -> GQAGPT:
    """A GQAGPT with `model`'s weights and `num_kv_heads` key/value heads per layer: each group
    of num_heads / num_kv_heads consecutive heads shares the mean of their key and value
    projections (Ainslie et al. 2023). num_kv_heads = num_heads gives the same function."""
    if not isinstance(model, TinyGPT):
        raise TypeError(f"model must be a TinyGPT, got {type(model).__name__}")
    att = model.blks[0].attention
    h, d = att.num_heads, att.num_hiddens
    _positive_int("num_kv_heads", num_kv_heads)
    if h % num_kv_heads:
        raise ValueError(f"the model's num_heads ({h}) must be a multiple of num_kv_heads "
                         f"({num_kv_heads})")
    gqa = GQAGPT(model.vocab_size, d, h, num_kv_heads, len(model.blks), model.max_len,
                 dropout=model.pos_embedding.dropout.p)
    p, r = d // h, h // num_kv_heads
    state = dict(model.state_dict())
    for i in range(len(model.blks)):
        for name in ("W_k", "W_v"):
            key = f"blks.{i}.attention.{name}.weight"
            W = state[key]  # (h * p, d): head j owns rows j*p .. (j+1)*p - 1
            state[key] = W.reshape(num_kv_heads, r, p, d).mean(dim=1).reshape(-1, d)  # (g*p, d)
    gqa.load_state_dict(state)
    return gqa.train(model.training)


# ---------------------------------------------------------------------------------------------
# FlexAttention: masks and biases as code
# ---------------------------------------------------------------------------------------------


def causal_mask_mod(b, h, q_idx, kv_idx):
    """mask_mod of causal attention: query q_idx may see key kv_idx <= q_idx."""
    return q_idx >= kv_idx


def sliding_window_mask_mod(window: int, num_sinks: int = 0, offset: int = 0):
    """mask_mod of `sliding_window_mask`; `offset` = the first query's position (decoding)."""
    _positive_int("window", window)
    _positive_int("num_sinks", num_sinks, allow_zero=True)
    _positive_int("offset", offset, allow_zero=True)

    def mask_mod(b, h, q_idx, kv_idx):
        p = q_idx + offset
        return (kv_idx <= p) & ((p - kv_idx < window) | (kv_idx < num_sinks))

    return mask_mod


def document_mask_mod(doc_ids: torch.Tensor):
    """mask_mod of `document_mask`: causal and within the query's document."""
    if not isinstance(doc_ids, torch.Tensor) or doc_ids.dim() != 1:
        raise ValueError(f"doc_ids must be a 1-D tensor, got {getattr(doc_ids, 'shape', doc_ids)}")

    last = doc_ids.numel() - 1

    def mask_mod(b, h, q_idx, kv_idx):
        # Some PyTorch versions also ask about positions past the end, padded up to a block
        # size (and dropped afterwards): clamp them so that the lookup stays in bounds.
        q_doc, k_doc = doc_ids[q_idx.clamp(max=last)], doc_ids[kv_idx.clamp(max=last)]
        return (q_idx >= kv_idx) & (q_doc == k_doc)

    return mask_mod


def alibi_slopes(num_heads: int) -> torch.Tensor:
    """ALiBi's head slopes (Press et al. 2022) for a power-of-two num_heads: 2^(-8 i / h),
    i = 1..h."""
    _positive_int("num_heads", num_heads)
    if num_heads & (num_heads - 1):
        raise ValueError(f"num_heads must be a power of two for these slopes, got {num_heads}")
    return 2.0 ** (-8.0 * torch.arange(1, num_heads + 1, dtype=torch.float64) / num_heads)


def alibi_bias(num_heads: int, n_q: int, n_k: int) -> torch.Tensor:
    """ALiBi as a dense bias (num_heads, n_q, n_k): -slope_h * (q - k) for the last n_q of n_k
    positions (add it to the scores with a causal mask)."""
    slopes = alibi_slopes(num_heads).float()  # (h,)
    q = torch.arange(n_k - n_q, n_k)[:, None]  # (n_q, 1)
    k = torch.arange(n_k)[None, :]  # (1, n_k)
    return -slopes[:, None, None] * (q - k)  # (h, n_q, n_k)


def alibi_score_mod(num_heads: int):
    """score_mod adding ALiBi's bias -slope_h * (q_idx - kv_idx) to every score."""
    slopes = alibi_slopes(num_heads).float()  # (h,)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score - slopes[h] * (q_idx - kv_idx)

    return score_mod


def softcap_score_mod(cap: float):
    """score_mod of logit soft-capping (Gemma 2): cap * tanh(score / cap)."""
    if not isinstance(cap, (int, float)) or isinstance(cap, bool) or cap <= 0:
        raise ValueError(f"cap must be a number > 0, got {cap!r}")

    def score_mod(score, b, h, q_idx, kv_idx):
        return cap * torch.tanh(score / cap)

    return score_mod


def mask_from_mod(mask_mod, n_q: int, n_k: int) -> torch.Tensor:
    """The dense bool (n_q, n_k) mask a mask_mod describes, evaluated on index grids."""
    q = torch.arange(n_q)[:, None]  # (n_q, 1)
    k = torch.arange(n_k)[None, :]  # (1, n_k)
    zero = torch.zeros((), dtype=torch.long)
    out = mask_mod(zero, zero, q, k)
    if not isinstance(out, torch.Tensor) or out.dtype != torch.bool:
        raise TypeError(f"mask_mod must return a bool tensor, got {type(out).__name__}"
                        + (f" of dtype {out.dtype}" if isinstance(out, torch.Tensor) else ""))
    return out.expand(n_q, n_k)


def flex_attention_eager(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask_mod=None,
                         score_mod=None, enable_gqa: bool = False) -> torch.Tensor:
    """torch.nn.attention.flex_attention without torch.compile: q (B, h, n_q, p), k and v
    (B, g, n_k, p) -> (B, h, n_q, p).

    Eagerly, FlexAttention builds the whole (n_q, n_k) score matrix (it warns about that; the
    warning is silenced here, and only it). Compiled, the same mask_mod and score_mod become one
    fused kernel that skips the masked blocks.
    """
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    block_mask = None
    if mask_mod is not None:
        block_mask = create_block_mask(mask_mod, None, None, q.shape[-2], k.shape[-2],
                                       device=q.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flex_attention called without torch\.compile")
        return flex_attention(q, k, v, score_mod=score_mod, block_mask=block_mask,
                              enable_gqa=enable_gqa)


# ---------------------------------------------------------------------------------------------
# Prefill and decode: work and traffic per token
# ---------------------------------------------------------------------------------------------


def decode_cost(config: ModelConfig, context: int, batch: int = 1, num_kv_heads: int | None = None,
                window: int | None = None, bytes_per_element: int = 2) -> dict[str, float]:
    """One decoding step of `batch` sequences that have `context` tokens: floating-point
    operations and bytes read from memory per generated token, and their ratio (FLOP/byte).

    Per token: 2 FLOPs per parameter (a multiply and an add) plus, per layer and query head,
    2 * 2 * held * head_dim for the scores and the weighted sum over the `held` cached keys.
    Per step: every weight is read once (shared by the batch), and each sequence reads its cache.
    """
    _positive_int("context", context)
    _positive_int("batch", batch)
    window = window if window is not None else config.window
    held = context if window is None else min(context, window)
    attn_flops = 4 * config.num_layers * config.num_heads * config.head_dim * held
    flops = 2 * config.num_params + attn_flops
    weight_bytes = config.num_params * bytes_per_element
    cache_bytes = kv_cache_bytes(config, context, 1, num_kv_heads, window, bytes_per_element)
    bytes_per_token = weight_bytes / batch + cache_bytes
    return {"flops": flops, "bytes": bytes_per_token, "intensity": flops / bytes_per_token}


def prefill_cost(config: ModelConfig, prompt: int, batch: int = 1, bytes_per_element: int = 2
                 ) -> dict[str, float]:
    """Processing a prompt of `prompt` tokens at once, per prompt token: FLOPs (the causal scores
    average prompt / 2 keys per query), bytes (weights read once per batch of prompts, the cache
    written once) and their ratio."""
    _positive_int("prompt", prompt)
    _positive_int("batch", batch)
    attn_flops = 4 * config.num_layers * config.num_heads * config.head_dim * prompt / 2
    flops = 2 * config.num_params + attn_flops
    weight_bytes = config.num_params * bytes_per_element
    bytes_per_token = weight_bytes / (batch * prompt) + config.bytes_per_token(
        bytes_per_element=bytes_per_element)
    return {"flops": flops, "bytes": bytes_per_token, "intensity": flops / bytes_per_token}


# ---------------------------------------------------------------------------------------------
# Experiments on chapter 12's model: held-out losses, windows, grouped-query models, decode speed
# ---------------------------------------------------------------------------------------------


# One file per model (each under 2 MB), each with the metadata of the whole run.
GQA_ASSETS = {2: "ch14_gqa_kv2.pt", 1: "ch14_gqa_kv1.pt"}  # {num_kv_heads: file in assets/}
# The uptraining after mean-pooling: AdamW on chapter 12's training text, whole model.



# The uptraining after mean-pooling: AdamW on chapter 12's training text, whole model.
UPTRAIN = {"steps": 200, "batch_size": 16, "lr": 5e-4, "seed": 0}  # ~5 % of ch12's budget



def heldout_sequences(ids: torch.Tensor, length: int, num: int | None = None) -> torch.Tensor:
    """Disjoint windows of `length` ids from a 1-D id stream, in order: (num, length)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.numel() < length:
        raise ValueError(f"ids must be a 1-D tensor of at least length={length} ids, got "
                         f"{getattr(ids, 'shape', type(ids).__name__)}")
    n = ids.numel() // length
    seqs = ids[: n * length].reshape(n, length)  # (n, length)
    return seqs if num is None else seqs[:num]



@torch.no_grad()
def next_char_bits(model: torch.nn.Module, seqs: torch.Tensor, first: int = 0,
                   stride: int = 1) -> float:
    """Mean bits per character of predicting seqs[:, t + 1] from seqs[:, :t + 1], over the
    predictions t = first, first + stride, ... seqs: (B, T + 1)."""
    was_training = model.training
    model.eval()
    logits = model(seqs[:, :-1])  # (B, T, V)
    model.train(was_training)
    nats = F.cross_entropy(logits.transpose(1, 2).double(), seqs[:, 1:], reduction="none")
    return nats[:, first::stride].mean().item() / math.log(2)  # (B, T) -> scalar



@torch.no_grad()
def recomputed_window_bits(model: torch.nn.Module, seqs: torch.Tensor, window: int,
                           stride: int = 1) -> float:
    """Bits per character when each prediction t = window, window + stride, ... recomputes the
    model on the last `window` characters alone (at positions 0..window-1 again); the same
    predictions as `next_char_bits(model, seqs, window, stride)`."""
    x, y = seqs[:, :-1], seqs[:, 1:]  # (B, T)
    wins = x.unfold(1, window, 1)[:, 1::stride]  # (B, nw, window): ends at t = window, ...
    targets = y[:, window::stride]  # (B, nw)
    B, nw, _ = wins.shape
    logits = model(wins.reshape(B * nw, window))[:, -1].reshape(B, nw, -1)  # (B, nw, V)
    nats = F.cross_entropy(logits.transpose(1, 2).double(), targets, reduction="none")
    return nats.mean().item() / math.log(2)



def uptrain(model: GQAGPT, train_ids: torch.Tensor, steps: int, batch_size: int = 32,
            lr: float = 5e-4, seed: int = 0,
            log: Callable[[int, float], None] | None = None) -> list[float]:
    """AdamW on the next-character loss of random windows of `train_ids` (constant rate,
    gradients clipped at 1); the loss per step. Seeds PyTorch's global generator too (dropout
    draws from it), so a run repeats exactly whatever ran before it."""
    from helpers.text import random_windows
    from helpers.training import train_adamw

    torch.manual_seed(seed)

    def loss_fn(gen: torch.Generator) -> torch.Tensor:
        batch = random_windows(train_ids, batch_size, model.max_len + 1, gen)  # (B, T + 1)
        logits = model(batch[:, :-1])  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    return train_adamw(model, loss_fn, steps, lambda step: lr, seed, log)



def load_gqa_models(base: TinyGPT) -> tuple[dict[int, GQAGPT], dict]:
    """The shipped uptrained models (tools/train_ch14.py): {num_kv_heads: GQAGPT} built from
    `base` (chapter 12's model) and loaded with the stored weights, and the stored metadata."""
    models, meta = {}, {}
    for kv, name in GQA_ASSETS.items():
        with (resources.files("helpers") / "assets" / name).open("rb") as f:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
        model = from_tinygpt(base, kv)
        model.load_state_dict({k: v.float() for k, v in ckpt.pop("state").items()})
        models[kv] = model.eval()
        meta = ckpt  # the run's metadata, the same in every file
    return models, meta



@torch.no_grad()
def decode_tokens_per_second(model: torch.nn.Module, batch: int, prompt_len: int = 32,
                             new_tokens: int = 32, repeats: int = 3) -> float:
    """Generated tokens per second (all sequences together) of greedy decoding with the KV
    cache, after a prompt of `prompt_len` tokens; the best of `repeats` runs."""
    model.eval()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(0, model.vocab_size, (batch, prompt_len), generator=gen)
    best = math.inf
    for _ in range(repeats):
        cache = model.new_cache()
        logits = model(prompt, cache)[:, -1]  # (B, V)
        start = time.perf_counter()
        for _ in range(new_tokens):
            nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
            logits = model(nxt, cache)[:, -1]
        best = min(best, time.perf_counter() - start)
    return batch * new_tokens / best
