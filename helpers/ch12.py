"""Chapter 12, encoder, decoder, or both: GPT and BERT trained on the shipped text, their
checkpoints, what each can do (measured), attention modules counted in real-depth architectures,
heads on real text, the explorer and the exercises' self-checks.

`load_text_gpt()` returns the shipped decoder-only model and the text's vocabulary; with
`helpers.text.load_corpus()` (the split by document) and `vocab.encode` / `vocab.decode` that is
all a later chapter needs to evaluate it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from importlib import resources
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from helpers.bert import CharBERT, mask_tokens
from helpers.text import CharVocab, random_windows
from helpers.transformer import TinyGPT

__all__ = [
    "BERT_CONFIG",
    "EXPLORER_DEMOS",
    "GPT_CONFIG",
    "PATTERNS",
    "TRAIN",
    "attention_masks",
    "bert_generate",
    "bert_masked_eval",
    "build_bert",
    "build_gpt",
    "causal_eval",
    "check_attention_total",
    "check_bracket_pairs",
    "check_unchanged_positions",
    "check_uniform_bits",
    "count_attention",
    "document_ids",
    "fill_in_eval",
    "head_scores",
    "heads_explorer",
    "heldout_sentences",
    "heldout_windows",
    "last_position_eval",
    "load_checkpoint",
    "load_text_bert",
    "load_text_gpt",
    "lr_at",
    "train_adamw",
    "next_char_pairs",
    "previous_char_pairs",
    "real_depth_architectures",
    "save_checkpoint",
    "top_keys",
    "train_bert",
    "train_gpt",
    "word_start_pairs",
]

# The shipped models: equal width, depth, heads, context and step budget.
GPT_CONFIG = {"num_hiddens": 128, "num_heads": 4, "num_layers": 4, "max_len": 128,
              "dropout": 0.1}
BERT_CONFIG = {"num_hiddens": 128, "ffn_num_hiddens": 512, "num_heads": 4, "num_blks": 4,
               "max_len": 128, "dropout": 0.1}
TRAIN = {"steps": 2000, "batch_size": 32, "gpt_lr": 2e-3, "bert_lr": 1e-3, "warmup": 100,
         "seed": 0}
GPT_ASSET, BERT_ASSET = "ch12_gpt.pt", "ch12_bert.pt"


# ---------------------------------------------------------------------------------------------
# Models, training, checkpoints
# ---------------------------------------------------------------------------------------------


def build_gpt(vocab_size: int, config: dict | None = None, seed: int | None = None) -> TinyGPT:
    """The chapter's TinyGPT (GPT_CONFIG unless `config`), seeded when `seed` is given."""
    if seed is not None:
        torch.manual_seed(seed)
    return TinyGPT(vocab_size, **(config or GPT_CONFIG))


def build_bert(vocab_size: int, config: dict | None = None, seed: int | None = None,
               sinusoidal_start: bool = True) -> CharBERT:
    """The chapter's CharBERT (BERT_CONFIG unless `config`), seeded when `seed` is given.

    With `sinusoidal_start` the learned position embeddings start from chapter 8's sinusoidal
    table instead of d2l's random vectors: an offset is then the same linear map at every
    position, so "look one character to the left or right" is quick to learn. They are trained
    from there like any other parameter."""
    if seed is not None:
        torch.manual_seed(seed)
    model = CharBERT(vocab_size, **(config or BERT_CONFIG))
    if sinusoidal_start:
        from helpers.transformer import PositionalEncoding

        pe = PositionalEncoding(model.encoder.pos_embedding.shape[-1], 0.0, model.max_len)
        with torch.no_grad():
            model.encoder.pos_embedding.copy_(pe.P)  # (1, max_len, num_hiddens)
    return model


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to peak / 10."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


