"""The Transformer from the book's own parts (d2l 1.0 names and sub-layer names).

Blocks are built on `helpers.attention.MultiHeadAttention`; everything is batch-first:
X (batch, T, num_hiddens). Post-norm (the 2017 paper, d2l) is the default; `norm_first=True`
gives the pre-norm block that GPT-2 and most later models use, with the same parameters.

Two deliberate differences from d2l 1.0, both so that decoding is right in every mode:
- the decoder block applies the causal mask whenever it sees more than one new position, in
  training *and* in evaluation (d2l masks only in training mode, so an evaluation-mode forward
  pass over a whole target sequence lets positions see the future);
- positional encodings take an `offset`, so a decoder fed one token at a time gives token t the
  encoding of position t (d2l's step-by-step decoder adds position 0's encoding at every step).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from helpers.attention import MultiHeadAttention

if TYPE_CHECKING:
    from helpers import seq2seq as s2s

__all__ = [
    "AddNorm",
    "LearnedPositionalEmbedding",
    "PositionWiseFFN",
    "PositionalEncoding",
    "TinyGPT",
    "TinyGPTBlock",
    "TransformerDecoder",
    "TransformerDecoderBlock",
    "TransformerEncoder",
    "TransformerEncoderBlock",
    "apply_rotary",
    "collect_attention",
    "encoder_attention_at_init",
    "generate",
    "kv_cache_nbytes",
    "make_transformer_seq2seq",
    "next_token_probs",
]


def _check_x(X: torch.Tensor, name: str = "X", width: int | None = None) -> None:
    """Raise a clear error unless X is a (batch, T, width) tensor."""
    if not isinstance(X, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if X.dim() != 3:
        raise ValueError(f"{name} must be 3-D (batch, T, num_hiddens), got shape {tuple(X.shape)}")
    if width is not None and X.shape[-1] != width:
        raise ValueError(
            f"{name} must have {width} features in its last axis, got shape {tuple(X.shape)}"
        )


# ---------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------


def _check_sizes(**sizes) -> None:
    """A ValueError naming the first size that is not a positive int (bool is not an int here)."""
    for name, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


class PositionalEncoding(nn.Module):
    """Sinusoidal positional encoding (d2l 1.0): X + P[:, offset : offset + T], then dropout.

    P (1, max_len, num_hiddens): P[0, t, 2i] = sin(t / 10000^(2i/d)), P[0, t, 2i+1] = cos(...).
    """

    def __init__(self, num_hiddens: int, dropout: float, max_len: int = 1000):
        super().__init__()
        _check_sizes(num_hiddens=num_hiddens, max_len=max_len)
        if num_hiddens % 2:
            raise ValueError(f"num_hiddens must be even (sin/cos pairs), got {num_hiddens}")
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len
        P = torch.zeros((1, max_len, num_hiddens))
        t = torch.arange(max_len, dtype=torch.float32).reshape(-1, 1)  # (max_len, 1)
        freq = torch.pow(10000, torch.arange(0, num_hiddens, 2, dtype=torch.float32) / num_hiddens)
        angles = t / freq  # (max_len, 1) / (d/2,) -> (max_len, d/2)
        P[:, :, 0::2] = torch.sin(angles)
        P[:, :, 1::2] = torch.cos(angles)
        self.register_buffer("P", P, persistent=False)

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """X (batch, T, num_hiddens) -> X + P[:, offset:offset+T] (dropout applied)."""
        _check_x(X, width=self.P.shape[-1])
        if offset < 0 or offset + X.shape[1] > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + X.shape[1] - 1} exceed max_len={self.max_len} "
                f"(X has shape {tuple(X.shape)}); build the encoding with a larger max_len"
            )
        X = X + self.P[:, offset : offset + X.shape[1], :].to(X.device)
        return self.dropout(X)


class LearnedPositionalEmbedding(nn.Module):
    """Learned absolute positions (BERT, GPT-2): X + E[offset : offset + T], then dropout."""

    def __init__(self, num_hiddens: int, dropout: float, max_len: int = 1000):
        super().__init__()
        _check_sizes(num_hiddens=num_hiddens, max_len=max_len)
        self.embedding = nn.Embedding(max_len, num_hiddens)
        self.dropout = nn.Dropout(dropout)
        self.max_len = max_len

    def forward(self, X: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """X (batch, T, num_hiddens) -> X + E[offset:offset+T] (dropout applied)."""
        _check_x(X, width=self.embedding.embedding_dim)
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise TypeError(f"offset must be an int, got {type(offset).__name__}")
        if offset < 0 or offset + X.shape[1] > self.max_len:
            raise ValueError(
                f"positions {offset}..{offset + X.shape[1] - 1} exceed max_len={self.max_len} "
                f"(X has shape {tuple(X.shape)})"
            )
        positions = torch.arange(offset, offset + X.shape[1], device=X.device)  # (T,)
        return self.dropout(X + self.embedding(positions))


def apply_rotary(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    """Rotary position embedding (RoPE): rotate each pair (x[2i], x[2i+1]) of x (..., T, d) by the
    angle position * base^(-2i/d). positions: (T,) (default 0..T-1).

    Scores between a rotated query at position m and a rotated key at position n depend on m - n
    only, since R(m)ᵀ R(n) = R(n - m).
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2 or x.shape[-1] % 2:
        raise ValueError(f"x must be (..., T, d) with an even d, got shape {tuple(x.shape)}")
    T, d = x.shape[-2], x.shape[-1]
    if positions is None:
        positions = torch.arange(T, device=x.device)
    positions = torch.as_tensor(positions, device=x.device)
    if positions.shape != (T,):
        raise ValueError(
            f"positions must have shape ({T},) for x of shape {tuple(x.shape)}, "
            f"got {tuple(positions.shape)}"
        )
    inv_freq = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.double()[:, None] * inv_freq  # (T, 1) * (d/2,) -> (T, d/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]  # (..., T, d/2) each
    out = torch.empty_like(x)
    out[..., 0::2] = x_even * cos - x_odd * sin
    out[..., 1::2] = x_even * sin + x_odd * cos
    return out


