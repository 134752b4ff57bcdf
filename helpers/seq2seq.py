"""A small RNN encoder-decoder with and without Bahdanau attention, for chapter 7.

Everything is batch-first: token batches are (B, T) integer tensors, padded with `PAD` on the right.
The synthetic task (reverse or copy a random token sequence) is generated here, so nothing is
downloaded and the right alignment between source and target positions is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from helpers.attention import AdditiveAttention

__all__ = [
    "BOS",
    "EOS",
    "NUM_SPECIAL",
    "PAD",
    "EncoderDecoder",
    "Seq2SeqAttentionDecoder",
    "Seq2SeqDecoder",
    "Seq2SeqEncoder",
    "SeqTask",
    "accuracy_by_length",
    "decoder_input",
    "make_seq2seq",
    "make_seq_task",
    "predict_greedy",
    "sequence_accuracy",
    "to_text",
    "train_seq2seq",
]

PAD, BOS, EOS = 0, 1, 2
NUM_SPECIAL = 3  # symbols are the tokens NUM_SPECIAL, ..., NUM_SPECIAL + num_symbols - 1


# ---------------------------------------------------------------------------------------------
# The synthetic task
# ---------------------------------------------------------------------------------------------


@dataclass
class SeqTask:
    """A batch of source/target pairs, right-padded with PAD.

    src: (N, max_len) tokens, src_len: (N,) lengths; tgt: (N, max_len + 1) = answer then EOS,
    tgt_len: (N,) lengths including the EOS.
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt: torch.Tensor
    tgt_len: torch.Tensor

    def __len__(self) -> int:
        return self.src.shape[0]

    def to(self, device: torch.device | str) -> SeqTask:
        """The same task on another device."""
        return SeqTask(*(t.to(device) for t in (self.src, self.src_len, self.tgt, self.tgt_len)))