def train_adamw(model: nn.Module, loss_fn: Callable, steps: int, schedule: Callable[[int], float],
                seed: int = 0, log: Callable[[int, float], None] | None = None) -> list[float]:
    """AdamW (weight decay 0.01) at the rate `schedule(step)`, gradients clipped at 1;
    `loss_fn(generator)` draws a batch and returns its loss. Returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=schedule(0), weight_decay=0.01)
    losses = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = schedule(step)
        loss = loss_fn(gen)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log is not None:
            log(step, losses[-1])
    model.eval()
    return losses


def train_gpt(model: TinyGPT, train_ids: torch.Tensor, steps: int, batch_size: int = 32,
              lr: float = 2e-3, warmup: int = 100, seed: int = 0, total_steps: int | None = None,
              log: Callable[[int, float], None] | None = None) -> list[float]:
    """Next-character training on random windows of `train_ids` (1-D); the loss (nats) per step.

    `total_steps` sets the learning-rate schedule's length (default `steps`), so the first steps
    of a long run can be repeated alone."""
    T = model.max_len

    def loss_fn(gen):
        batch = random_windows(train_ids, batch_size, T + 1, gen)  # (B, T+1)
        logits = model(batch[:, :-1])  # (B, T, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    total = total_steps or steps
    return train_adamw(model, loss_fn, steps, lambda s: lr_at(s, total, lr, warmup), seed, log)


def train_bert(model: CharBERT, train_ids: torch.Tensor, vocab: CharVocab, steps: int,
               batch_size: int = 32, lr: float = 1e-3, warmup: int = 100, seed: int = 0,
               total_steps: int | None = None,
               log: Callable[[int, float], None] | None = None) -> list[float]:
    """Masked-character training (BERT's 15 % / 80-10-10 rule) on random windows of `train_ids`;
    the loss (nats per predicted position) per step."""
    T = model.max_len

    def loss_fn(gen):
        batch = random_windows(train_ids, batch_size, T, gen)  # (B, T)
        inputs, positions, labels = mask_tokens(batch, len(vocab), vocab.mask_id, generator=gen)
        logits = model(inputs, positions)  # (B, P, V)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))

    total = total_steps or steps
    return train_adamw(model, loss_fn, steps, lambda s: lr_at(s, total, lr, warmup), seed, log)


def save_checkpoint(path, model: nn.Module, kind: str, config: dict, vocab: CharVocab,
                    losses: list[float], **extra: Any) -> None:
    """Weights in float16 with everything needed to rebuild the model."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save({"kind": kind, "config": dict(config), "vocab": "".join(vocab.itos[3:]),
                "state_dict": state, "losses": list(losses), **extra}, path)


def load_checkpoint(name: str) -> dict:
    """A checkpoint shipped in helpers/assets, as saved by `save_checkpoint`."""
    path = resources.files("helpers") / "assets" / name
    with path.open("rb") as f:
        return torch.load(f, map_location="cpu", weights_only=True)


def _model_from(ckpt: dict) -> tuple[nn.Module, CharVocab]:
    vocab = CharVocab(ckpt["vocab"])
    build = {"gpt": build_gpt, "bert": build_bert}[ckpt["kind"]]
    model = build(len(vocab), ckpt["config"])
    model.load_state_dict({k: v.float() if v.is_floating_point() else v
                           for k, v in ckpt["state_dict"].items()})
    return model.eval(), vocab


def load_text_gpt() -> tuple[TinyGPT, CharVocab]:
    """The shipped TinyGPT trained on the text (tools/train_ch12.py), in eval mode, and its
    vocabulary (`vocab.encode(str)`, `vocab.decode(ids)`); its context is `model.max_len`."""
    return _model_from(load_checkpoint(GPT_ASSET))


def load_text_bert() -> tuple[CharBERT, CharVocab]:
    """The shipped CharBERT trained on the text with masked characters, and its vocabulary."""
    return _model_from(load_checkpoint(BERT_ASSET))


# ---------------------------------------------------------------------------------------------
# Evaluation on held-out documents
# ---------------------------------------------------------------------------------------------


def document_ids(docs: list[str], vocab: CharVocab) -> list[torch.Tensor]:
    """Each document as ids, led by the DOC_CHAR id: a list of (1 + len(doc),) tensors."""
    return [torch.cat((torch.tensor([vocab.doc_id]), vocab.encode(d))) for d in docs]


@torch.no_grad()
def causal_eval(model: TinyGPT, docs: list[torch.Tensor], window: int | None = None,
                stride: int | None = None, batch_size: int = 64) -> dict[str, float]:
    """Bits per character and next-character accuracy of a causal model on `docs` (id tensors
    from `document_ids`): every character after the DOC_CHAR is predicted from the earlier
    characters of its document inside a window of `window` (default model.max_len) positions.

    stride = window (default): the document is cut into disjoint windows, so a character sees
    0..window-1 earlier ones. A smaller stride slides the window and scores only each window's
    last `stride` positions (after the first window): every character then sees at least
    window - stride earlier ones, at window / stride times the cost.
    """
    window = window or model.max_len
    stride = stride or window
    if not 1 <= stride <= window <= model.max_len:
        raise ValueError(f"need 1 <= stride <= window <= max_len={model.max_len}, got "
                         f"stride={stride}, window={window}")
    model.eval()
    pieces: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (inputs, targets, first scored)
    for ids in docs:
        n = ids.numel() - 1  # targets
        start = 0
        while True:
            end = min(start + window, n)
            first = 0 if start == 0 else window - stride
            pieces.append((ids[start:end], ids[start + 1 : end + 1], first))
            if end == n:
                break
            start += stride
    nll, correct, count = 0.0, 0, 0
    by_len: dict[int, list] = {}
    for p in pieces:
        by_len.setdefault(p[0].numel(), []).append(p)
    for group in by_len.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            x = torch.stack([c[0] for c in chunk])  # (b, w)
            y = torch.stack([c[1] for c in chunk])  # (b, w)
            logp = torch.log_softmax(model(x).double(), -1)  # (b, w, V)
            picked = logp.gather(-1, y[..., None])[..., 0]  # (b, w)
            hit = logp.argmax(-1) == y  # (b, w)
            for j, c in enumerate(chunk):
                nll -= picked[j, c[2]:].sum().item()
                correct += int(hit[j, c[2]:].sum())
                count += y.shape[1] - c[2]
    return {"bits": nll / count / math.log(2), "accuracy": correct / count, "chars": count}


