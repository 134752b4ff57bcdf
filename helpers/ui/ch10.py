"""Chapter 10, generating with attention: the two explorers (heads of a trained TinyGPT; sampling
with temperature and top-k) and the exercises' self-checks.

The model, its KV cache and the sampling rule live in `helpers.transformer`; the tasks and the
measurements (per-position loss, head scores, head ablation) in `helpers.induction`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.induction import diagonal_scores, per_position_loss, repeated_sequences
from helpers.transformer import TinyGPT, next_token_probs
from helpers.ui.checks import ReaderError, as_number, as_tensor, check, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "attention_heads_explorer",
    "check_induction_keys",
    "check_kv_cache_bytes",
    "check_one_layer_model",
    "check_top_k_temperature",
    "sampling_explorer",
]


# ---------------------------------------------------------------------------------------------
# Explorers
# ---------------------------------------------------------------------------------------------


def attention_heads_explorer(
    weights: list[torch.Tensor], half_len: int, tokens: torch.Tensor | None = None
) -> widgets.VBox:
    """Per layer and head, one sequence's attention weights and the two diagonals that name a
    previous-token head (key t - 1) and an induction head (key t - half_len + 1).

    weights: per layer (heads, T, T) for one sequence (e.g. `model.attention_weights[i][0]`).
    Controls: layer, head. State: `layer`, `head`, `weights`, `prev_score`, `induction_score`.
    """
    if not weights or any(not isinstance(w, torch.Tensor) or w.dim() != 3 for w in weights):
        raise ValueError("weights must be a non-empty list of (heads, T, T) tensors")
    shapes = {tuple(w.shape) for w in weights}
    if len(shapes) != 1 or weights[0].shape[-1] != weights[0].shape[-2]:
        raise ValueError(f"every layer's weights must share one (heads, T, T) shape, got {shapes}")
    heads, T, _ = weights[0].shape
    if not 1 <= half_len < T:
        raise ValueError(f"half_len must be in 1..{T - 1}, got {half_len}")
    maps = [w.detach().float().cpu().numpy() for w in weights]
    prev = [diagonal_scores(w[None].float(), 1).tolist() for w in weights]
    induct = [diagonal_scores(w[None].float(), half_len - 1, half_len).tolist() for w in weights]

    fig = Figure(figsize=(5.6, 4.6), dpi=80)
    fig.subplots_adjust(left=0.12, right=0.9, bottom=0.11, top=0.9)
    ax = fig.subplots()
    im = ax.imshow(maps[0][0], cmap="Reds", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03, ticks=[0, 0.5, 1], label="weight")
    t = np.arange(T)
    ax.plot(t[1:] - 1, t[1:], "s", mfc="none", mec="tab:blue", ms=5, mew=0.8,
            label="key t - 1")
    second = t[half_len:]
    ax.plot(second - half_len + 1, second, "o", mfc="none", mec="tab:green", ms=5, mew=0.8,
            label=f"key t - {half_len - 1}")
    ax.axhline(half_len - 0.5, color="gray", lw=0.6, ls="--")
    ticks = list(range(0, T, 4))
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    if tokens is not None:
        labels = [str(int(x)) for x in tokens[:T]]
        ax.set_xticks(range(T), labels=labels, fontsize=6)
        ax.set_yticks(range(T), labels=labels, fontsize=6)
    ax.set(xlabel="key position" if tokens is None else "key (token id; positions from 0)",
           ylabel="query position" if tokens is None else "query (token id)")
    title = ax.set_title("")

    def draw(layer: int, head: int):
        im.set_data(maps[layer][head])
        p, q = prev[layer][head], induct[layer][head]
        title.set_text(f"layer {layer}, head {head}: previous-token score {p:.2f}, "
                       f"induction score {q:.2f}")
        state = {"layer": layer, "head": head, "weights": maps[layer][head],
                 "prev_score": p, "induction_score": q}
        return fig, state

    controls = {
        "layer": widgets.Dropdown(options=list(range(len(maps))), value=0, description="layer"),
        "head": widgets.Dropdown(options=list(range(heads)), value=0, description="head"),
    }
    return build_explorer(controls, draw, title="Attention weights of one sequence, per layer "
                          "and head (rows: queries, columns: keys; squares: key t - 1; circles: "
                          f"key t - {half_len - 1})")


def sampling_explorer(logits: torch.Tensor, labels: list[str] | None = None) -> widgets.VBox:
    """Bars of `next_token_probs(logits, temperature, top_k)` for one next-token distribution.

    logits: (vocab,). Controls: temperature, top_k (the vocabulary size means no cut).
    State: `probs`, `kept_mass` (the mass of the top_k tokens at this temperature before
    renormalising), `entropy` (nats).
    """
    if not isinstance(logits, torch.Tensor) or logits.dim() != 1 or logits.numel() < 2:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
        raise ValueError(f"logits must be a (vocab,) tensor with vocab >= 2, got {shape}")
    logits = logits.detach().double().cpu()
    V = logits.numel()
    order = torch.argsort(logits, descending=True)

    fig = Figure(figsize=(6.4, 2.8), dpi=80)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.17, top=0.86)
    ax = fig.subplots()
    x = np.arange(V)
    bars = ax.bar(x, np.zeros(V), color="tab:red")
    ax.set_xticks(x, labels=labels if labels is not None else [str(i) for i in range(V)],
                  fontsize=7)
    ax.set(xlabel="next token", ylabel="probability", ylim=(0, 1.02), xlim=(-0.6, V - 0.4))
    title = ax.set_title("")

    def draw(temperature: float, top_k: int):
        k = None if top_k >= V else int(top_k)
        probs = next_token_probs(logits, float(temperature), k)  # (V,)
        for bar, h in zip(bars, probs.tolist(), strict=True):
            bar.set_height(h)
        if temperature == 0:
            kept = 1.0
        else:
            full = torch.softmax(logits / temperature, 0)  # (V,)
            kept = float(full[order[: min(int(top_k), V)]].sum())
        nz = probs[probs > 0]
        entropy = float(-(nz * nz.log()).sum())
        title.set_text(f"temperature {temperature:.2f}, top_k {'all' if k is None else k}: "
                       f"top_k keeps {kept:.3f} of the mass; entropy {entropy:.2f} nats")
        state = {"probs": probs.numpy(), "kept_mass": kept, "entropy": entropy}
        return fig, state

    controls = {
        "temperature": widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.05,
                                           description="temperature"),
        "top_k": widgets.IntSlider(value=V, min=1, max=V, description="top_k"),
    }
    return build_explorer(controls, draw, title="One next-token distribution: temperature and "
                          "top-k (top_k at its maximum keeps every token)")


def _demo_attention_heads() -> widgets.VBox:
    gen = torch.Generator().manual_seed(1)
    L, heads = 12, 2
    T = 2 * L
    maps = []
    for kind in ("prev", "induction"):
        w = torch.rand(heads, T, T, generator=gen).tril()  # (h, T, T)
        t = torch.arange(1, T)
        if kind == "prev":
            w[0, t, t - 1] += 20
        else:
            s = torch.arange(L, T)
            w[1, s, s - L + 1] += 20
        maps.append(w / w.sum(-1, keepdim=True))
    return attention_heads_explorer(maps, L)


def _demo_sampling() -> widgets.VBox:
    logits = torch.tensor([3.1, 2.4, 1.9, 1.2, 0.8, 0.3, 0.0, -0.4, -0.9, -1.5, -2.0, -2.2,
                           -2.7, -3.0, -3.3, -4.0])
    return sampling_explorer(logits)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {
    "attention_heads": _demo_attention_heads,
    "sampling": _demo_sampling,
}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


# Exercise 1: a grouped-query model in bfloat16 serving a batch (the formula's "heads" are the
# heads that store keys and values, and its bytes per number follow the dtype).
GQA_MODEL = {"layers": 32, "query_heads": 32, "kv_heads": 8, "head_width": 128,
             "length": 4096, "batch": 4, "bytes_per_number": 2}


@self_check
def check_kv_cache_bytes(answer: Any, model: dict | None = None) -> bool:
    """Exercise 1 (predict): bytes of the KV cache of a grouped-query model (several query heads
    share one key/value head) for a batch of full-length sequences."""
    cfg = dict(GQA_MODEL if model is None else model)
    got = as_number(answer)
    want = (2 * cfg["layers"] * cfg["kv_heads"] * cfg["head_width"] * cfg["length"]
            * cfg["batch"] * cfg["bytes_per_number"])
    ratio = got / want
    hint = ("count what the cache stores: keys AND values, in every layer, for every head that "
            "HAS keys and values, every position, every sequence of the batch, at the dtype's "
            "bytes per number.")
    if math.isclose(ratio, cfg["query_heads"] / cfg["kv_heads"], rel_tol=1e-3):
        hint = ("query heads store nothing: only the key/value heads do, and several query "
                "heads read the same one.")
    elif math.isclose(ratio, 4 / cfg["bytes_per_number"], rel_tol=1e-3):
        hint = "bfloat16 is not float32: how many bytes does one number take?"
    elif math.isclose(ratio, 0.5, rel_tol=1e-3):
        hint = "close: did you count the keys and the values?"
    elif math.isclose(ratio, 1 / cfg["batch"], rel_tol=1e-3):
        hint = "close: every sequence of the batch has its own cache."
    return check(abs(ratio - 1) <= 0.01, hint,
                 "Correct: sharing key/value heads divides the cache by the group size.")


# Exercise 2: a sequence in which the query's token occurred several times before.
INDUCTION_TOKENS = (5, 3, 8, 5, 1, 9, 3, 5, 2, 7, 5, 0, 4, 5)


@self_check
def check_induction_keys(answer: Any, tokens: tuple[int, ...] = INDUCTION_TOKENS) -> bool:
    """Exercise 2: the key positions (0-based) an ideal induction head spreads its weight over
    for the query at the last position of `tokens`: every j < t whose previous token j - 1 equals
    the query's token."""
    got = as_tensor(answer, dtype=torch.float64).reshape(-1).tolist()
    if any(not float(x).is_integer() for x in got):
        raise ReaderError("your answer should be a list of key positions (whole numbers)")
    got = sorted(int(x) for x in got)
    t = len(tokens) - 1
    want = [j for j in range(1, t) if tokens[j - 1] == tokens[t]]
    earlier = [j for j in range(t) if tokens[j] == tokens[t]]
    hint = ("the head's key at j carries token j - 1 (layer 0's previous-token head wrote it "
            "there); it matches the query wherever that previous token equals the query's token.")
    if got == earlier:
        hint = ("those keys hold the same token as the query; the head reads the token that "
                "FOLLOWED each earlier copy.")
    elif len(got) == 1 and got[0] in want:
        hint = "the query's token occurred more than once before: every earlier copy matches."
    elif got and got[-1] >= t:
        hint = "every key the head can read lies before the query."
    return check(got == want, hint,
                 "Correct: the head splits its weight between them, and the next-token guess "
                 "mixes what followed each copy.")


