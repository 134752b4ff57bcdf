"""Order and position (chapter 8): two small attention-only models that need positions, the
sinusoid table, the offset task, and the training loop they share.

The encodings themselves are in `helpers.transformer` (`PositionalEncoding`,
`LearnedPositionalEmbedding`, `apply_rotary`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from helpers.attention import MultiHeadAttention, masked_softmax
from helpers.transformer import LearnedPositionalEmbedding, PositionalEncoding, apply_rotary

__all__ = [
    "POSITIONS",
    "OffsetAttention",
    "PositionQueryReverser",
    "fit",
    "offset_task",
    "sinusoid_table",
]


POSITIONS = ("none", "learned", "sinusoidal")



def sinusoid_table(num_positions: int, num_hiddens: int) -> torch.Tensor:
    """The sinusoidal table P (num_positions, num_hiddens) of `PositionalEncoding`."""
    return PositionalEncoding(num_hiddens, 0.0, max_len=num_positions).P[0]  # (T, d)



def _positions_module(kind: str, num_hiddens: int, max_len: int) -> nn.Module | None:
    """The module that adds positions of `kind` ("none", "learned", "sinusoidal") to X."""
    if kind not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {kind!r}")
    if kind == "learned":
        return LearnedPositionalEmbedding(num_hiddens, 0.0, max_len)
    if kind == "sinusoidal":
        return PositionalEncoding(num_hiddens, 0.0, max_len)
    return None



class PositionQueryReverser(nn.Module):
    """Attention only: one learned query per output position attends over the source tokens.

    The keys and values are the source embeddings, plus positions unless `positions="none"`;
    every output token is predicted at once from its query's context. src: (B, T) -> (B, T, vocab).
    """

    def __init__(
        self,
        vocab_size: int,
        num_hiddens: int = 32,
        num_heads: int = 1,
        positions: str = "sinusoidal",
        max_len: int = 16,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        # std 1/sqrt(d), as the original Transformer's embeddings start: after the forward pass
        # multiplies them by sqrt(d), token and position vectors have comparable sizes, and
        # training need not first amplify the positions (chapter 9 looks at this closely).
        nn.init.normal_(self.embedding.weight, std=num_hiddens**-0.5)
        self.positions = _positions_module(positions, num_hiddens, max_len)
        self.queries = nn.Parameter(torch.randn(max_len, num_hiddens) / math.sqrt(num_hiddens))
        self.attention = MultiHeadAttention(num_hiddens, num_heads)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.num_hiddens = num_hiddens

    def forward(self, src: torch.Tensor) -> torch.Tensor:
        """src (B, T) tokens -> logits (B, T, vocab_size), one row per output position."""
        if src.dim() != 2:
            raise ValueError(f"src must be (batch, T) tokens, got shape {tuple(src.shape)}")
        B, T = src.shape
        if T > self.queries.shape[0]:
            raise ValueError(f"src has {T} positions but the model has {self.queries.shape[0]}")
        X = self.embedding(src) * math.sqrt(self.num_hiddens)  # (B, T, d)
        if self.positions is not None:
            X = self.positions(X)  # (B, T, d) + positions
        Q = self.queries[:T].expand(B, T, -1)  # (B, T, d): output position t asks
        context = self.attention(Q, X, X)  # (B, T, d)
        return self.dense(context)  # (B, T, vocab)



def offset_task(
    num_examples: int, length: int, num_symbols: int = 10, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens X (N, length) and targets Y (N, length): Y[:, t] = X[:, t - 1], Y[:, 0] = -100
    (ignored by the loss)."""
    if length < 2 or num_examples < 1 or num_symbols < 1:
        raise ValueError(
            f"need length >= 2 and positive num_examples, num_symbols; got length={length}, "
            f"num_examples={num_examples}, num_symbols={num_symbols}"
        )
    gen = torch.Generator().manual_seed(seed)
    X = torch.randint(0, num_symbols, (num_examples, length), generator=gen)  # (N, T)
    Y = torch.full_like(X, -100)
    Y[:, 1:] = X[:, :-1]
    return X, Y



class OffsetAttention(nn.Module):
    """One causal single-head self-attention layer with positions of kind "learned", "sinusoidal"
    (added to the inputs) or "rope" (queries and keys rotated). X (B, T) -> logits (B, T, vocab)."""

    def __init__(
        self, vocab_size: int, num_hiddens: int = 32, positions: str = "rope", max_len: int = 64
    ):
        super().__init__()
        if positions not in ("learned", "sinusoidal", "rope"):
            raise ValueError(
                f"positions must be 'learned', 'sinusoidal' or 'rope', got {positions!r}"
            )
        self.kind = positions
        self.embedding = nn.Embedding(vocab_size, num_hiddens)
        self.positions = (
            None if positions == "rope" else _positions_module(positions, num_hiddens, max_len)
        )
        # biases let a query or key carry a part that does not depend on the token
        self.W_q = nn.Linear(num_hiddens, num_hiddens)
        self.W_k = nn.Linear(num_hiddens, num_hiddens)
        self.W_v = nn.Linear(num_hiddens, num_hiddens)
        self.dense = nn.Linear(num_hiddens, vocab_size)
        self.num_hiddens = num_hiddens
        self.attention_weights: torch.Tensor | None = None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (B, T) -> logits (B, T, vocab_size); position t sees positions 0..t."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (batch, T), got shape {tuple(tokens.shape)}")
        B, T = tokens.shape
        X = self.embedding(tokens)  # (B, T, d)
        if self.positions is not None:
            X = self.positions(X)
        Q, K, V = self.W_q(X), self.W_k(X), self.W_v(X)  # (B, T, d) each
        if self.kind == "rope":
            Q, K = apply_rotary(Q), apply_rotary(K)
        scores = Q @ K.transpose(1, 2) / math.sqrt(self.num_hiddens)  # (B,T,d) @ (B,d,T) -> (B,T,T)
        causal = torch.arange(1, T + 1, device=tokens.device).repeat(B, 1)  # (B, T): row t sees t+1
        self.attention_weights = masked_softmax(scores, causal)  # (B, T, T)
        return self.dense(self.attention_weights @ V)  # (B, T, T) @ (B, T, d) -> (B, T, vocab)



def fit(
    model: nn.Module,
    X: torch.Tensor,
    Y: torch.Tensor,
    steps: int = 300,
    lr: float = 0.01,
    batch_size: int = 256,
    seed: int = 0,
) -> list[float]:
    """Train `model` (X (N, T) -> logits (N, T, vocab)) on targets Y (N, T) with Adam and
    cross-entropy (targets -100 ignored); minibatches drawn with `seed`. Returns the losses."""
    if X.shape != Y.shape:
        raise ValueError(
            f"X and Y must have the same shape, got {tuple(X.shape)}, {tuple(Y.shape)}"
        )
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100)
    losses = []
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch_size,), generator=gen)
        logits = model(X[idx])  # (b, T, vocab)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), Y[idx].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return losses