@torch.no_grad()
def bert_masked_eval(model: CharBERT, docs: list[torch.Tensor], vocab: CharVocab,
                     seed: int = 0, batch_size: int = 64, max_windows: int | None = None
                     ) -> dict[str, float]:
    """Bits and accuracy of BERT at its masked positions on `docs`, cut into disjoint windows of
    model.max_len (the first `max_windows` of them if given), masked with BERT's rule by a
    generator seeded with `seed`."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    W = model.max_len
    windows = [ids[s : s + W] for ids in docs for s in range(0, ids.numel(), W)]
    windows = windows if max_windows is None else windows[:max_windows]
    nll, correct, count = 0.0, 0, 0
    by_len: dict[int, list] = {}
    for w in windows:
        by_len.setdefault(w.numel(), []).append(w)
    for length in sorted(by_len):
        group = by_len[length]
        for i in range(0, len(group), batch_size):
            x = torch.stack(group[i : i + batch_size])  # (b, w)
            inputs, positions, labels = mask_tokens(x, len(vocab), vocab.mask_id, generator=gen)
            logp = torch.log_softmax(model(inputs, positions).double(), -1)  # (b, P, V)
            nll -= logp.gather(-1, labels[..., None]).sum().item()
            correct += int((logp.argmax(-1) == labels).sum())
            count += labels.numel()
    return {"bits": nll / count / math.log(2), "accuracy": correct / count, "predictions": count}


@torch.no_grad()
def fill_in_eval(gpt: TinyGPT, bert: CharBERT, docs: list[torch.Tensor], vocab: CharVocab,
                 every: int = 8, max_windows: int | None = None) -> dict[str, dict[str, float]]:
    """Fill in blanks at the same held-out positions: in each disjoint window of
    min(gpt.max_len, bert.max_len) ids, positions every-1, 2*every-1, ... are blanks. BERT sees
    the window with those positions replaced by the mask (both sides visible); GPT predicts each
    blank from the characters to its left in the window. Bits and accuracy of each."""
    W = min(gpt.max_len, bert.max_len)
    windows = [ids[s : s + W] for ids in docs for s in range(0, ids.numel() - W + 1, W)]
    if max_windows is not None:
        windows = windows[:max_windows]
    if not windows:
        raise ValueError(f"no document holds a full window of {W} ids")
    x = torch.stack(windows)  # (N, W)
    pos = torch.arange(every - 1, W, every)  # (P,) the blanks
    labels = x[:, pos]  # (N, P)
    masked = x.clone()
    masked[:, pos] = vocab.mask_id
    out = {}
    logp_b = torch.cat([torch.log_softmax(bert(masked[i : i + 64], pos.repeat(
        len(masked[i : i + 64]), 1)).double(), -1) for i in range(0, len(x), 64)])  # (N, P, V)
    logp_g = torch.cat([torch.log_softmax(gpt(x[i : i + 64]).double(), -1)[:, pos - 1]
                        for i in range(0, len(x), 64)])  # (N, P, V): prediction made at pos-1
    for name, logp in (("bert", logp_b), ("gpt", logp_g)):
        nll = -logp.gather(-1, labels[..., None]).mean().item()
        out[name] = {"bits": nll / math.log(2),
                     "accuracy": (logp.argmax(-1) == labels).double().mean().item()}
    out["blanks"] = labels.numel()
    return out


@torch.no_grad()
def last_position_eval(gpt: TinyGPT, bert: CharBERT, docs: list[torch.Tensor],
                       vocab: CharVocab, max_windows: int | None = None) -> dict[str, dict]:
    """Predict the character after a window from the window alone (what generation needs):
    GPT from its last position; BERT with the mask appended after the window, right side empty.
    Windows: disjoint, W - 1 ids each (W = the smaller max_len); the target is the next id."""
    W = min(gpt.max_len, bert.max_len)
    ctx = [ids[s : s + W] for ids in docs for s in range(0, ids.numel() - W + 1, W)]
    if max_windows is not None:
        ctx = ctx[:max_windows]
    x = torch.stack(ctx)  # (N, W): the first W - 1 are the context, the last is the target
    labels = x[:, -1]  # (N,)
    masked = x.clone()
    masked[:, -1] = vocab.mask_id
    last = torch.full((len(x), 1), W - 1)
    logp_b = torch.cat([torch.log_softmax(bert(masked[i : i + 64], last[i : i + 64])[:, 0]
                                          .double(), -1) for i in range(0, len(x), 64)])  # (N, V)
    logp_g = torch.cat([torch.log_softmax(gpt(x[i : i + 64, :-1])[:, -1].double(), -1)
                        for i in range(0, len(x), 64)])  # (N, V)
    out = {}
    for name, logp in (("bert", logp_b), ("gpt", logp_g)):
        nll = -logp.gather(-1, labels[:, None]).mean().item()
        out[name] = {"bits": nll / math.log(2),
                     "accuracy": (logp.argmax(-1) == labels).double().mean().item()}
    out["predictions"] = len(x)
    return out


@torch.no_grad()
def bert_generate(bert: CharBERT, prompt: torch.Tensor, max_new_tokens: int, mask_id: int,
                  temperature: float = 1.0, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Generate with BERT the only way it can: append the mask, sample what BERT puts there,
    repeat (the last max_len - 1 ids are the context). prompt (T,) -> (T + max_new_tokens,)."""
    if not isinstance(prompt, torch.Tensor) or prompt.dim() != 1 or prompt.numel() < 1:
        raise ValueError("prompt must be a non-empty 1-D tensor of ids")
    bert.eval()
    tokens = prompt.clone()
    for _ in range(max_new_tokens):
        ctx = torch.cat((tokens[-(bert.max_len - 1):], torch.tensor([mask_id])))[None]  # (1, W)
        logits = bert(ctx, torch.tensor([[ctx.shape[1] - 1]]))[0, 0]  # (V,)
        probs = torch.softmax(logits / temperature, -1)
        probs[:3] = 0  # never a special token
        nxt = torch.multinomial(probs / probs.sum(), 1, generator=generator)
        tokens = torch.cat((tokens, nxt))
    return tokens