# ---------------------------------------------------------------------------------------------
# Sub-layers and blocks
# ---------------------------------------------------------------------------------------------


class PositionWiseFFN(nn.Module):
    """The position-wise feed-forward network (d2l 1.0): dense2(relu(dense1(X))), per position."""

    def __init__(self, ffn_num_hiddens: int, ffn_num_outputs: int):
        super().__init__()
        self.dense1 = nn.LazyLinear(ffn_num_hiddens)
        self.relu = nn.ReLU()
        self.dense2 = nn.LazyLinear(ffn_num_outputs)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (batch, T, d) -> (batch, T, ffn_num_outputs)."""
        return self.dense2(self.relu(self.dense1(X)))


class AddNorm(nn.Module):
    """Residual connection then layer norm (d2l 1.0): ln(dropout(Y) + X)."""

    def __init__(self, norm_shape, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.ln = nn.LayerNorm(norm_shape)

    def forward(self, X: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
        """X, Y (batch, T, d) -> ln(dropout(Y) + X) (batch, T, d)."""
        if X.shape != Y.shape:
            raise ValueError(f"X and Y must have the same shape, got {tuple(X.shape)} and "
                             f"{tuple(Y.shape)}")
        return self.ln(self.dropout(Y) + X)


def _residual(addnorm: AddNorm, X: torch.Tensor, sublayer, norm_first: bool) -> torch.Tensor:
    """Post-norm: ln(X + dropout(sublayer(X))); pre-norm: X + dropout(sublayer(ln(X)))."""
    if norm_first:
        return X + addnorm.dropout(sublayer(addnorm.ln(X)))
    return addnorm(X, sublayer(X))


class TransformerEncoderBlock(nn.Module):
    """Self-attention and a position-wise FFN, each wrapped in a residual + layer norm (d2l 1.0).

    norm_first=False: post-norm, Y = ln(X + attention(X)); True: pre-norm, Y = X + attention(ln(X)).
    """

    def __init__(
        self,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        dropout: float,
        use_bias: bool = False,
        norm_first: bool = False,
    ):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.norm_first = norm_first
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm2 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None = None) -> torch.Tensor:
        """X (batch, T, num_hiddens), valid_lens None or (batch,) -> (batch, T, num_hiddens)."""
        _check_x(X, width=self.num_hiddens)
        Y = _residual(
            self.addnorm1, X, lambda Z: self.attention(Z, Z, Z, valid_lens), self.norm_first
        )
        return _residual(self.addnorm2, Y, self.ffn, self.norm_first)


class TransformerDecoderBlock(nn.Module):
    """Causal self-attention, cross-attention to the encoder, FFN; each with residual + norm.

    The i-th block of a decoder (d2l 1.0). `state` = [enc_outputs, enc_valid_lens, cache] where
    cache[i] holds the block's *inputs* at all earlier positions (d2l's layout). This is not a
    key/value cache: each decoding step projects every stored input to keys and values again, so
    a step costs work in proportion to all positions so far (chapter 10's `TinyGPT` keeps the
    projected keys and values instead). New position t sees stored positions and new ones up to t.
    """

    def __init__(
        self,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        dropout: float,
        i: int,
        norm_first: bool = False,
    ):
        super().__init__()
        self.i = i
        self.num_hiddens = num_hiddens
        self.norm_first = norm_first
        self.attention1 = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.addnorm1 = AddNorm(num_hiddens, dropout)
        self.attention2 = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.addnorm2 = AddNorm(num_hiddens, dropout)
        self.ffn = PositionWiseFFN(ffn_num_hiddens, num_hiddens)
        self.addnorm3 = AddNorm(num_hiddens, dropout)

    def forward(self, X: torch.Tensor, state: list):
        """X (batch, T_new, num_hiddens) -> (output (batch, T_new, num_hiddens), state)."""
        _check_x(X, width=self.num_hiddens)
        enc_outputs, enc_valid_lens = state[0], state[1]
        past = state[2][self.i]  # (batch, T_past, num_hiddens) or None
        # The cache holds the block's past inputs, which self-attention re-projects to keys and
        # values at every step: the inputs themselves (post-norm) or their
        # normalised form (pre-norm).
        new = self.addnorm1.ln(X) if self.norm_first else X
        key_values = new if past is None else torch.cat((past, new), dim=1)  # (B, T_all, d)
        state[2][self.i] = key_values
        batch, t_new, _ = X.shape
        t_past = key_values.shape[1] - t_new
        # query t (0-based among the new ones) sees keys 0 .. t_past + t: lengths t_past + 1 ...
        dec_valid_lens = torch.arange(t_past + 1, t_past + t_new + 1, device=X.device).repeat(
            batch, 1
        )  # (B, T_new)
        if self.norm_first:
            Y = X + self.addnorm1.dropout(
                self.attention1(new, key_values, key_values, dec_valid_lens)
            )
        else:
            Y = self.addnorm1(X, self.attention1(X, key_values, key_values, dec_valid_lens))
        Z = _residual(
            self.addnorm2,
            Y,
            lambda U: self.attention2(U, enc_outputs, enc_outputs, enc_valid_lens),
            self.norm_first,
        )
        return _residual(self.addnorm3, Z, self.ffn, self.norm_first), state


# ---------------------------------------------------------------------------------------------
# Encoder, decoder and the encoder-decoder for the reversal task
# ---------------------------------------------------------------------------------------------


class TransformerEncoder(nn.Module):
    """Embedding * sqrt(d) + positional encoding + num_blks encoder blocks (d2l 1.0).

    forward returns (outputs, None), so it plugs into `helpers.seq2seq.EncoderDecoder`.
    """

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        num_blks: int,
        dropout: float,
        use_bias: bool = False,
        norm_first: bool = False,
        max_len: int = 1000,
    ):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout, max_len)
        self.blks = nn.Sequential(
            *(
                TransformerEncoderBlock(
                    num_hiddens, ffn_num_hiddens, num_heads, dropout, use_bias, norm_first
                )
                for _ in range(num_blks)
            )
        )
        # Pre-norm leaves the residual stream un-normalised: one final norm (as GPT-2 does).
        self.ln_final = nn.LayerNorm(num_hiddens) if norm_first else nn.Identity()
        self.attention_weights: list[torch.Tensor | None] = [None] * num_blks

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor | None = None):
        """X (batch, T) tokens -> ((batch, T, num_hiddens), None)."""
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens))
        for i, blk in enumerate(self.blks):
            X = blk(X, valid_lens)
            self.attention_weights[i] = blk.attention.head_weights  # (B, heads, T, T)
        return self.ln_final(X), None


class TransformerDecoder(nn.Module):
    """Embedding + positions + num_blks decoder blocks + a dense layer to the vocabulary (d2l 1.0).

    Decodes a whole target (teacher forcing) or one token at a time with the same `state`, which
    keeps each block's past inputs (re-projected at every step: not a key/value cache).
    `attention_weights` is the last block's cross-attention averaged over heads,
    (batch, T_new, T_src); `block_weights` keeps every block's self- and cross-attention per head.
    """

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        num_blks: int,
        dropout: float,
        norm_first: bool = False,
        max_len: int = 1000,
    ):
        super().__init__()
        self.num_hiddens = num_hiddens
        self.num_blks = num_blks
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_encoding = PositionalEncoding(num_hiddens, dropout, max_len)
        self.blks = nn.Sequential(
            *(
                TransformerDecoderBlock(
                    num_hiddens, ffn_num_hiddens, num_heads, dropout, i, norm_first
                )
                for i in range(num_blks)
            )
        )
        self.ln_final = nn.LayerNorm(num_hiddens) if norm_first else nn.Identity()
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.block_weights: list[dict[str, torch.Tensor]] = []

    def init_state(self, enc_outputs, enc_state=None, enc_valid_lens=None) -> list:
        """[enc_outputs, enc_valid_lens, a list of each block's past inputs (None until the first
        step; not keys and values)]; `enc_state` is unused (no RNN)."""
        return [enc_outputs, enc_valid_lens, [None] * self.num_blks]

    def forward(self, X: torch.Tensor, state: list):
        """X (batch, T_new) tokens -> (logits (batch, T_new, vocab_size), state)."""
        past = state[2][0]
        offset = 0 if past is None else past.shape[1]
        X = self.pos_encoding(self.embedding(X) * math.sqrt(self.num_hiddens), offset)
        self.block_weights = []
        for blk in self.blks:
            X, state = blk(X, state)
            self.block_weights.append(
                {"self": blk.attention1.head_weights, "cross": blk.attention2.head_weights}
            )
        return self.dense(self.ln_final(X)), state

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """The last block's cross-attention averaged over heads: (batch, T_new, T_src)."""
        if not self.block_weights:
            return None
        return self.block_weights[-1]["cross"].mean(dim=1)


