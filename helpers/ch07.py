"""Chapter 7, RNNs with attention: the alignment explorer and the exercises' self-checks.

The weights the explorer draws come from `helpers.seq2seq.predict_greedy`; this module only draws
them and checks the reader's answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import seq2seq as s2s
from helpers.explorer import ReaderError, as_number, build_explorer, check, self_check
from helpers.plotting import to_numpy

__all__ = [
    "EXPLORER_DEMOS",
    "alignment_explorer",
    "check_attention_parameters",
    "check_copy_alignment",
    "check_parameter_growth",
    "check_score_count",
]


# ---------------------------------------------------------------------------------------------
# The alignment explorer
# ---------------------------------------------------------------------------------------------


def alignment_explorer(
    sources: Sequence[str], predictions: Sequence[str], weights: Any
) -> widgets.VBox:
    """Pick a held-out sequence; see its attention weights (output steps are rows, source columns).

    sources, predictions: N strings (one character per token; predictions without the end token);
    weights: (N, steps, T_src) from `helpers.seq2seq.predict_greedy`. Rows and columns are counted
    from 0. State: `example`, `source`, `prediction` and `weights` (rows, len(source)), the matrix
    drawn, where rows = output steps including the end token.
    """
    w = to_numpy(weights).astype(float)
    if w.ndim != 3 or not len(sources) == len(predictions) == w.shape[0]:
        raise ValueError(
            f"need weights (N, steps, T_src) and N sources and predictions; got weights of shape "
            f"{tuple(w.shape)}, {len(sources)} sources, {len(predictions)} predictions"
        )
    steps, t_src = w.shape[1], w.shape[2]

    fig = Figure(figsize=(4.6, 4.0))
    ax = fig.add_axes((0.2, 0.18, 0.6, 0.68))
    cax = fig.add_axes((0.84, 0.18, 0.03, 0.68))
    image = ax.imshow(np.zeros((steps, t_src)), cmap="Reds", vmin=0, vmax=1)
    fig.colorbar(image, cax=cax, label="weight", ticks=[0, 0.5, 1])  # few labels: fast redraws
    ax.set_xlabel("source position (keys)")
    ax.set_ylabel("output step (queries)")
    ax.set_xticks(range(t_src))
    ax.set_yticks(range(steps))
    title = ax.set_title("")

    def draw(example: int) -> tuple[Figure, dict[str, Any]]:
        src, pred = sources[example], predictions[example]
        rows = min(len(pred) + 1, steps)  # output steps including the end token
        m = w[example, :rows, : len(src)]  # (rows, len(src))
        shown = np.full((steps, t_src), np.nan)
        shown[:rows, : len(src)] = m
        image.set_data(np.ma.masked_invalid(shown))
        ax.set_xlim(-0.5, len(src) - 0.5)
        ax.set_ylim(rows - 0.5, -0.5)
        ax.set_xticklabels([f"{c}\n{i}" for i, c in enumerate(src)] + [""] * (t_src - len(src)))
        out_labels = [f"{i} {c}" for i, c in enumerate(list(pred) + ["EOS"])][:rows]
        ax.set_yticklabels(out_labels + [""] * (steps - rows))
        title.set_text(f"{src} -> {pred}")
        return fig, {"example": example, "source": src, "prediction": pred, "weights": m.copy()}

    controls = {
        "example": widgets.IntSlider(
            value=0, min=0, max=len(sources) - 1, description="example", continuous_update=True
        )
    }
    return build_explorer(controls, draw, title="What does the decoder look at?")


def _demo_alignment_explorer() -> widgets.VBox:
    """The explorer on 100 chapter-like reversal examples with a plausible learned alignment."""
    data = s2s.make_seq_task(100, 3, 10, 10, task="reverse", seed=2)
    steps, t_src = 11, 10
    pos = torch.arange(t_src, dtype=torch.float64)
    weights = torch.zeros(100, steps, t_src, dtype=torch.float64)
    for i, n in enumerate(data.src_len.tolist()):
        mirror = (n - 1 - torch.arange(steps)).clamp(min=0).double()  # (steps,)
        scores = -2.0 * (pos[None, :] - mirror[:, None]) ** 2  # a band around the anti-diagonal
        scores[:, n:] = float("-inf")
        weights[i] = torch.softmax(scores, dim=-1)
    sources = [s2s.to_text(s) for s in data.src]
    predictions = [src[::-1] for src in sources]
    return alignment_explorer(sources, predictions, weights)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"alignment": _demo_alignment_explorer}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


def _returned(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), with a clear message when the reader's function still returns None."""
    value = fn(*args)
    if value is None:
        raise ReaderError("your function returns None: replace the None in it with your code.")
    return value


