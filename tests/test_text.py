"""helpers.text: the shipped text (size, split by document, no copies across the split), the
character vocabulary, and the Witten-Bell n-gram bits against a hand-worked tiny corpus."""

from __future__ import annotations

import math
from importlib import resources

import pytest
import torch

from helpers import text
from helpers.text import DOC_CHAR, UNK_CHAR, CharVocab, NGramModel, ngram_bits


def test_the_text_ships_in_the_package_with_its_licence():
    assets = resources.files("helpers") / "assets"
    assert (assets / text.ASSET).is_file()
    assert (assets / "pydoc_topics.LICENSE.md").is_file()
    docs = text.load_documents()
    assert sum(len(d) for d in docs.values()) >= 300_000  # uncompressed characters
    assert list(docs) == sorted(docs)


def test_the_split_is_by_document_and_held_out_text_is_not_copied_in_training():
    c = text.load_corpus()
    assert set(c.train_names).isdisjoint(c.heldout_names)
    assert len(c.heldout_names) >= 5
    assert sum(map(len, c.train_docs)) + sum(map(len, c.heldout_docs)) >= 300_000
    train = c.stream("train")
    spans = {train[i : i + 40] for i in range(len(train) - 39)}
    for name, d in zip(c.heldout_names, c.heldout_docs):
        s = [d[i : i + 40] for i in range(0, len(d) - 39, 7)]
        shared = sum(x in spans for x in s) / len(s)
        assert shared < 0.02, f"{name}: {shared:.2%} of its 40-char spans occur in training"


def test_deduplicate_drops_sections_of_a_longer_document():
    long = "".join(f"sentence number {i} of the long document. " for i in range(40))
    docs = {"long": long, "section": long[200:600], "other": "x" * 50 + long[:30]}
    kept = text.deduplicate(docs)
    assert list(kept) == ["long", "other"]


def test_vocab_encodes_decodes_and_maps_rare_characters_to_unk():
    v = CharVocab.from_documents(["aaab", "ab"], min_count=2)
    assert v.itos[:3] == [DOC_CHAR, UNK_CHAR, text.MASK_CHAR] and v.itos[3:] == ["a", "b"]
    ids = v.encode("abz")
    assert ids.tolist() == [3, 4, v.unk_id] and v.decode(ids) == "ab" + UNK_CHAR
    assert v.decode([0, 3]) == DOC_CHAR + "a"
    with pytest.raises(TypeError):
        v.encode(3)
    c = text.load_corpus()
    held = c.stream("heldout")
    assert held.startswith(DOC_CHAR) and held.count(DOC_CHAR) == len(c.heldout_docs)
    assert c.vocab.decode(c.vocab.encode(held)) == held


def test_ngram_bits_match_a_hand_worked_corpus():
    # Train on "abab", 3 symbols. Unigram (Witten-Bell with uniform): N = 4, T = 2 types,
    # P1(a) = (2 + 2/3) / 6 = 4/9. Bigram: context "a" seen 2 times with 1 type (b),
    # P2(b | a) = (2 + 1 * 4/9) / 3 = 22/27. Held-out "¶ab": the first "a" follows "¶", a context
    # never seen, so order 2 falls back to P1(a).
    m = NGramModel("abab", 2, vocab_size=3)
    assert m.prob("", "a") == pytest.approx(4 / 9)
    assert m.prob("a", "b") == pytest.approx(22 / 27)
    assert m.prob("b", "a") == pytest.approx((1 + 4 / 9) / 2)
    assert m.prob("a", "a") == pytest.approx(4 / 27)
    bits = ngram_bits(m, [DOC_CHAR + "ab"])
    assert bits[0] == pytest.approx(-math.log2(4 / 9))
    assert bits[1] == pytest.approx((-math.log2(4 / 9) - math.log2(22 / 27)) / 2)


def test_ngram_probabilities_sum_to_one_on_the_real_text():
    c = text.load_corpus()
    m = NGramModel(c.stream("train")[:20000], 4, len(c.vocab))
    for history in ("the", "xq#", " (", ""):
        total = sum(m.prob(history, ch) for ch in c.vocab.itos)
        assert total == pytest.approx(1.0, abs=1e-9)
    with pytest.raises(ValueError, match="DOC_CHAR"):
        ngram_bits(m, ["no doc char"])


def test_random_windows_are_slices_of_the_stream():
    ids = torch.arange(50)
    w = text.random_windows(ids, 6, 5, torch.Generator().manual_seed(0))
    assert w.shape == (6, 5)
    assert torch.equal(w - w[:, :1], torch.arange(5).repeat(6, 1))
    with pytest.raises(ValueError, match="length=60"):
        text.random_windows(ids, 1, 60)
