"""Real English text shipped with the book, its character vocabulary, and n-gram baselines.

The text is Python's own reference documentation as `help("TOPIC")` prints it (`pydoc_data.topics`
of one CPython release, PSF licence), frozen in `helpers/assets/pydoc_topics.json.gz` so that every
Python version reads the same bytes. Each topic is one *document*; held-out text is a fixed set of
whole documents, never characters drawn at random from the training text.

Characters are the tokens. A character seen fewer than `MIN_COUNT` times in the training documents
becomes one unknown token (shown as `UNK_CHAR`). Two more special tokens: `DOC_CHAR` starts every
document (a model's context begins there), `MASK_CHAR` is BERT's mask and never occurs in text.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from dataclasses import dataclass
from functools import cache
from importlib import resources

import torch

__all__ = [
    "ASSET",
    "DOC_CHAR",
    "HELDOUT_EVERY",
    "MASK_CHAR",
    "MIN_COUNT",
    "UNK_CHAR",
    "CharVocab",
    "Corpus",
    "NGramModel",
    "deduplicate",
    "document_stream",
    "load_corpus",
    "load_documents",
    "ngram_bits",
    "random_windows",
]

ASSET = "pydoc_topics.json.gz"
DOC_CHAR, UNK_CHAR, MASK_CHAR = "¶", "□", "█"
MIN_COUNT = 10  # rarer characters (in the training documents) become UNK_CHAR
HELDOUT_EVERY = 8  # documents 3, 11, 19, ... (sorted by name, after deduplication) are held out
DUP_WINDOW, DUP_SHARE = 40, 0.5  # a document half made of 40-char spans of a longer one is a copy


@cache
def load_documents() -> dict[str, str]:
    """Every document of the shipped text, {topic name: text}, sorted by name."""
    path = resources.files("helpers") / "assets" / ASSET
    with path.open("rb") as f:
        payload = json.loads(gzip.decompress(f.read()).decode("utf-8"))
    return dict(sorted(payload["documents"].items()))


class CharVocab:
    """Characters <-> token ids. Ids 0, 1, 2 are DOC_CHAR, UNK_CHAR, MASK_CHAR; then the kept
    characters in code-point order."""

    def __init__(self, chars: list[str] | str):
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("chars must be single characters")
        specials = [DOC_CHAR, UNK_CHAR, MASK_CHAR]
        kept = sorted(set(chars) - set(specials))
        self.itos = specials + kept
        self.stoi = {c: i for i, c in enumerate(self.itos)}
        self.doc_id, self.unk_id, self.mask_id = 0, 1, 2

    @classmethod
    def from_documents(cls, docs: list[str], min_count: int = MIN_COUNT) -> CharVocab:
        """The characters seen at least `min_count` times in `docs`."""
        counts = Counter(c for d in docs for c in d)
        return cls([c for c, n in counts.items() if n >= min_count])

    def __len__(self) -> int:
        return len(self.itos)

    def normalize(self, text: str) -> str:
        """text with every character outside the vocabulary replaced by UNK_CHAR."""
        return "".join(c if c in self.stoi else UNK_CHAR for c in text)

    def encode(self, text: str) -> torch.Tensor:
        """text -> token ids (len(text),) int64; unknown characters -> the UNK id."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return torch.tensor([self.stoi.get(c, self.unk_id) for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        """token ids (a 1-D tensor or a list of ints) -> text (specials as their characters)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        return "".join(self.itos[i] for i in ids)


@dataclass
class Corpus:
    """The shipped text split by document: names and texts of each split, and the vocabulary."""

    train_names: list[str]
    heldout_names: list[str]
    train_docs: list[str]
    heldout_docs: list[str]
    vocab: CharVocab

    def stream(self, split: str = "train") -> str:
        """The split as one string: each document preceded by DOC_CHAR, rare chars as UNK_CHAR."""
        docs = {"train": self.train_docs, "heldout": self.heldout_docs}.get(split)
        if docs is None:
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        return document_stream(docs, self.vocab)


def deduplicate(
    docs: dict[str, str], window: int = DUP_WINDOW, max_share: float = DUP_SHARE
) -> dict[str, str]:
    """The documents that are not copies: from the longest down, a document is dropped when more
    than `max_share` of its `window`-character spans already occur in a kept document.

    (Many help topics are sections of a longer one: "for" is part of "compound".)"""
    seen: set[str] = set()
    kept = []
    for name in sorted(docs, key=lambda n: (-len(docs[n]), n)):
        d = docs[name]
        spans = [d[i : i + window] for i in range(len(d) - window + 1)]
        shared = sum(s in seen for s in spans) / max(1, len(spans))
        if shared <= max_share:
            kept.append(name)
            seen.update(spans)
    return {n: docs[n] for n in sorted(kept)}


