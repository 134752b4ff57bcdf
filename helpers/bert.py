"""BERT's encoder and its masked-language-model head (d2l 1.0 names, sub-modules and signatures),
built from the book's own `TransformerEncoderBlock`, and BERT's masking rule.

A state dict saved from d2l's `BERTEncoder` or `MaskLM` loads into these classes. Differences from
d2l: a sequence longer than `max_len` raises a ValueError naming the lengths (d2l fails with a
broadcasting error), and `attention_weights` keeps every block's per-head weights.
"""

from __future__ import annotations

import torch
from torch import nn

from helpers.transformer import TransformerEncoderBlock

__all__ = ["BERTEncoder", "CharBERT", "MaskLM", "mask_tokens"]


class BERTEncoder(nn.Module):
    """Token + segment + learned position embeddings, then `num_blks` post-norm encoder blocks
    with bidirectional self-attention (d2l 1.0's BERTEncoder)."""

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        num_blks: int,
        dropout: float,
        max_len: int = 1000,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_len = max_len
        self.token_embedding = nn.Embedding(vocab_size, num_hiddens)
        self.segment_embedding = nn.Embedding(2, num_hiddens)
        self.blks = nn.Sequential()
        for i in range(num_blks):
            self.blks.add_module(
                f"{i}",
                TransformerEncoderBlock(num_hiddens, ffn_num_hiddens, num_heads, dropout, True),
            )
        # learned positions, one vector per position up to max_len (as d2l: a bare parameter)
        self.pos_embedding = nn.Parameter(torch.randn(1, max_len, num_hiddens))

    def forward(
        self, tokens: torch.Tensor, segments: torch.Tensor, valid_lens: torch.Tensor | None
    ) -> torch.Tensor:
        """tokens, segments (batch, T) ids, valid_lens None or (batch,) -> (batch, T, hiddens)."""
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2:
            shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
            raise ValueError(f"tokens must be a (batch, T) tensor of ids, got {shape}")
        if not isinstance(segments, torch.Tensor) or segments.shape != tokens.shape:
            shape = tuple(segments.shape) if isinstance(segments, torch.Tensor) else type(segments)
            raise ValueError(f"segments must have the shape of tokens {tuple(tokens.shape)}, "
                             f"got {shape}")
        if tokens.shape[1] > self.max_len:
            raise ValueError(
                f"a sequence of {tokens.shape[1]} tokens (tokens shape {tuple(tokens.shape)}) is "
                f"longer than max_len={self.max_len}: BERT has learned positions only up to "
                "max_len; cut the text into windows"
            )
        X = self.token_embedding(tokens) + self.segment_embedding(segments)  # (B, T, d)
        X = X + self.pos_embedding[:, : X.shape[1], :]  # (B, T, d) + (1, T, d)
        for blk in self.blks:
            X = blk(X, valid_lens)  # (B, T, d)
        return X

    @property
    def attention_weights(self) -> list[torch.Tensor | None]:
        """Per block, the last call's weights (batch, heads, T, T)."""
        return [blk.attention.head_weights for blk in self.blks]


class MaskLM(nn.Module):
    """BERT's masked-language-model head (d2l 1.0): an MLP applied at the predicted positions."""

    def __init__(self, vocab_size: int, num_hiddens: int, **kwargs):
        super().__init__(**kwargs)
        self.mlp = nn.Sequential(
            nn.LazyLinear(num_hiddens), nn.ReLU(), nn.LayerNorm(num_hiddens),
            nn.LazyLinear(vocab_size),
        )

    def forward(self, X: torch.Tensor, pred_positions: torch.Tensor) -> torch.Tensor:
        """X (batch, T, hiddens), pred_positions (batch, P) -> logits (batch, P, vocab_size)."""
        if not isinstance(X, torch.Tensor) or X.dim() != 3:
            shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X)
            raise ValueError(f"X must be (batch, T, num_hiddens), got {shape}")
        if not isinstance(pred_positions, torch.Tensor) or pred_positions.dim() != 2 \
                or pred_positions.shape[0] != X.shape[0]:
            shape = (tuple(pred_positions.shape) if isinstance(pred_positions, torch.Tensor)
                     else type(pred_positions))
            raise ValueError(f"pred_positions must be (batch={X.shape[0]}, P), got {shape}")
        batch, num_pred = pred_positions.shape
        batch_idx = torch.arange(batch, device=X.device).repeat_interleave(num_pred)  # (B*P,)
        masked_X = X[batch_idx, pred_positions.reshape(-1)]  # (B*P, d)
        return self.mlp(masked_X.reshape(batch, num_pred, -1))  # (B, P, V)


class CharBERT(nn.Module):
    """A BERT for one segment of characters: `encoder` (BERTEncoder) and `mlm` (MaskLM), trained on
    the masked-language-model task alone (no next-sentence task, as RoBERTa later found it
    unnecessary)."""

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int,
        ffn_num_hiddens: int,
        num_heads: int,
        num_blks: int,
        dropout: float = 0.0,
        max_len: int = 1000,
    ):
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.encoder = BERTEncoder(vocab_size, num_hiddens, ffn_num_hiddens, num_heads, num_blks,
                                   dropout, max_len)
        self.mlm = MaskLM(vocab_size, num_hiddens)
        with torch.no_grad():  # materialise the lazy layers
            self(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long))

    def forward(self, tokens: torch.Tensor, pred_positions: torch.Tensor) -> torch.Tensor:
        """tokens (batch, T), pred_positions (batch, P) -> logits (batch, P, vocab_size)."""
        X = self.encoder(tokens, torch.zeros_like(tokens), None)  # (B, T, d)
        return self.mlm(X, pred_positions)

    @property
    def attention_weights(self) -> list[torch.Tensor | None]:
        """Per block, the last call's weights (batch, heads, T, T)."""
        return self.encoder.attention_weights


def mask_tokens(
    tokens: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    num_special: int = 3,
    prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """BERT's rule: pick round(prob * T) positions per sequence (at least 1); of those, 80 %
    become `mask_id`, 10 % a random ordinary token (ids num_special .. vocab_size - 1), 10 % stay.

    tokens (batch, T) -> (inputs (batch, T), pred_positions (batch, P), labels (batch, P)),
    labels being the original tokens at pred_positions. `tokens` is not modified.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.dim() != 2 or tokens.shape[1] < 1:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens)
        raise ValueError(f"tokens must be a (batch, T) tensor of ids, got {shape}")
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob!r}")
    if not 0 <= num_special < vocab_size:
        raise ValueError(f"need 0 <= num_special < vocab_size, got {num_special}, {vocab_size}")
    batch, T = tokens.shape
    num_pred = max(1, round(prob * T))
    order = torch.rand(batch, T, generator=generator).argsort(dim=1)  # (B, T) random permutation
    pred_positions = order[:, :num_pred].sort(dim=1).values.to(tokens.device)  # (B, P)
    labels = tokens.gather(1, pred_positions)  # (B, P)
    u = torch.rand(batch, num_pred, generator=generator).to(tokens.device)  # (B, P)
    random_ids = torch.randint(num_special, vocab_size, (batch, num_pred),
                               generator=generator).to(tokens.device)  # (B, P)
    new = torch.where(u < 0.8, torch.full_like(labels, mask_id),
                      torch.where(u < 0.9, random_ids, labels))  # (B, P)
    inputs = tokens.clone().scatter_(1, pred_positions, new)  # (B, T)
    return inputs, pred_positions, labels