def make_transformer_seq2seq(
    vocab_size: int,
    num_hiddens: int = 32,
    ffn_num_hiddens: int = 64,
    num_heads: int = 4,
    num_blks: int = 2,
    dropout: float = 0.0,
    norm_first: bool = False,
    max_len: int = 64,
):
    """An encoder-decoder Transformer in the book's `EncoderDecoder`, ready for
    `helpers.seq2seq.train_seq2seq` and `predict_greedy`."""
    from helpers.seq2seq import BOS, NUM_SPECIAL, EncoderDecoder

    model = EncoderDecoder(
        TransformerEncoder(
            vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout,
            norm_first=norm_first, max_len=max_len,
        ),
        TransformerDecoder(
            vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks, dropout,
            norm_first=norm_first, max_len=max_len,
        ),
    )
    with torch.no_grad():  # one tiny call materialises the lazy layers
        model(torch.full((1, 1), NUM_SPECIAL), torch.ones(1, dtype=torch.long),
              torch.full((1, 1), BOS))
    return model


# ---------------------------------------------------------------------------------------------
# A decoder-only model (chapter 10): TinyGPT, its KV cache, and generation
# ---------------------------------------------------------------------------------------------


class TinyGPTBlock(nn.Module):
    """A pre-norm decoder-only block: X + attention(ln1(X)) with a causal mask, then
    X + ffn(ln2(X)). With a `cache` (a dict) it keeps every head's projected keys and values, so a
    later call with only the new positions attends to all earlier ones without recomputing them.
    """

    def __init__(self, num_hiddens: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.ln1 = nn.LayerNorm(num_hiddens)
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout)
        self.ln2 = nn.LayerNorm(num_hiddens)
        self.ffn = PositionWiseFFN(4 * num_hiddens, num_hiddens)
        self.dropout = nn.Dropout(dropout)
        self.num_hiddens = num_hiddens

    def forward(self, X: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """X (batch, T_new, num_hiddens) -> (batch, T_new, num_hiddens); fills `cache` in place."""
        _check_x(X, width=self.num_hiddens)
        att = self.attention
        H = self.ln1(X)
        q = att.transpose_qkv(att.W_q(H))  # (B*h, T_new, p)
        k = att.transpose_qkv(att.W_k(H))  # (B*h, T_new, p)
        v = att.transpose_qkv(att.W_v(H))  # (B*h, T_new, p)
        if cache is not None:
            if cache.get("k") is not None:
                k = torch.cat((cache["k"], k), dim=1)  # (B*h, T_past + T_new, p)
                v = torch.cat((cache["v"], v), dim=1)
            cache["k"], cache["v"] = k, v
        t_new, t_all = q.shape[1], k.shape[1]
        # new query t (0-based) sits at position t_all - t_new + t and sees keys 0 .. that position
        lens = torch.arange(t_all - t_new + 1, t_all + 1, device=X.device).repeat(q.shape[0], 1)
        out = att.attention(q, k, v, lens)  # (B*h, T_new, p)
        X = X + self.dropout(att.W_o(att.transpose_output(out)))  # (B, T_new, num_hiddens)
        return X + self.dropout(self.ffn(self.ln2(X)))


class TinyGPT(nn.Module):
    """A decoder-only Transformer: token + learned position embeddings, `num_layers` causal
    pre-norm blocks, a final layer norm and a linear map to the vocabulary. GPT-2's skeleton,
    but with ReLU (not GELU) in the feed-forward network, an output layer untied from the token
    embedding, and PyTorch's default initialisation (GPT-2: std 0.02, residual projections
    scaled by 1/sqrt(2 * num_layers))."""

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int,
        num_heads: int,
        num_layers: int,
        max_len: int,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.pos_embedding = LearnedPositionalEmbedding(num_hiddens, dropout, max_len)
        self.blks = nn.ModuleList(
            TinyGPTBlock(num_hiddens, num_heads, dropout) for _ in range(num_layers)
        )
        self.ln_final = nn.LayerNorm(num_hiddens)
        self.head = nn.Linear(num_hiddens, vocab_size)
        with torch.no_grad():  # materialise the lazy layers
            self(torch.zeros(1, 1, dtype=torch.long))

    def new_cache(self) -> list[dict]:
        """An empty KV cache: one dict per block, filled by `forward(tokens, cache)`."""
        return [{"k": None, "v": None} for _ in self.blks]

    def forward(self, tokens: torch.Tensor, cache: list[dict] | None = None) -> torch.Tensor:
        """tokens (batch, T_new) -> logits (batch, T_new, vocab_size).

        With a cache, `tokens` are the positions after the cached ones.
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
            raise ValueError(f"tokens must be a (batch, T) tensor of ids, got {shape}")
        past = 0 if cache is None or cache[0]["k"] is None else cache[0]["k"].shape[1]
        X = self.pos_embedding(self.embedding(tokens), offset=past)  # (B, T_new, d)
        for i, blk in enumerate(self.blks):
            X = blk(X, None if cache is None else cache[i])
        return self.head(self.ln_final(X))  # (B, T_new, vocab_size)

    @property
    def attention_weights(self) -> list[torch.Tensor | None]:
        """Per block, the last call's weights (batch, heads, T_new, T_all)."""
        return [blk.attention.head_weights for blk in self.blks]


def kv_cache_nbytes(cache: list[dict]) -> int:
    """Bytes held by a TinyGPT KV cache (keys and values of every block)."""
    return sum(t.nelement() * t.element_size() for c in cache for t in (c["k"], c["v"])
               if t is not None)


def next_token_probs(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None
) -> torch.Tensor:
    """Sampling distribution from logits (..., vocab): softmax(logits / temperature) restricted to
    the top_k largest logits (renormalised). temperature 0 puts all mass on the argmax."""
    if not isinstance(logits, torch.Tensor) or not logits.is_floating_point() or logits.dim() < 1:
        kind = f"{logits.dtype} tensor of shape {tuple(logits.shape)}" \
            if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise TypeError(f"logits must be a floating-point tensor (..., vocab), got {kind}")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool) \
            or not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
    vocab = logits.shape[-1]
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool)
                              or not 1 <= top_k):
        raise ValueError(f"top_k must be None or an int >= 1, got {top_k!r}")
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), vocab).to(logits.dtype)
    scaled = logits / temperature
    if top_k is not None and top_k < vocab:
        kth = torch.topk(scaled, top_k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    return torch.softmax(scaled, dim=-1)


@torch.no_grad()
def generate(
    model: TinyGPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    use_cache: bool = True,
    temperature: float = 0.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The prompt (T,) or (batch, T) followed by `max_new_tokens` generated token ids.

    Greedy at temperature 0; otherwise samples from `next_token_probs` with `generator`.
    With use_cache the prompt is run once and each new token costs one position's work;
    without it every step re-runs the whole sequence.
    """
    if not isinstance(prompt, torch.Tensor) or prompt.dim() not in (1, 2) or prompt.shape[-1] < 1:
        shape = tuple(prompt.shape) if isinstance(prompt, torch.Tensor) else type(prompt)
        raise ValueError(f"prompt must be a non-empty (T,) or (batch, T) tensor, got {shape}")
    if prompt.is_floating_point() or prompt.is_complex() or prompt.dtype == torch.bool:
        raise TypeError(f"prompt must hold integer token ids, got dtype {prompt.dtype}")
    vocab_size = getattr(model, "vocab_size", None)
    if prompt.min() < 0 or (vocab_size is not None and prompt.max() >= vocab_size):
        raise ValueError(
            f"prompt ids must lie in 0..{vocab_size - 1 if vocab_size else 'vocab - 1'} (the "
            f"model's vocabulary), got ids from {prompt.min().item()} to {prompt.max().item()}"
        )
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if prompt.shape[-1] + max_new_tokens > model.max_len:
        raise ValueError(
            f"prompt length {prompt.shape[-1]} + max_new_tokens {max_new_tokens} exceeds the "
            f"model's max_len={model.max_len}"
        )
    next_token_probs(torch.zeros(1, 2), temperature, top_k)  # validates temperature and top_k
    model.eval()
    tokens = prompt[None] if prompt.dim() == 1 else prompt  # (B, T)
    cache = model.new_cache() if use_cache else None
    logits = model(tokens, cache)[:, -1]  # (B, vocab)
    for _ in range(max_new_tokens):
        probs = next_token_probs(logits, temperature, top_k)  # (B, vocab)
        if temperature == 0:
            nxt = logits.argmax(-1, keepdim=True)  # (B, 1)
        else:
            nxt = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        tokens = torch.cat((tokens, nxt), dim=1)
        if use_cache:
            logits = model(nxt, cache)[:, -1]  # one new position
        else:
            logits = model(tokens)[:, -1]  # the whole sequence again
    return tokens[0] if prompt.dim() == 1 else tokens


@torch.no_grad()
def collect_attention(
    model: s2s.EncoderDecoder, src: torch.Tensor, src_len: torch.Tensor, dec_in: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Every block's per-head weights for a batch, decoder fed `dec_in` (B, T_out) at once.

    src (B, T_src), src_len (B,) -> {"encoder self": (B, L, heads, T_src, T_src),
    "decoder self": (B, L, heads, T_out, T_out), "cross": (B, L, heads, T_out, T_src)}.
    Fed [BOS, its own greedy prediction], the decoder's causal mask gives the weights of greedy
    decoding exactly.
    """
    if src.dim() != 2 or dec_in.dim() != 2 or src.shape[0] != dec_in.shape[0]:
        raise ValueError(
            f"need src (B, T_src) and dec_in (B, T_out) with the same B, got "
            f"{tuple(src.shape)} and {tuple(dec_in.shape)}"
        )
    model.eval()
    enc_outputs, enc_state = model.encoder(src, src_len)
    state = model.decoder.init_state(enc_outputs, enc_state, src_len)
    model.decoder(dec_in, state)
    blocks = model.decoder.block_weights
    return {
        "encoder self": torch.stack(list(model.encoder.attention_weights), dim=1),
        "decoder self": torch.stack([b["self"] for b in blocks], dim=1),
        "cross": torch.stack([b["cross"] for b in blocks], dim=1),
    }



@torch.no_grad()
def encoder_attention_at_init(
    model: nn.Module, src: torch.Tensor, src_len: torch.Tensor
) -> dict[str, float]:
    """How peaked the encoder's self-attention is: mean entropy -sum w log w (nats) over every
    block, head, example and real query; the mean ln n of uniform weights over the same valid
    keys; and the mean logit spread (largest minus smallest score over a query's valid keys).

    src (B, T) tokens, src_len (B,). Runs the encoder once in eval mode.
    """
    scores_seen: list[torch.Tensor] = []

    def keep_scores(module, args, output):  # args: queries, keys, values, valid_lens
        scores_seen.append(module.scores(args[0], args[1]))  # (B*h, T, T)

    handles = [blk.attention.attention.register_forward_hook(keep_scores)
               for blk in model.encoder.blks]
    model.eval()
    try:
        model.encoder(src, src_len)
    finally:
        for h in handles:
            h.remove()
    T = src.shape[1]
    heads = model.encoder.blks[0].attention.num_heads
    valid = torch.arange(T)[None, :] < src_len[:, None]  # (B, T): real positions
    keys_ok = valid.repeat_interleave(heads, dim=0)[:, None, :]  # (B*h, 1, T)
    rows = valid.repeat_interleave(heads, dim=0)  # (B*h, T): real queries
    ent, ln_n, spread = [], [], []
    for s in scores_seen:
        w = torch.softmax(s.masked_fill(~keys_ok, -math.inf), dim=-1)  # (B*h, T, T)
        e = -(w * torch.log(w.clamp_min(1e-30))).sum(-1)  # (B*h, T)
        gap = (s.masked_fill(~keys_ok, -math.inf).amax(-1)
               - s.masked_fill(~keys_ok, math.inf).amin(-1))  # (B*h, T)
        ent.append(e[rows])
        spread.append(gap[rows])
        ln_n.append(torch.log(keys_ok.sum(-1).expand(-1, T).float())[rows])
    return {"entropy": torch.cat(ent).mean().item(), "ln_n": torch.cat(ln_n).mean().item(),
            "spread": torch.cat(spread).mean().item()}