@cache
def load_corpus(heldout_every: int = HELDOUT_EVERY, min_count: int = MIN_COUNT) -> Corpus:
    """The shipped documents, copies removed (`deduplicate`), split by document: every
    `heldout_every`-th (sorted by name, from index 3) is held out; the vocabulary comes from the
    training documents only."""
    if not isinstance(heldout_every, int) or heldout_every < 2:
        raise ValueError(f"heldout_every must be an int >= 2, got {heldout_every!r}")
    docs = deduplicate(load_documents())
    names = list(docs)
    held = [n for i, n in enumerate(names) if i % heldout_every == 3 % heldout_every]
    train = [n for n in names if n not in set(held)]
    vocab = CharVocab.from_documents([docs[n] for n in train], min_count)
    return Corpus(train, held, [docs[n] for n in train], [docs[n] for n in held], vocab)


def document_stream(docs: list[str], vocab: CharVocab) -> str:
    """DOC_CHAR + doc for every doc, joined, with characters outside `vocab` as UNK_CHAR."""
    return "".join(DOC_CHAR + vocab.normalize(d) for d in docs)


def random_windows(
    ids: torch.Tensor, num: int, length: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """`num` windows of `length` consecutive ids at uniform random starts: (num, length)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 1 or ids.numel() < length:
        shape = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids)
        raise ValueError(f"ids must be a 1-D tensor of at least length={length} ids, got {shape}")
    starts = torch.randint(0, ids.numel() - length + 1, (num,), generator=generator)  # (num,)
    return ids[starts[:, None] + torch.arange(length)]  # (num, length)


# ---------------------------------------------------------------------------------------------
# n-gram baselines (Witten-Bell interpolation), in bits per character
# ---------------------------------------------------------------------------------------------


class NGramModel:
    """A character n-gram model of order `n` with Witten-Bell interpolation down to uniform:

        P_k(c | h) = (C(h c) + T(h) P_{k-1}(c | h')) / (C(h) + T(h)),   P_0(c) = 1 / vocab_size,

    h the last k - 1 characters, h' = h without its first character, C counts in the training
    text, T(h) the number of distinct characters seen after h. A context never seen (C(h) = 0)
    falls back to P_{k-1}. Order 1 is the unigram model, order 2 the bigram.
    """

    def __init__(self, text: str, n: int, vocab_size: int):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        if not isinstance(text, str) or len(text) < n:
            raise ValueError(f"text must be a str of at least n={n} characters")
        if vocab_size < len(set(text)):
            raise ValueError(f"vocab_size={vocab_size} is smaller than the {len(set(text))} "
                             "distinct characters of text")
        self.n, self.vocab_size = n, vocab_size
        self.counts: list[Counter] = []  # counts[k][s]: occurrences of the k+1-gram s
        self.context: list[dict[str, list[int]]] = []  # context[k][h] = [C(h), T(h)], len(h)=k
        for k in range(1, n + 1):
            grams = Counter(text[i : i + k] for i in range(len(text) - k + 1))
            ctx: dict[str, list[int]] = {}
            for g, c in grams.items():
                entry = ctx.setdefault(g[:-1], [0, 0])
                entry[0] += c
                entry[1] += 1
            self.counts.append(grams)
            self.context.append(ctx)

    def probs_all_orders(self, history: str, char: str) -> list[float]:
        """[P_1(char | ...), ..., P_n(char | history[-(n-1):])]: each order's probability."""
        p = 1.0 / self.vocab_size
        out = []
        for k in range(self.n):  # order k + 1 uses the last k characters
            h = history[len(history) - k :] if k else ""
            if k and len(history) < k:
                out.append(p)  # not enough history: the lower order stands
                continue
            entry = self.context[k].get(h)
            if entry is not None:
                total, types = entry
                p = (self.counts[k].get(h + char, 0) + types * p) / (total + types)
            out.append(p)
        return out

    def prob(self, history: str, char: str) -> float:
        """P_n(char | the last n - 1 characters of history)."""
        return self.probs_all_orders(history, char)[-1]


def ngram_bits(model: NGramModel, docs: list[str]) -> list[float]:
    """Bits per character of every order 1..n on `docs` (each a DOC_CHAR-led string, as in
    `document_stream`): the mean of -log2 P over every character after each DOC_CHAR, with the
    context restricted to the document's own earlier characters (DOC_CHAR included)."""
    totals = [0.0] * model.n
    count = 0
    for doc in docs:
        if not doc.startswith(DOC_CHAR):
            raise ValueError("each document must start with DOC_CHAR (see document_stream)")
        for t in range(1, len(doc)):
            ps = model.probs_all_orders(doc[max(0, t - model.n + 1) : t], doc[t])
            for k, p in enumerate(ps):
                totals[k] -= math.log2(p)
            count += 1
    if count == 0:
        raise ValueError("docs hold no character to predict")
    return [t / count for t in totals]
