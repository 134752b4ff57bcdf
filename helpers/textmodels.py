"""Encoder, decoder, or both (chapter 12): GPT and BERT on the shipped text.

Building, training and loading the shipped models; what each can do, measured (next-character
and masked-character bits, fill-in-the-blank, generation); the attention modules of real-depth
architectures counted by kind, and the three masks; and head patterns scored on held-out text.

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
from helpers.training import lr_at, train_adamw
from helpers.transformer import TinyGPT

__all__ = [
    "BERT_ASSET",
    "BERT_CONFIG",
    "GPT_ASSET",
    "GPT_CONFIG",
    "PATTERNS",
    "TRAIN",
    "attention_masks",
    "bert_generate",
    "bert_masked_eval",
    "build_bert",
    "build_gpt",
    "causal_eval",
    "count_attention",
    "document_ids",
    "fill_in_eval",
    "head_scores",
    "heldout_sentences",
    "heldout_windows",
    "last_position_eval",
    "load_checkpoint",
    "load_text_bert",
    "load_text_gpt",
    "next_char_pairs",
    "previous_char_pairs",
    "real_depth_architectures",
    "save_checkpoint",
    "train_bert",
    "train_gpt",
    "uniform_score",
    "word_start_pairs",
]


# ---------------------------------------------------------------------------------------------
# Models, training, checkpoints
# ---------------------------------------------------------------------------------------------


# The shipped models: equal width, depth, heads, context and step budget.
GPT_CONFIG = {"num_hiddens": 128, "num_heads": 4, "num_layers": 4, "max_len": 128,
              "dropout": 0.1}



BERT_CONFIG = {"num_hiddens": 128, "ffn_num_hiddens": 512, "num_heads": 4, "num_blks": 4,
               "max_len": 128, "dropout": 0.1}



TRAIN = {"steps": 2000, "batch_size": 32, "gpt_lr": 2e-3, "bert_lr": 1e-3, "warmup": 100,
         "seed": 0}



GPT_ASSET, BERT_ASSET = "ch12_gpt.pt", "ch12_bert.pt"



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
