"""Chapter 14, attention in today's language models: the explorers (KV-cache memory of published
configurations; a mask drawn with the keys one query sees) and the exercises' self-checks.

The maths and the experiments on chapter 12's model live in `helpers.llm`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import NullLocator

from helpers.llm import (
    GQAGPT,
    PUBLISHED_CONFIGS,
    heldout_sequences,
    load_gqa_models,
    mask_from_mod,
    visible_keys,
)
from helpers.ui.checks import ReaderError, as_number, check, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_decode_tokens_per_second",
    "check_kv_heads_for_budget",
    "check_prefix_lm_mask_mod",
    "check_sink_weight",
    "check_visible_count",
    "kv_cache_explorer",
    "mask_explorer",
]


# ---------------------------------------------------------------------------------------------
# Explorers
# ---------------------------------------------------------------------------------------------

CONTEXTS = [2**k for k in range(10, 18)]  # 1k .. 128k tokens
KV_CHOICES = ("as published", "MHA: every head", "GQA: 8", "GQA: 4", "MQA: 1")
WINDOW_CHOICES = ("as published", "none", "4096", "1024")
GIB = 2**30


def _kv_heads(config, choice: str) -> int:
    if choice == "as published":
        return config.num_kv_heads
    if choice.startswith("MHA"):
        return config.num_heads
    return int(choice.split(":")[1])


def _window(config, choice: str) -> int | None:
    if choice == "as published":
        return config.window
    return None if choice == "none" else int(choice)


def kv_cache_explorer(batch: int = 1) -> widgets.VBox:
    """KV-cache memory (fp16) of a published configuration against the context length, with
    another number of key/value heads or a window; its weights' memory as a line for scale.

    State: `bytes_per_token`, `cache_bytes` (at the chosen context), `weights_bytes`,
    `num_kv_heads`, `window`.
    """
    fig = Figure(figsize=(6.8, 3.2), dpi=80)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.88)
    ax = fig.subplots()
    x = np.array(CONTEXTS, dtype=float)
    (mha_line,) = ax.plot(x, x, "--", color="gray", lw=1, label="every head (MHA), no window")
    (line,) = ax.plot(x, x, "o-", color="tab:red", ms=4, label="your choice")
    (weights_line,) = ax.plot(x, x, ":", color="tab:blue", lw=1.5,
                              label="the weights as published (fp16)")
    (marker,) = ax.plot([x[0]], [1.0], "s", color="black", ms=8, mfc="none")
    ax.set(xscale="log", yscale="log", xlabel="context length (tokens)",
           ylabel=f"GiB (batch {batch}, fp16)")
    ax.set_xticks(x, labels=[f"{c // 1024}k" for c in CONTEXTS])
    ax.set_yticks([1e-2, 1e-1, 1, 10, 100, 1000], labels=["0.01", "0.1", "1", "10", "100", "1000"])
    ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost a third of a redraw
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylim(2e-3, 2e3)
    ax.legend(fontsize=8, loc="upper left", frameon=False)
    title = ax.set_title("", fontsize=10)

    def draw(model: str, context: int, kv_heads: str, window: str):
        cfg = PUBLISHED_CONFIGS[model]
        kv, win = _kv_heads(cfg, kv_heads), _window(cfg, window)
        if cfg.num_heads % kv:  # only while the model changes: its choices are then narrowed
            kv = cfg.num_kv_heads
        def cache_bytes(c: int) -> int:  # win None here means no window at all
            return batch * (c if win is None else min(c, win)) * cfg.bytes_per_token(kv)

        ys = np.array([cache_bytes(c) for c in CONTEXTS]) / GIB
        mha = np.array([batch * c * cfg.bytes_per_token(cfg.num_heads) for c in CONTEXTS]) / GIB
        line.set_ydata(ys)
        mha_line.set_ydata(mha)
        weights = cfg.num_params * 2
        weights_line.set_ydata(np.full(len(CONTEXTS), weights / GIB))
        cache = cache_bytes(context)
        marker.set_data([context], [cache / GIB])
        per_token = cfg.bytes_per_token(kv)
        title.set_text(f"{model}: {kv} key/value heads of {cfg.num_heads}, window "
                       f"{'none' if win is None else win}: {per_token / 1024:.0f} KiB per token, "
                       f"{cache / GIB:.2f} GiB at {context // 1024}k")
        state = {"bytes_per_token": per_token, "cache_bytes": cache, "weights_bytes": weights,
                 "num_kv_heads": kv, "window": win}
        return fig, state

    controls = {
        "model": widgets.Dropdown(options=list(PUBLISHED_CONFIGS), value="Llama-2-7B",
                                  description="model"),
        "context": widgets.SelectionSlider(options=[(f"{c // 1024}k", c) for c in CONTEXTS],
                                           value=8192, description="context"),
        "kv_heads": widgets.Dropdown(options=list(KV_CHOICES), value="as published",
                                     description="K/V heads"),
        "window": widgets.Dropdown(options=list(WINDOW_CHOICES), value="as published",
                                   description="window"),
    }

    def narrow_choices(change=None) -> None:
        """Offer only the numbers of key/value heads that divide the model's query heads, and no
        choice that draws the same as one before it (e.g. "MHA" where the model is MHA as
        published, or "none" where it has no window): every choice changes the picture."""
        cfg = PUBLISHED_CONFIGS[controls["model"].value]
        for name, choices, resolve in (("kv_heads", KV_CHOICES, _kv_heads),
                                       ("window", WINDOW_CHOICES, _window)):
            control, seen, valid = controls[name], set(), []
            for c in choices:
                value = resolve(cfg, c)
                if name == "kv_heads" and cfg.num_heads % value:
                    continue
                if value not in seen:
                    seen.add(value)
                    valid.append(c)
            keep = control.value if control.value in valid else "as published"
            if list(control.options) != valid:
                control.options = valid
            control.value = keep

    narrow_choices()
    controls["model"].observe(narrow_choices, names="value")  # before the redraw
    return build_explorer(controls, draw, title="KV-cache memory of a published configuration "
                          "(one sequence, 2 bytes per number)")


def _doc_ids(n: int, layout: str) -> torch.Tensor:
    """Document id per position: one document, or three packed ones."""
    if layout == "one document":
        return torch.zeros(n, dtype=torch.long)
    cuts = [0, n // 3, n // 3 + n // 4, n]
    ids = torch.zeros(n, dtype=torch.long)
    for d in range(3):
        ids[cuts[d] : cuts[d + 1]] = d
    return ids


def explorer_mask(n: int, window: int, num_sinks: int, layout: str) -> torch.Tensor:
    """The explorer's mask (n, n): causal, a window (window >= n: none) with sinks, and for packed
    documents only keys of the query's own document (sinks are then each document's first)."""
    pos = torch.arange(n)
    doc = _doc_ids(n, layout)
    starts = torch.zeros(n, dtype=torch.long)
    for d in doc.unique():
        starts[doc == d] = int((doc == d).nonzero()[0])
    local = pos - starts  # position inside its document
    win = None if window >= n else window
    same_doc = doc[:, None] == doc[None, :]  # (n, n)
    # within a document: the window and sinks count from the document's own start
    vis = torch.stack([visible_keys(local[i : i + 1], local, win, num_sinks)[0] for i in range(n)])
    return vis & same_doc & (pos[None, :] <= pos[:, None])


def mask_explorer(n: int = 24) -> widgets.VBox:
    """Which keys each query may see: window, sinks and packed documents; one query's row marked.

    State: `mask` (n, n) bool, `visible` (the chosen query's keys), `count`.
    """
    fig = Figure(figsize=(5.4, 5.0), dpi=80)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.1, top=0.9)
    ax = fig.subplots()
    im = ax.imshow(np.zeros((n, n)), cmap="Reds", vmin=0, vmax=1.25)
    row = Rectangle((-0.5, -0.5), n, 1, fill=False, ec="tab:blue", lw=2)
    ax.add_patch(row)
    ticks = list(range(0, n, 4))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    ax.set(xlabel="key position", ylabel="query position")
    title = ax.set_title("", fontsize=10)

    def draw(window: int, sinks: int, documents: str, query: int):
        mask = explorer_mask(n, window, sinks, documents)
        im.set_data(mask.numpy().astype(float))
        row.set_y(query - 0.5)
        keys = mask[query].nonzero().flatten().tolist()
        title.set_text(f"query {query} sees {len(keys)} key{'s' if len(keys) != 1 else ''}: "
                       f"{_ranges(keys)}")
        return fig, {"mask": mask.numpy(), "visible": keys, "count": len(keys)}

    controls = {
        "window": widgets.IntSlider(value=6, min=1, max=widest_window(n, 2, "one document"),
                                    description="window"),
        "sinks": widgets.IntSlider(value=2, min=0, max=4, description="sinks"),
        "documents": widgets.Dropdown(options=["one document", "three packed documents"],
                                      value="one document", description="layout"),
        "query": widgets.IntSlider(value=n - 1, min=0, max=n - 1, description="query"),
    }

    def bound_window(_change: dict) -> None:  # wider windows would draw the same causal mask
        controls["window"].max = widest_window(n, controls["sinks"].value,
                                               controls["documents"].value)

    for name in ("sinks", "documents"):
        controls[name].observe(bound_window, names="value")  # before the redraw's observer
    return build_explorer(controls, draw, title=f"Who sees whom: a mask of {n} positions (rows: "
                          "queries, columns: keys; the widest window is no window; the blue "
                          "box is the chosen query)")


def widest_window(n: int, num_sinks: int, layout: str) -> int:
    """The smallest window whose mask is the plain causal one (within documents): the longest
    document's length minus the sinks, since its last query then sees every earlier key."""
    longest = int(torch.bincount(_doc_ids(n, layout)).max())
    return max(longest - num_sinks, 1)


def _ranges(keys: list[int]) -> str:
    """[0, 1, 5, 6, 7] -> '0-1, 5-7'."""
    out, i = [], 0
    while i < len(keys):
        j = i
        while j + 1 < len(keys) and keys[j + 1] == keys[j] + 1:
            j += 1
        out.append(str(keys[i]) if i == j else f"{keys[i]}-{keys[j]}")
        i = j + 1
    return ", ".join(out) if out else "none"


def _demo_kv() -> widgets.VBox:
    return kv_cache_explorer()


def _demo_mask() -> widgets.VBox:
    return mask_explorer()


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    "kv_cache": _demo_kv,
    "mask": _demo_mask,
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


@self_check
def check_visible_count(answer: Any, n: int = 131_072, window: int = 4096,
                        num_sinks: int = 4) -> bool:
    """Exercise 1: how many (query, key) pairs a prefill of `n` tokens may attend with this window
    and these sinks (causal): the number of True entries of the (n, n) mask, which at this size
    is too large to build (17 GB of booleans)."""
    got = as_number(answer, "your count")
    full = n * (n + 1) // 2
    window_only = sum(min(p + 1, window) for p in range(n))
    want = window_only + sum(min(num_sinks, max(0, p - window + 1)) for p in range(n))
    hint = ("count row by row: the query at position p sees min(p + 1, window) keys of the "
            "window, plus the sink positions that have already left the window.")
    if got == full:
        hint = "that is the causal mask with no window: most old keys are hidden."
    elif got == window_only:
        hint = "the window alone: the sink positions stay visible to the late queries too."
    elif got == window_only + num_sinks * max(0, n - window):
        hint = ("close: for the first queries past the window, some sinks are still inside the "
                "window and must not be counted twice.")
    return check(got == want, hint,
                 "Correct: about window + sinks per query, so the work grows like n, not n².")


@self_check
def check_kv_heads_for_budget(answer: Any, num_layers: int = 40, num_heads: int = 40,
                              head_dim: int = 128, tokens: int = 32768,
                              budget: int = 8 * 2**30, bytes_per_element: int = 2) -> bool:
    """Exercise 2: the most key/value heads per layer (a divisor of num_heads) whose fp16 cache
    for one sequence of `tokens` tokens fits in `budget` bytes."""
    got = as_number(answer)
    per_head = 2 * num_layers * head_dim * bytes_per_element * tokens  # one K/V head, all layers
    fits = budget // per_head
    want = max(g for g in range(1, num_heads + 1) if num_heads % g == 0 and g <= fits)
    hint = ("first work out what ONE key/value head costs at this length, over all layers; then "
            "remember how key/value heads are shared by the query heads.")
    if got == fits and fits != want:
        hint = "that many fit in memory, but can the query heads be split into that many groups?"
    elif got > fits:
        hint = "that cache would not fit in 8 GiB: check your bytes per head and token again."
    return check(got == want, hint,
                 "Correct: the budget and the grouping together decide the number.")


PREFIX_CASES = ((8, 8, 3), (12, 12, 5), (6, 6, 0), (10, 10, 10))


@self_check
def check_prefix_lm_mask_mod(answer: Any, prefix: int = 4) -> bool:
    """Exercise 3: `answer` builds a prefix-LM mask_mod: answer(prefix) -> mask_mod where every
    query sees the whole prefix (positions < prefix) and, after it, causal attention."""
    if not callable(answer):
        raise ReaderError("pass your function make_prefix_lm (not its result).")
    for n_q, n_k, pre in PREFIX_CASES + ((16, 16, prefix),):
        try:
            mod = answer(pre)
        except TypeError as err:
            if "argument" not in str(err):
                raise
            raise ReaderError("make_prefix_lm takes one argument, the prefix length, and returns "
                              "a mask_mod(b, h, q_idx, kv_idx).") from None
        if not callable(mod):
            raise ReaderError("make_prefix_lm(prefix) should return a function "
                              "mask_mod(b, h, q_idx, kv_idx).")
        try:
            got = mask_from_mod(mod, n_q, n_k)
        except TypeError as err:
            if "argument" in str(err):
                raise ReaderError("mask_mod takes four arguments: b, h, q_idx, kv_idx.") from None
            raise ReaderError("mask_mod should return a bool tensor, True where the query may "
                              "attend (compare the index tensors; combine with & and |).") from None
        q = torch.arange(n_q)[:, None]
        k = torch.arange(n_k)[None, :]
        want = (k <= q) | (k < pre)
        if got.shape != want.shape or got.dtype != torch.bool:
            raise ReaderError("mask_mod should return a bool tensor, True where the query may "
                              "attend (combine comparisons with & and |, not `and`/`or`).")
        if not torch.equal(got, want):
            wrong = (got != want).nonzero()[0].tolist()
            return check(False, f"with prefix={pre}, query {wrong[0]} and key {wrong[1]} disagree "
                         "with the rule: the prefix is visible to every query, the rest is "
                         "causal.")
    return check(True, "", "Correct: one line of code instead of a new kernel.")


@self_check
def check_decode_tokens_per_second(answer: Any, num_params: float = 7e9,
                                   bytes_per_element: int = 2, bandwidth: float = 2.0e12) -> bool:
    """Exercise 4: the most tokens per second one sequence can be decoded at when every step
    reads all fp16 weights of a 7-billion-parameter model from memory at 2 TB/s."""
    got = as_number(answer)
    want = bandwidth / (num_params * bytes_per_element)
    hint = ("what must one decoding step read from memory, and how long does reading it take at "
            "this bandwidth?")
    if abs(got - want * 2) <= 0.02 * want * 2:
        hint = "fp16 takes 2 bytes per parameter."
    return check(abs(got - want) <= 0.02 * want, hint,
                 "Correct: arithmetic does not enter; memory traffic sets the pace.")


def _exercise5_defaults() -> tuple[GQAGPT, torch.Tensor]:
    """The notebook's `uptrained[2]` and `seqs`: the shipped 2-K/V-head model and 32 held-out
    windows of 129 characters."""
    from helpers.text import load_corpus
    from helpers.textmodels import load_text_gpt

    gpt, vocab = load_text_gpt()
    held_ids = vocab.encode(load_corpus().stream("heldout"))  # (N,)
    return load_gqa_models(gpt)[0][2], heldout_sequences(held_ids, gpt.max_len + 1, num=32)


@self_check
def check_sink_weight(answer: Any, model: GQAGPT | None = None, seqs: torch.Tensor | None = None,
                      window: int = 16, num_sinks: int = 4, first: int = 32) -> bool:
    """Exercise 5: the largest mean weight any head of `model` puts on key 0 from queries
    first..n-1 of `seqs[:, :-1]`, with this window and these sinks (averaged over the batch and
    the queries, per layer and head). By default the notebook's `uptrained[2]` and `seqs`."""
    got = as_number(answer)
    if model is None or seqs is None:
        model, seqs = _exercise5_defaults()
    saved = model.window, model.num_sinks
    try:
        model.window, model.num_sinks = window, num_sinks
        with torch.no_grad():
            model(seqs[:, :-1])
        per_head = torch.stack([w[:, :, first:, 0].mean((0, 2)) for w in model.attention_weights])
    finally:
        model.window, model.num_sinks = saved
    want = per_head.max().item()
    hint = ("the weights change with the mask: were the window and the sinks set on the model "
            "when it ran? And which queries, and which key, does the question ask about?")
    return check(abs(got - want) <= 0.006, hint,
                 f"Correct: compare it with 1 / {window + num_sinks}, the weight of a uniform "
                 "head that sees only the window and the sinks.")