# ---------------------------------------------------------------------------------------------
# Self-, masked self- and cross-attention, counted
# ---------------------------------------------------------------------------------------------


def count_attention(model: nn.Module) -> dict[str, int]:
    """Walk the modules and count the attention modules of each kind:
    {"self": bidirectional self-attention, "masked self": causal self-attention,
    "cross": queries from a decoder, keys and values from an encoder}."""
    from helpers.attention import MultiHeadAttention
    from helpers.transformer import TinyGPTBlock, TransformerDecoderBlock, TransformerEncoderBlock

    kinds = {(TransformerEncoderBlock, "attention"): "self",
             (TransformerDecoderBlock, "attention1"): "masked self",
             (TransformerDecoderBlock, "attention2"): "cross",
             (TinyGPTBlock, "attention"): "masked self"}
    counts = {"self": 0, "masked self": 0, "cross": 0}
    for name, module in model.named_modules():
        if not isinstance(module, MultiHeadAttention):
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        kind = next((k for (cls, a), k in kinds.items() if isinstance(parent, cls) and a == attr),
                    None)
        if kind is None:
            raise ValueError(f"attention module {name!r} sits in a {type(parent).__name__}, "
                             "which count_attention does not know")
        counts[kind] += 1
    return counts


def real_depth_architectures(width: int = 8, heads: int = 2, vocab_size: int = 10
                             ) -> dict[str, nn.Module]:
    """The book's blocks at the published depths (tiny widths): the original Transformer base
    (6 encoder + 6 decoder blocks), BERT-base (12 encoder blocks), GPT-2 small (12 decoder-only
    blocks)."""
    from helpers.bert import BERTEncoder
    from helpers.transformer import make_transformer_seq2seq

    return {
        "Transformer base (2017)": make_transformer_seq2seq(vocab_size, width, 2 * width, heads, 6),
        "BERT-base": BERTEncoder(vocab_size, width, 2 * width, heads, 12, 0.0, max_len=16),
        "GPT-2 small": TinyGPT(vocab_size, width, heads, 12, max_len=16),
    }