def make_seq_task(
    num_examples: int,
    min_len: int = 3,
    max_len: int = 10,
    num_symbols: int = 10,
    task: str = "reverse",
    seed: int = 0,
    exclude: SeqTask | None = None,
) -> SeqTask:
    """`num_examples` random sequences with lengths uniform in [min_len, max_len] and their answers.

    task "reverse": the target is the source backwards (source position i aligns with target
    position len - 1 - i); "copy": the target is the source. Sequences that occur in `exclude`
    (e.g. the training set) are skipped, so a test set built that way is truly held out.
    """
    if task not in ("reverse", "copy"):
        raise ValueError(f"task must be 'reverse' or 'copy', got {task!r}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if num_examples < 1 or num_symbols < 1:
        raise ValueError(
            f"num_examples and num_symbols must be positive, got {num_examples}, {num_symbols}"
        )
    seen = set()
    if exclude is not None:
        seen = {tuple(s[:n].tolist()) for s, n in zip(exclude.src, exclude.src_len, strict=True)}
    gen = torch.Generator().manual_seed(seed)
    src = torch.full((num_examples, max_len), PAD, dtype=torch.long)
    tgt = torch.full((num_examples, max_len + 1), PAD, dtype=torch.long)
    lens = torch.empty(num_examples, dtype=torch.long)
    i = tries = 0
    while i < num_examples:
        tries += 1
        if tries > 100 * num_examples:
            raise ValueError("too few distinct sequences left: lower num_examples or widen lengths")
        n = int(torch.randint(min_len, max_len + 1, (1,), generator=gen))
        seq = torch.randint(NUM_SPECIAL, NUM_SPECIAL + num_symbols, (n,), generator=gen)
        if tuple(seq.tolist()) in seen:
            continue
        src[i, :n] = seq
        tgt[i, :n] = seq.flip(0) if task == "reverse" else seq
        tgt[i, n] = EOS
        lens[i] = n
        i += 1
    return SeqTask(src, lens, tgt, lens + 1)


def to_text(tokens) -> str:
    """Tokens (a list or 1-D tensor) as letters: symbols a, b, c, ...; EOS as '.'; PAD and BOS
    dropped."""
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.tolist()
    return "".join("." if t == EOS else chr(ord("a") + t - NUM_SPECIAL) for t in tokens if t >= EOS)


# ---------------------------------------------------------------------------------------------
# The models
# ---------------------------------------------------------------------------------------------


class Seq2SeqEncoder(nn.Module):
    """Embedding + GRU encoder (d2l's `Seq2SeqEncoder`, batch-first, padding-aware).

    bidirectional=True runs num_hiddens / 2 units in each direction (as Bahdanau et al. did), so
    each output h_i = [forward h_i; backward h_i] still has num_hiddens features.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        num_hiddens: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ):
        super().__init__()
        if bidirectional and num_hiddens % 2:
            raise ValueError(
                f"a bidirectional encoder needs an even num_hiddens, got {num_hiddens}"
            )
        self.bidirectional = bidirectional
        self.embedding = nn.Embedding(vocab_size, embed_size)
        size = num_hiddens // 2 if bidirectional else num_hiddens
        self.rnn = nn.GRU(
            embed_size,
            size,
            num_layers,
            dropout=dropout,
            batch_first=True,
            bidirectional=bidirectional,
        )

    def forward(self, X: torch.Tensor, valid_lens: torch.Tensor):
        """X (B, T) tokens, valid_lens (B,) -> outputs (B, T, H), state (num_layers, B, H).

        The state is the one after each sequence's last real token (padding is skipped).
        """
        emb = self.embedding(X)  # (B, T, E)
        packed = pack_padded_sequence(emb, valid_lens.cpu(), batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=X.shape[1])
        if self.bidirectional:  # (2L, B, H/2) -> (L, B, H): join the two directions per layer
            state = state.reshape(-1, 2, *state.shape[1:]).permute(0, 2, 1, 3).flatten(2)
        return outputs, state  # (B, T, H), (L, B, H)


class Seq2SeqDecoder(nn.Module):
    """Decoder without attention: one fixed context (the encoder's final state) for every step.

    Step t reads [embedding(y_{t-1}); c] and predicts y_t from [s_t; c], where c = h_T of the
    encoder's top layer (d2l's `Seq2SeqDecoder`, plus c in the output layer).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        num_hiddens: int,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.GRU(
            embed_size + num_hiddens, num_hiddens, num_layers, dropout=dropout, batch_first=True
        )
        self.dense = nn.Linear(2 * num_hiddens, vocab_size)

    def init_state(
        self, enc_outputs: torch.Tensor, enc_state: torch.Tensor, enc_valid_lens: torch.Tensor
    ):
        """Decoder state: (context (B, H), hidden (L, B, H))."""
        return enc_state[-1], enc_state

    def forward(self, X: torch.Tensor, state):
        """X (B, T) tokens -> logits (B, T, vocab), new state. All T steps run in one GRU call."""
        context, hidden = state
        emb = self.embedding(X)  # (B, T, E)
        ctx = context[:, None, :].expand(-1, X.shape[1], -1)  # (B, T, H)
        outputs, hidden = self.rnn(torch.cat([emb, ctx], dim=-1), hidden)  # (B, T, H)
        logits = self.dense(torch.cat([outputs, ctx], dim=-1))  # (B, T, vocab)
        return logits, (context, hidden)

    @property
    def attention_weights(self) -> None:
        """No attention here: always None."""
        return None


class Seq2SeqAttentionDecoder(nn.Module):
    """Decoder with Bahdanau (additive) attention (d2l's `Seq2SeqAttentionDecoder`).

    At step t the query is the previous top-layer state s_{t-1}; keys and values are the encoder
    outputs h_1..h_T. Weights alpha_t = softmax(a(s_{t-1}, h_i)) over the valid source positions,
    context c_t = sum_i alpha_t[i] h_i; the GRU reads [embedding(y_{t-1}); c_t] and y_t is predicted
    from the fused state [s_t; c_t].
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        num_hiddens: int,
        num_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.attention = AdditiveAttention(num_hiddens, dropout)
        self.embedding = nn.Embedding(vocab_size, embed_size)
        self.rnn = nn.GRU(
            embed_size + num_hiddens, num_hiddens, num_layers, dropout=dropout, batch_first=True
        )
        self.dense = nn.Linear(2 * num_hiddens, vocab_size)
        self._attention_weights: list[torch.Tensor] = []

    def init_state(
        self, enc_outputs: torch.Tensor, enc_state: torch.Tensor, enc_valid_lens: torch.Tensor
    ):
        """Decoder state: (encoder outputs (B, T_src, H), hidden (L, B, H), valid lengths (B,))."""
        return enc_outputs, enc_state, enc_valid_lens

    def forward(self, X: torch.Tensor, state):
        """X (B, T) tokens -> logits (B, T, vocab), new state; one attention step per token."""
        enc_outputs, hidden, enc_valid_lens = state
        emb = self.embedding(X)  # (B, T, E)
        outputs, self._attention_weights = [], []
        for t in range(X.shape[1]):
            query = hidden[-1][:, None, :]  # (B, 1, H): s_{t-1}
            context = self.attention(query, enc_outputs, enc_outputs, enc_valid_lens)  # (B, 1, H)
            x = torch.cat([emb[:, t : t + 1], context], dim=-1)  # (B, 1, E + H)
            out, hidden = self.rnn(x, hidden)  # (B, 1, H), (L, B, H)
            outputs.append(torch.cat([out, context], dim=-1))  # (B, 1, 2H): [s_t; c_t]
            self._attention_weights.append(self.attention.attention_weights)  # (B, 1, T_src)
        logits = self.dense(torch.cat(outputs, dim=1))  # (B, T, vocab)
        return logits, (enc_outputs, hidden, enc_valid_lens)

    @property
    def attention_weights(self) -> torch.Tensor | None:
        """Weights of the last forward call, (B, T_tgt, T_src): target steps are rows (None
        before the first call)."""
        return torch.cat(self._attention_weights, dim=1) if self._attention_weights else None


class EncoderDecoder(nn.Module):
    """Encoder + decoder (d2l's `EncoderDecoder`)."""

    def __init__(self, encoder: Seq2SeqEncoder, decoder: nn.Module):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, dec_X: torch.Tensor):
        """src (B, T_src), src_len (B,), dec_X (B, T) -> logits (B, T, vocab) (teacher forcing)."""
        enc_outputs, enc_state = self.encoder(src, src_len)
        state = self.decoder.init_state(enc_outputs, enc_state, src_len)
        return self.decoder(dec_X, state)[0]


def make_seq2seq(
    vocab_size: int,
    embed_size: int = 32,
    num_hiddens: int = 64,
    attention: bool = True,
    num_layers: int = 1,
    bidirectional: bool = False,
) -> EncoderDecoder:
    """An encoder-decoder of the given size, with or without attention."""
    decoder_cls = Seq2SeqAttentionDecoder if attention else Seq2SeqDecoder
    model = EncoderDecoder(
        Seq2SeqEncoder(
            vocab_size, embed_size, num_hiddens, num_layers, bidirectional=bidirectional
        ),
        decoder_cls(vocab_size, embed_size, num_hiddens, num_layers),
    )
    with torch.no_grad():  # one tiny call materialises the lazy layers of the attention
        one = torch.full((1, 1), NUM_SPECIAL)
        model(one, torch.ones(1, dtype=torch.long), torch.full((1, 1), BOS))
    return model


# ---------------------------------------------------------------------------------------------
# Training and decoding
# ---------------------------------------------------------------------------------------------


def decoder_input(tgt: torch.Tensor) -> torch.Tensor:
    """Teacher forcing: (B, T) targets -> (B, T) inputs [BOS, y_1, ..., y_{T-1}]."""
    bos = torch.full_like(tgt[:, :1], BOS)
    return torch.cat([bos, tgt[:, :-1]], dim=1)


def train_seq2seq(
    model: EncoderDecoder,
    data: SeqTask,
    num_epochs: int = 10,
    lr: float = 0.01,
    batch_size: int = 64,
    seed: int = 0,
    animator=None,
    grad_clip: float = 1.0,
    lr_min: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    schedule_epochs: int | None = None,
) -> list[float]:
    """Train with teacher forcing, Adam and masked cross-entropy; return the mean loss per epoch.

    With `lr_min` the learning rate follows a cosine from `lr` down to `lr_min` over the run, or
    over `schedule_epochs` epochs when given (a run stopped early on a longer schedule: two models
    trained with the same `schedule_epochs` see the same learning rate at every step).

    The model and data may live on any device (the data is moved to the model's). `animator`
    (a `helpers.plotting.Animator`) receives the running loss every few batches. `on_epoch(epoch,
    mean_loss)`, if given, is called after each epoch (epochs counted from 1), e.g. to measure
    held-out accuracy as training goes; the model is put back in training mode afterwards.
    """
    device = next(model.parameters()).device
    data = data.to(device)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss(ignore_index=PAD)
    n = len(data)
    num_batches = (n + batch_size - 1) // batch_size
    schedule = None
    if lr_min is not None:
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=(schedule_epochs or num_epochs) * num_batches, eta_min=lr_min
        )
    losses = []
    for epoch in range(num_epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = 0.0
        for b in range(num_batches):
            idx = perm[b * batch_size : (b + 1) * batch_size]
            src, src_len, tgt = data.src[idx], data.src_len[idx], data.tgt[idx]
            t_max = int(data.tgt_len[idx].max())  # trim padding columns
            tgt = tgt[:, :t_max]
            logits = model(src[:, : int(src_len.max())], src_len, decoder_input(tgt))
            loss = loss_fn(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
            if schedule is not None:
                schedule.step()
            total += loss.item()
            if animator is not None:
                animator.add(epoch + (b + 1) / num_batches, loss.item())
        losses.append(total / num_batches)
        if on_epoch is not None:
            on_epoch(epoch + 1, losses[-1])
    if animator is not None:
        animator.show()
    return losses


@torch.no_grad()
def predict_greedy(
    model: EncoderDecoder, src: torch.Tensor, src_len: torch.Tensor, max_steps: int | None = None
):
    """Greedy decoding of a batch; each sequence stops at its first EOS.

    src (B, T_src), src_len (B,) -> (list of B token lists without the EOS,
    attention weights (B, steps, T_src) or None for a model without attention).
    Steps after a sequence's EOS get zero attention weights.
    """
    model.eval()
    device = next(model.parameters()).device
    src, src_len = src.to(device), src_len.to(device)
    src = src[:, : int(src_len.max())]
    if max_steps is None:
        max_steps = src.shape[1] + 1
    enc_outputs, enc_state = model.encoder(src, src_len)
    state = model.decoder.init_state(enc_outputs, enc_state, src_len)
    B = src.shape[0]
    token = torch.full((B, 1), BOS, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, weights = [], []
    for _ in range(max_steps):
        logits, state = model.decoder(token, state)  # (B, 1, vocab)
        token = logits.argmax(dim=-1)  # (B, 1)
        tokens.append(torch.where(done, PAD, token[:, 0]))
        w = model.decoder.attention_weights
        if w is not None:
            weights.append(torch.where(done[:, None, None], 0.0, w))  # (B, 1, T_src)
        done = done | (token[:, 0] == EOS)
        if bool(done.all()):
            break
    out = torch.stack(tokens, dim=1).cpu()  # (B, steps)
    seqs = []
    for row in out.tolist():
        seqs.append(row[: row.index(EOS)] if EOS in row else row)
    return seqs, (torch.cat(weights, dim=1) if weights else None)


def sequence_accuracy(predictions: list[list[int]], data: SeqTask) -> torch.Tensor:
    """(N,) bool: True where the prediction equals the target (without its EOS) exactly."""
    if len(predictions) != len(data):
        raise ValueError(f"{len(predictions)} predictions for {len(data)} examples")
    ok = [
        p == t[: int(n) - 1].tolist()
        for p, t, n in zip(predictions, data.tgt, data.tgt_len, strict=True)
    ]
    return torch.tensor(ok)


def accuracy_by_length(predictions: list[list[int]], data: SeqTask) -> dict[int, float]:
    """Exact-sequence accuracy for each source length: {length: fraction correct}."""
    ok = sequence_accuracy(predictions, data)
    lens = data.src_len.cpu()
    return {int(n): float(ok[lens == n].float().mean()) for n in torch.unique(lens)}