# Exercise 3: the temperature at which top-k sampling draws the runner-up one time in ten.
TOP_K_LOGITS = (2.0, 1.0, 0.5, 0.0, -1.0)
TOP_K_TARGET = 0.1


def _runner_up_prob(temperature: float, logits: tuple[float, ...], top_k: int | None) -> float:
    """P(the token of the second-largest logit) under temperature and top-k, in float64."""
    probs = next_token_probs(torch.tensor(logits, dtype=torch.float64), temperature, top_k)
    return float(probs[logits.index(sorted(logits, reverse=True)[1])])


def _temperature_for(target: float, logits: tuple[float, ...], top_k: int | None) -> float:
    """The temperature at which the runner-up is drawn with probability `target` (bisection:
    that probability rises with the temperature)."""
    lo, hi = 1e-3, 1e3
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if _runner_up_prob(mid, logits, top_k) < target else (lo, mid)
    return math.sqrt(lo * hi)


@self_check
def check_top_k_temperature(
    answer: Any, logits: tuple[float, ...] = TOP_K_LOGITS, top_k: int = 2,
    target: float = TOP_K_TARGET,
) -> bool:
    """Exercise 3: the temperature at which sampling with `top_k` draws the token of the
    second-largest logit with probability `target`. With two tokens kept, only the gap between
    their logits counts: target = 1 / (1 + exp(gap / T))."""
    got = as_number(answer)
    want = _temperature_for(target, logits, top_k)
    hint = ("with top_k = 2 only two tokens are left: write the runner-up's probability as a "
            "function of the gap between their logits and T, set it to the target, solve for T.")
    if got <= 0:
        hint = "a temperature is positive; near 0 the runner-up is never drawn."
    elif math.isclose(got, _temperature_for(target, logits, None), rel_tol=5e-3):
        hint = "top-k renormalises over the kept tokens: the dropped ones no longer share the mass."
    elif math.isclose(got, 1 / want, rel_tol=5e-3):
        hint = "the temperature divides the logits; check the direction of your last step."
    elif math.isclose(got, 1 / math.log(1 / target), rel_tol=5e-3):
        hint = ("the runner-up's odds against the top token are target / (1 - target), not "
                "the target itself.")
    return check(math.isclose(got, want, rel_tol=2e-3), hint,
                 "Correct: with two tokens kept the other logits play no part, and a lower "
                 "temperature would make the runner-up rarer still.")