def attention_masks(t_src: int = 6, t_tgt: int = 5, src_valid: int | None = None
                    ) -> dict[str, torch.Tensor]:
    """Which keys each query may see (1) in the three kinds of attention, as 0/1 int tensors:
    encoder self-attention (t_src, t_src), decoder masked self-attention (t_tgt, t_tgt) and
    encoder-to-decoder cross-attention (t_tgt, t_src). Source positions >= src_valid are
    padding that no query sees."""
    src_valid = t_src if src_valid is None else src_valid
    if not 1 <= src_valid <= t_src or t_tgt < 1:
        raise ValueError(f"need t_tgt >= 1 and 1 <= src_valid <= t_src, got t_src={t_src}, "
                         f"t_tgt={t_tgt}, src_valid={src_valid}")
    keys_ok = (torch.arange(t_src) < src_valid).int()  # (t_src,)
    return {
        "bidirectional self": keys_ok.repeat(t_src, 1),  # (t_src, t_src)
        "causal self": torch.ones(t_tgt, t_tgt, dtype=torch.int).tril(),  # (t_tgt, t_tgt)
        "encoder-to-decoder": keys_ok.repeat(t_tgt, 1),  # (t_tgt, t_src)
    }


# ---------------------------------------------------------------------------------------------
# Heads on real text
# ---------------------------------------------------------------------------------------------


def _is_word(c: str) -> bool:
    return c.isalnum() or c == "_"


def previous_char_pairs(text: str) -> list[tuple[int, int]]:
    """(query t, key t - 1) for every t >= 1."""
    return [(t, t - 1) for t in range(1, len(text))]


def next_char_pairs(text: str) -> list[tuple[int, int]]:
    """(query t, key t + 1) for every t < len(text) - 1 (only a bidirectional model can)."""
    return [(t, t + 1) for t in range(len(text) - 1)]


def word_start_pairs(text: str) -> list[tuple[int, int]]:
    """(query t, key s) for t inside a word at least 2 characters after its first character s
    (a word: letters, digits, underscores), so the key is neither t nor t - 1."""
    pairs, start = [], None
    for t, c in enumerate(text):
        if not _is_word(c):
            start = None
            continue
        if start is None:
            start = t if t == 0 or not _is_word(text[t - 1]) else None
            if start is None:  # a word cut by the window's left edge: no start to point at
                continue
        if t - start >= 2:
            pairs.append((t, start))
    return pairs


PATTERNS: dict[str, Callable[[str], list[tuple[int, int]]]] = {
    "previous char": previous_char_pairs,
    "next char": next_char_pairs,
    "word start": word_start_pairs,
}


@torch.no_grad()
def head_scores(model: nn.Module, texts: list[str], vocab: CharVocab,
                patterns: dict[str, Callable] | None = None, batch_size: int = 32
                ) -> dict[str, torch.Tensor]:
    """For each pattern (a function text -> [(query, key)]), the mean attention weight every
    head puts on the pattern's key, over all its pairs in `texts` (equal lengths):
    {pattern: (layers, heads)}. Works for TinyGPT (causal) and CharBERT (bidirectional)."""
    patterns = PATTERNS if patterns is None else patterns
    if not texts or len({len(t) for t in texts}) != 1:
        raise ValueError("texts must be a non-empty list of strings of one length")
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    counts = Counter()
    for i in range(0, len(texts), batch_size):
        chunk = texts[i : i + batch_size]
        x = torch.stack([vocab.encode(t) for t in chunk])  # (b, T)
        if isinstance(model, CharBERT):
            model.encoder(x, torch.zeros_like(x), None)
        else:
            model(x)
        weights = torch.stack(model.attention_weights, 1)  # (b, layers, heads, T, T)
        for name, fn in patterns.items():
            rows = [(j, q, k) for j, t in enumerate(chunk) for q, k in fn(t)]
            if not rows:
                continue
            b, q, k = torch.tensor(rows).T  # (n,) each
            picked = weights.permute(0, 3, 4, 1, 2)[b, q, k]  # (n, layers, heads)
            sums[name] = sums.get(name, 0) + picked.double().sum(0)
            counts[name] += len(rows)
    return {name: (sums[name] / counts[name]).float() for name in sums}


def uniform_score(texts: list[str], pattern: Callable[[str], list[tuple[int, int]]],
                  causal: bool) -> float:
    """What a head spreading its weight evenly over the keys it may see would score on `pattern`
    over `texts` (as `head_scores` measures): the mean over all (query q, key) pairs of
    1 / (q + 1) for a causal head (query q sees keys 0..q), 1 / T for a bidirectional one."""
    weights = [1 / (q + 1) if causal else 1 / len(t) for t in texts for q, _ in pattern(t)]
    if not weights:
        raise ValueError("the pattern gives no (query, key) pair on these texts")
    return sum(weights) / len(weights)


