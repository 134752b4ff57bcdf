"""Chapter 12, encoder, decoder, or both: the heads explorer (a layer, a head and a held-out
sentence of the shipped models) and the exercises' self-checks.

The models, their training and the measurements live in `helpers.textmodels`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.plotting import freeze_background
from helpers.text import NGramModel, load_corpus
from helpers.textmodels import head_scores, heldout_sentences, heldout_windows, load_text_gpt
from helpers.ui.checks import ReaderError, as_number, check, self_check
from helpers.ui.explorer import EXPLORER_DPI, build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_attention_total",
    "check_bigram_saving",
    "check_bracket_pairs",
    "check_unchanged_positions",
    "heads_explorer",
    "top_keys",
]


# ---------------------------------------------------------------------------------------------
# The explorer
# ---------------------------------------------------------------------------------------------


def _show(c: str) -> str:
    return {" ": "␣", "\n": "⏎"}.get(c, c)


def top_keys(weights, text: str) -> list[str]:
    """For each query row of `weights` (T, T) over `text`, 'q→k': the key character it weighs
    most (its own character q first)."""

    w = np.asarray(weights)
    if w.ndim != 2 or w.shape != (len(text), len(text)):
        raise ValueError(f"weights must be (T, T) for a text of T={len(text)} characters, got "
                         f"shape {w.shape}")
    return [f"{_show(text[q])}→{_show(text[int(w[q].argmax())])}" for q in range(len(text))]


def strong_rows(weights, factor: float = 2.0):
    """For each query row of `weights` (T, T), whether its largest weight is at least `factor`
    times uniform over the keys the row may see (those with a weight > 0): a boolean (T,) array.
    A causal head's query 0 sees one key only, so its row is never strong."""

    w = np.asarray(weights)
    visible = (w > 0).sum(axis=1)  # (T,) keys each query may see
    return w.max(axis=1) >= factor / np.maximum(visible, 1)


def _sentence_figure(text: str):
    """A heatmap figure for one sentence whose axes, characters and colour bar are rendered once
    (`freeze_background`); the image, the dots and the title are what a redraw changes."""

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
def check_unchanged_positions(answer: Any, length: int = 128, prob: float = 0.15,
                              num_ordinary: int = 96, tol: float = 0.05) -> bool:
    """Exercise 2 (predict): in a window of `length` ordinary characters, how many positions on
    average does BERT's rule pick for prediction and still show with their original character in
    the input (left alone by the 10 % rule, or replaced at random by the same character, one of
    `num_ordinary`)? Exact: P * 0.1 * (1 + 1 / num_ordinary), P = round(prob * length) picked.
    `tol` accepts 0.1 * P (the 10 % rule alone) and a mean over 10,000 windows (standard error
    about 0.013)."""
    got = as_number(answer)
    picked = max(1, round(prob * length))
    want = picked * 0.1 * (1 + 1 / num_ordinary)
    hint = ("first count the positions the rule picks, then the share of those that keep their "
            "character.")
    if abs(got - 0.1 * length) < 0.05:
        hint = "the 10 % applies to the picked positions, not to the whole window."
    elif abs(got - 0.8 * picked) < 0.05 or min(abs(got - picked), abs(got - prob * length)) < 0.05:
        hint = "of the picked positions, which share is neither masked nor replaced?"
    elif got == 0:
        hint = "the rule leaves some picked positions as they were: which share?"
    return check(abs(got - want) <= tol, hint,
                 f"Correct: {picked} picked × 0.1 left alone, plus the rare random replacement "
                 f"that draws the original character (1 in {num_ordinary}). The model cannot "
                 "tell those from the untouched positions around them.")


BIGRAM_SENTENCE = "Type objects represent the various object types."


def _bigram_saving(sentence: str = BIGRAM_SENTENCE) -> float:
    """Bits the Witten-Bell bigram of the chapter's training text saves over a uniform model on
    `sentence`, every character after the first predicted from the one before it."""
    corpus = load_corpus()
    bigram = NGramModel(corpus.stream("train"), 2, len(corpus.vocab))
    uniform = math.log2(len(corpus.vocab))
    return sum(uniform + math.log2(bigram.prob(sentence[t - 1], sentence[t]))
               for t in range(1, len(sentence)))


@self_check
def check_bigram_saving(answer: Any, sentence: str = BIGRAM_SENTENCE) -> bool:
    """Exercise 3: how many bits in total the bigram baseline saves over the uniform model on
    `sentence` (each character after the first, from the one before it)."""
    got = as_number(answer)
    corpus = load_corpus()
    vocab_size = len(corpus.vocab)
    want = _bigram_saving(sentence)
    scored = len(sentence) - 1
    uniform_total = scored * math.log2(vocab_size)
    hint = ("for each scored character add what the uniform model pays, log2 of the vocabulary "
            "size, minus what the bigram pays, -log2 of its probability.")
    if got < 0:
        hint = "the bigram needs fewer bits than the uniform model: the saving is positive."
    elif abs(got - want * math.log(2)) < 0.5:
        hint = "that looks like nats (natural log); bits use log base 2."
    elif abs(got * scored - want) < 0.5:
        hint = "that is the saving per character; the question asks for the total."
    elif abs(got - (uniform_total - want)) < 0.5:
        hint = "that is what the bigram pays; the saving is what the uniform model pays minus that."
    elif abs(got - (want - scored * math.log2(vocab_size / (vocab_size - 3)))) < 0.5:
        hint = (f"the uniform model spreads over every token of the vocabulary, all {vocab_size} "
                "(special ones included).")
    return check(abs(got - want) <= 0.05, hint,
                 "Correct: that is how much shorter the bigram would compress this sentence "
                 "than a code with the same length for every token.")


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