# Exercise 4: the test sequences of section 10.2 (256 sequences, 12 + 12 tokens, seed 1).
ONE_LAYER_TEST = {"num": 256, "half_len": 12, "vocab_size": 16, "seed": 1}


@self_check
def check_one_layer_model(answer: Any, low: float = 0.8, high: float = 2.4) -> bool:
    """Exercise 4 (predict, then run): the reader's trained one-layer `TinyGPT`. The check
    measures the model's second-half loss itself, on section 10.2's test sequences, so a number
    typed without training cannot pass. Section 10.3's recipe with one layer gives 1.3 to 1.6
    after 600 steps on three seeds (1.7 after 200); an untrained model about 2.9, a one-layer
    model trained on period 12 only (the shortcut) about 0.01, the two-layer model about 0.4."""
    if not isinstance(answer, TinyGPT):
        raise ReaderError("pass the one-layer TinyGPT you trained: the model itself, not a "
                          "number nor the (model, losses) pair `train` returns; the check "
                          "measures its loss on `test`")
    if len(answer.blks) != 1:
        raise ReaderError(f"your model has {len(answer.blks)} layers: build it with "
                          "num_layers=1")
    cfg = ONE_LAYER_TEST
    if answer.vocab_size != cfg["vocab_size"] or answer.max_len < 2 * cfg["half_len"]:
        raise ReaderError(f"build it as in 10.3: vocab_size={cfg['vocab_size']}, "
                          f"max_len={2 * cfg['half_len']}")
    tokens = repeated_sequences(cfg["num"], cfg["half_len"], cfg["vocab_size"],
                                torch.Generator().manual_seed(cfg["seed"]))  # (256, 24)
    was_training = answer.training
    answer.eval()
    try:
        with torch.no_grad():
            loss = per_position_loss(answer, tokens)[cfg["half_len"] - 1 :].mean().item()
    finally:
        answer.train(was_training)
    if loss < low:
        hint = (f"your model's second-half loss is {loss:.2f}, lower than the recipe of 10.3 "
                "gives one layer: did you train it on `periodic_sequences` (periods 4 to 12), "
                "not on the period-12 sequences of 10.2?")
    else:
        hint = (f"your model's second-half loss is {loss:.2f}: it has barely learnt to copy. "
                "Did you train it with `train` for 600 steps on the data of 10.3?")
    return check(low <= loss <= high, hint,
                 f"Consistent with a trained one-layer model: its second-half loss is {loss:.2f}, "
                 "between the two-layer model's and chance, so it copies only partly. With one "
                 "layer no position has been told which token came before it, so no key can "
                 "answer \"was I preceded by your token?\"; the head can only use which tokens "
                 "are in the context and where. The induction head needs a layer before it to "
                 "write the previous token into every position: two layers, composed. Compare "
                 "its head scores (`head_table`) with the two-layer model's.")