def heldout_windows(corpus, length: int, num: int | None = None) -> list[str]:
    """Disjoint windows of `length` characters of the held-out documents (normalised), in order."""
    out = []
    for d in corpus.heldout_docs:
        d = corpus.vocab.normalize(d)
        out += [d[s : s + length] for s in range(0, len(d) - length + 1, length)]
    return out if num is None else out[:num]


def heldout_sentences(corpus, num: int = 6, min_len: int = 36, max_len: int = 52) -> list[str]:
    """`num` sentences of the held-out documents (min_len..max_len characters, ending with a
    full stop, line breaks as spaces), spread over the documents, in a fixed order."""
    found = []
    for d in corpus.heldout_docs:
        for paragraph in d.split("\n\n"):
            flat = " ".join(line.strip() for line in paragraph.split("\n"))
            for s in flat.split(". "):
                s = s.strip().rstrip(".") + "."
                if min_len <= len(s) <= max_len and s[0].isupper() and "  " not in s \
                        and corpus.vocab.normalize(s) == s:
                    found.append(s)
    if len(found) < num:
        raise ValueError(f"only {len(found)} sentences of {min_len}..{max_len} characters")
    step = len(found) / num
    return [found[int(i * step)] for i in range(num)]


# ---------------------------------------------------------------------------------------------
# The explorer
# ---------------------------------------------------------------------------------------------


def _show(c: str) -> str:
    return {" ": "␣", "\n": "⏎"}.get(c, c)


def top_keys(weights, text: str) -> list[str]:
    """For each query row of `weights` (T, T) over `text`, 'q→k': the key character it weighs
    most (its own character q first)."""
    import numpy as np

    w = np.asarray(weights)
    if w.ndim != 2 or w.shape != (len(text), len(text)):
        raise ValueError(f"weights must be (T, T) for a text of T={len(text)} characters, got "
                         f"shape {w.shape}")
    return [f"{_show(text[q])}→{_show(text[int(w[q].argmax())])}" for q in range(len(text))]


def strong_rows(weights, factor: float = 2.0):
    """For each query row of `weights` (T, T), whether its largest weight is at least `factor`
    times uniform over the keys the row may see (those with a weight > 0): a boolean (T,) array.
    A causal head's query 0 sees one key only, so its row is never strong."""
    import numpy as np

    w = np.asarray(weights)
    visible = (w > 0).sum(axis=1)  # (T,) keys each query may see
    return w.max(axis=1) >= factor / np.maximum(visible, 1)


def _sentence_figure(text: str):
    """A heatmap figure for one sentence whose axes, characters and colour bar are rendered once
    (`freeze_background`); the image, the dots and the title are what a redraw changes."""
    import numpy as np
    from matplotlib.figure import Figure

    from helpers.explorer import EXPLORER_DPI
    from helpers.plotting import freeze_background

    T = len(text)
    fig = Figure(figsize=(7.6, 6.8), dpi=EXPLORER_DPI)
    fig.subplots_adjust(left=0.07, right=0.92, bottom=0.08, top=0.92)
    ax = fig.subplots()
    im = ax.imshow(np.zeros((T, T)), cmap="Reds", vmin=0.0, vmax=1.0, interpolation="nearest",
                   aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, ticks=[0, 0.5, 1], label="weight")
    labels = [_show(c) for c in text]
    ax.set_xticks(range(T), labels=labels, fontsize=7, fontfamily="monospace")
    ax.set_yticks(range(T), labels=labels, fontsize=7, fontfamily="monospace")
    ax.set_xlabel("key (character)")
    ax.set_ylabel("query (character)")
    (dots,) = ax.plot([], [], "o", ms=3, mfc="tab:blue", mec="white", mew=0.4)
    ax.set_xlim(-0.5, T - 0.5)
    ax.set_ylim(T - 0.5, -0.5)
    title = fig.text(0.5, 0.955, "", ha="center", va="center", fontsize=10)
    freeze_background(fig, [im, dots, title], dpi=EXPLORER_DPI)
    return fig, im, dots, title