def _call_position(fn: Callable[[int, int], Any], t: int, n: int) -> int:
    """The reader's fn(t, n) as an int, with a clear message when it is not a whole number."""
    value = _returned(fn, t, n)
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, bool) or not float(value).is_integer():
        raise ReaderError(f"position({t}, {n}) returned {value!r}; a position is a whole number.")
    return int(value)


@self_check
def check_copy_alignment(position: Any) -> bool:
    """Exercise 1 (predict first): for the copy task, the source position output step t reads."""
    if not callable(position):
        raise ReaderError("define a function position(t, n) that returns a source position.")
    ok = all(_call_position(position, t, n) == t for n in range(1, 12) for t in range(n))
    return check(
        ok,
        "in the copy task the target is the source itself, in the same order; both are "
        "counted from 0. Which source letter does output step t repeat?",
        "Correct! A copy model's heatmap shows the main diagonal instead of the anti-diagonal.",
    )


@self_check
def check_attention_parameters(count: Any, num_hiddens: int = 128) -> bool:
    """Exercise 2: the parameters of the decoder's additive attention for HIDDEN = 128."""
    model = s2s.make_seq2seq(13, 32, num_hiddens, attention=True, bidirectional=True)
    want = sum(p.numel() for p in model.decoder.attention.parameters())
    return check(
        as_number(count, "your count") == want,
        f"W_q maps the decoder state ({num_hiddens} numbers) to {num_hiddens} features, W_k maps "
        f"an encoder output ({num_hiddens}) to {num_hiddens}, w_v maps {num_hiddens} features to "
        "one score; none has a bias.",
        "Correct! Compare it with the rest of the model's parameters.",
    )


@self_check
def check_score_count(fn: Any) -> bool:
    """Exercise 3: fn(n) -> how many (query, key) scores the decoder computes to reverse a
    source of length n, the step that writes EOS included."""
    if not callable(fn):
        raise ReaderError("define a function score_count(n) that returns a number.")
    ok = True
    for n in range(1, 21):
        got = as_number(_returned(fn, n), f"score_count({n})")
        ok = ok and got == (n + 1) * n  # n + 1 output steps (n letters, EOS) x n source keys
    return check(
        ok,
        "each output step asks one query; it is scored against every valid source position. "
        "How many output steps does a reversal of n letters take, counting the one that "
        "writes EOS?",
        "Correct! Quadratic in the length, like self-attention in chapter 6, but the decoder "
        "computes its scores one step after another.",
    )


@self_check
def check_parameter_growth(prediction: Any) -> bool:
    """Exercise 4 (predict first): parameters the attention model gains for MAX_LEN 10 -> 14."""
    # `make_seq2seq(vocab_size, embed_size, num_hiddens, ...)` takes no length at all: the
    # vocabulary is set by the alphabet, every weight by the embedding and hidden sizes.
    growth = 0
    return check(
        as_number(prediction, "your prediction") == growth,
        "go through the shapes of W_q, W_k, w_v, the GRUs, the embeddings and the output layer: "
        "which of them mention the source length?",
        "Correct! Nothing in the model is sized by the sequence length: attention just has more "
        "keys to weigh, so the same weights handle longer inputs.",
    )