def heads_explorer(panels: dict[str, list[tuple[str, list]]],
                   scores: dict[str, dict[str, Any]] | None = None):
    """Per model, layer, head and sentence: the attention heatmap with characters on both axes,
    a dot on the key each query weighs most.

    panels: {model name: [(sentence, [per layer (heads, T, T) weights]), ...]} (same sentences
    for every model). scores: {model name: {pattern: (layers, heads) scores over held-out text}},
    shown in the title. Controls: model, layer, head, sentence. State: `weights`, `top` (per
    query 'q→k', the character it weighs most), `title`.
    """
    import ipywidgets as widgets
    import numpy as np

    from helpers.explorer import build_explorer

    if not panels:
        raise ValueError("panels must name at least one model")
    names = list(panels)
    first = panels[names[0]]
    for name in names:
        if len(panels[name]) != len(first):
            raise ValueError("every model must have the same number of sentences")
        for text, layers in panels[name]:
            for w in layers:
                if tuple(np.shape(w))[1:] != (len(text), len(text)):
                    raise ValueError(f"{name}: weights of shape {np.shape(w)} do not fit a "
                                     f"sentence of {len(text)} characters")
    maps = {n: [(t, [np.asarray(w, dtype=np.float32) for w in layers]) for t, layers in p]
            for n, p in panels.items()}
    n_layers = len(first[0][1])
    n_heads = np.shape(first[0][1][0])[0]
    figures: dict[int, tuple] = {}  # one per sentence, made when first shown

    def draw(model: str, layer: int, head: int, sentence: int):
        text, layers = maps[model][sentence]
        if sentence not in figures:
            figures[sentence] = _sentence_figure(text)
        fig, im, dots, title = figures[sentence]
        w = layers[layer][head]  # (T, T)
        im.set_data(w)
        keep = strong_rows(w)  # no dot on a row that is close to uniform
        dots.set_data(w.argmax(axis=1)[keep], np.arange(len(text))[keep])
        line = f"{model}, layer {layer}, head {head}"
        if scores and model in scores:
            best = max(scores[model], key=lambda p: float(scores[model][p][layer][head]))
            line += (f": its highest score on held-out text is {best}, "
                     f"{float(scores[model][best][layer][head]):.2f}")
        title.set_text(line + "\n(dots: the key each query weighs most, where that weight is "
                       "at least twice uniform)")
        return fig, {"weights": w, "top": top_keys(w, text), "title": line}

    controls = {
        "model": widgets.Dropdown(options=names, value=names[0], description="model"),
        "layer": widgets.Dropdown(options=list(range(n_layers)), value=0, description="layer"),
        "head": widgets.Dropdown(options=list(range(n_heads)), value=0, description="head"),
        "sentence": widgets.Dropdown(options=[(f"{i}: {t[:24]}…", i) for i, (t, _) in
                                              enumerate(first)], value=0,
                                     description="sentence"),
    }
    return build_explorer(controls, draw, title="Attention of one head on a held-out sentence "
                          "(rows: queries, columns: keys)")


def _demo_heads():
    gen = torch.Generator().manual_seed(0)
    texts = ["The quick brown fox jumps.", "Attention is kernel regression."]
    panels = {}
    for name, shift in (("causal", 1), ("bidirectional", -1)):
        rows = []
        for t in texts:
            T = len(t)
            layers = []
            for _ in range(2):
                w = torch.rand(2, T, T, generator=gen)  # (h, T, T)
                idx = torch.arange(T)
                w[0, idx, (idx - shift).clamp(0, T - 1)] += 10
                if shift == 1:
                    w = w.tril()
                layers.append((w / w.sum(-1, keepdim=True)).numpy())
            rows.append((t, layers))
        panels[name] = rows
    return heads_explorer(panels)


EXPLORER_DEMOS: dict[str, Callable[[], Any]] = {"heads": _demo_heads}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------

from helpers.explorer import ReaderError, as_number, check, self_check  # noqa: E402


@self_check
def check_attention_total(answer: Any, encoder_blocks: int = 4, decoder_blocks: int = 3) -> bool:
    """Exercise 1 (predict): attention modules of every kind in an encoder-decoder Transformer
    with `encoder_blocks` encoder blocks and `decoder_blocks` decoder blocks."""
    got = as_number(answer)
    want = encoder_blocks + 2 * decoder_blocks
    hint = "count per block: what does an encoder block hold, and what does a decoder block hold?"
    if got == encoder_blocks + decoder_blocks:
        hint = "a decoder block attends twice: to its own earlier positions and to the encoder."
    elif got == encoder_blocks + decoder_blocks + 1:
        hint = "is cross-attention really used once per model, or once per decoder block?"
    return check(got == want, hint, "Correct: every decoder block has its own cross-attention.")


@self_check
def check_unchanged_positions(answer: Any, length: int = 128, prob: float = 0.15) -> bool:
    """Exercise 2 (predict): in a window of `length` characters, how many positions on average
    does BERT's rule pick for prediction but leave unchanged in the input?"""
    got = as_number(answer)
    picked = max(1, round(prob * length))
    want = 0.1 * picked
    hint = "first count the positions the rule picks, then the share of those it leaves alone."
    if abs(got - 0.1 * length) < 0.05:
        hint = "the 10 % applies to the picked positions, not to the whole window."
    elif abs(got - 0.8 * picked) < 0.05 or abs(got - picked) < 0.05:
        hint = "of the picked positions, which share is neither masked nor replaced?"
    return check(abs(got - want) <= 0.02, hint,
                 "Correct: the model cannot tell those from the untouched positions around them.")


@self_check
def check_uniform_bits(answer: Any, vocab_size: int = 60) -> bool:
    """Exercise 3: bits per character of a model that gives each of `vocab_size` tokens the
    same probability."""
    got = as_number(answer)
    want = math.log2(vocab_size)
    hint = "each character costs -log2 of its probability; what is the probability here?"
    if abs(got - math.log(vocab_size)) < 0.01:
        hint = "that is in nats (natural log); bits use log base 2."
    return check(abs(got - want) <= 0.01, hint,
                 "Correct: every model in this chapter must beat this to have learned anything.")


def _reference_brackets(text: str) -> list[tuple[int, int]]:
    stack, pairs = [], []
    for t, c in enumerate(text):
        if c == "(":
            stack.append(t)
        elif c == ")" and stack:
            pairs.append((t, stack.pop()))
    return pairs


BRACKET_CASES = ("f(x)", "print(len(s))", "a(b)c(d(e)f)", ")(unmatched", "((a)", "no brackets",
                 "(x) and (y, (z))")


@self_check
def check_bracket_pairs(answer: Any) -> bool:
    """Exercise 4: a function text -> [(position of ')', position of its matching '(')], in the
    order of the closing brackets; unmatched brackets give no pair."""
    if not callable(answer):
        raise ReaderError("pass your function itself (its name, without calling it).")
    for case in BRACKET_CASES:
        got = [tuple(int(v) for v in p) for p in answer(case)]
        want = _reference_brackets(case)
        if got != want:
            hint = (f"try your function on {case!r} by hand: a ')' matches the nearest '(' "
                    "that is still open (a stack).")
            if sorted(got) == sorted(want):
                hint = "the pairs are right but the order is not: list them as the ')' appear."
            elif [(k, q) for q, k in got] == want:
                hint = "each pair is (query = the ')', key = its '('): swap them."
            return check(False, hint)
    return check(True, "", "Correct: now score the heads with it (the cell below).")


def _lookalike_data():
    """GPT's attention on the explorer's six held-out sentences and its previous-character
    scores over 40 held-out windows, as the notebook computes them."""
    from helpers.text import load_corpus

    corpus = load_corpus()
    gpt, vocab = load_text_gpt()
    weights = []
    for s in heldout_sentences(corpus, num=6):
        with torch.no_grad():
            gpt(vocab.encode(s)[None])
        weights.append([w[0].numpy() for w in gpt.attention_weights])
    scores = head_scores(gpt, heldout_windows(corpus, 128, num=40), vocab)
    return weights, scores["previous char"]


@self_check
def check_lookalike_head(answer: Any, weights: list | None = None, scores: Any = None,
                         looks: float = 0.4, low: float = 0.5) -> bool:
    """Exercise 5: a GPT head (layer, head) that looks like a previous-character head on one of
    the explorer's sentences (on at least `looks` of its queries q >= 1 the most-weighted key is
    q - 1) but whose previous-character score over held-out text is below `low`.
    weights: per sentence, per layer (heads, T, T); scores: (layers, heads). Computed from the
    shipped GPT when not given."""
    import numpy as np

    if not (isinstance(answer, (tuple, list)) and len(answer) == 2):
        raise ReaderError("give a pair (layer, head), for example (3, 1).")
    layer, head = (as_number(v, "layer and head") for v in answer)
    if weights is None or scores is None:
        weights, scores = _lookalike_data()
    n_layers, n_heads = np.shape(scores)
    if not (layer == int(layer) and head == int(head) and 0 <= layer < n_layers
            and 0 <= head < n_heads):
        raise ReaderError(f"layers count 0..{n_layers - 1} and heads 0..{n_heads - 1}.")
    layer, head = int(layer), int(head)
    shares = []
    for layers in weights:
        w = np.asarray(layers[layer])[head]  # (T, T)
        shares.append(float((w[1:].argmax(axis=1) == np.arange(len(w) - 1)).mean()))
    if float(np.asarray(scores)[layer, head]) >= low:
        return check(False, "over held-out text this head really is a previous-character head "
                            "(its score is high): look for one whose score is low.")
    if max(shares) < looks:
        return check(False, "on every sentence, fewer than 4 in 10 of this head's queries weigh "
                            "the previous character most: it does not look like a "
                            "previous-character head. Look through more layers and heads.")
    return check(True, "", "Correct: on one sentence it looks like a previous-character head, yet "
                           "over thousands of held-out positions it mostly looks elsewhere.")
