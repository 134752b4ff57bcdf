"""Chapter 7, RNNs with attention: the alignment explorer and the exercises' self-checks.

The weights the explorer draws come from `helpers.seq2seq.predict_greedy`; this module only draws
them and checks the reader's answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers import seq2seq as s2s
from helpers.plotting import to_numpy
from helpers.ui.checks import ReaderError, as_number, check, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "alignment_explorer",
    "check_attention_parameters",
    "check_parameter_growth",
    "check_score_count",
    "check_task_alignments",
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


def _call_position(fn: Callable[..., Any], *args: Any) -> int:
    """The reader's fn(*args) as an int, with a clear message when it is not a whole number."""
    value = _returned(fn, *args)
    if isinstance(value, torch.Tensor):
        value = value.item()
    shown = ", ".join(repr(a) for a in args)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(
        value
    ).is_integer():
        raise ReaderError(f"position({shown}) returned {value!r}; a position is a whole number.")
    return int(value)


# Exercise 1: for each task, the output length for a source of length n and the source position
# output step t must read (the one that holds the letter step t writes). Written out by hand.
ALIGNMENT_TASKS: dict[str, tuple[Callable[[int], int], Callable[[int, int], int]]] = {
    "copy": (lambda n: n, lambda t, n: t),  # abcd -> abcd
    "double": (lambda n: 2 * n, lambda t, n: t // 2),  # abc -> aabbcc
    "rotate": (lambda n: n, lambda t, n: (t + 1) % n),  # abcd -> bcda
}


@self_check
def check_task_alignments(position: Any) -> bool:
    """Exercise 1: position(task, t, n), the source position output step t reads, for the tasks
    "copy", "double" and "rotate" (sources of length 1 to 11, every output step before EOS)."""
    if not callable(position):
        raise ReaderError("define a function position(task, t, n) that returns a source position.")
    try:
        inspect.signature(position).bind("copy", 0, 1)
    except TypeError:
        raise ReaderError("position must take three arguments: position(task, t, n).") from None
    except ValueError:  # no signature to inspect (a builtin): just call it
        pass
    wrong = [
        task
        for task, (out_len, want) in ALIGNMENT_TASKS.items()
        if any(_call_position(position, task, t, n) != want(t, n)
               for n in range(1, 12) for t in range(out_len(n)))
    ]
    return check(
        not wrong,
        f"your positions for {', '.join(repr(w) for w in wrong)} are not right for every t and n. "
        "Write out a short example, e.g. the source 'abcd' and its target, number both from 0, "
        "and for each output step find the source position that holds the letter it writes.",
        "Correct! Each task's heatmap would show its own pattern: the diagonal, a staircase "
        "two rows per column, a diagonal shifted by one that wraps round.",
    )


ATTENTION_WIDTHS = (16, 64, 100, 128)  # exercise 2: HIDDEN values the reader's formula is tried at


def _attention_size(num_hiddens: int) -> int:
    """Parameters of the decoder's additive attention in the chapter's model of that width."""
    model = s2s.make_seq2seq(13, 32, num_hiddens, attention=True, bidirectional=True)
    return sum(p.numel() for p in model.decoder.attention.parameters())


@self_check
def check_attention_parameters(fn: Any) -> bool:
    """Exercise 2: fn(H) -> the parameters of the decoder's additive attention when HIDDEN is H,
    tried at several widths."""
    if not callable(fn):
        raise ReaderError("define a function attention_parameters(H) that returns a number.")
    wrong = [
        H for H in ATTENTION_WIDTHS
        if as_number(_returned(fn, H), f"attention_parameters({H})") != _attention_size(H)
    ]
    return check(
        not wrong,
        f"your count is not right for HIDDEN = {', '.join(str(H) for H in wrong)}. Write down the "
        "shape of each matrix: W_q reads the decoder state, W_k an encoder output, and both "
        "write the attention's features; w_v turns those features into one score. None has a "
        "bias, and every width here is HIDDEN.",
        "Correct! Quadratic in HIDDEN, like the GRUs' own matrices, and nothing in it depends "
        "on the sequence length.",
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
        ok = ok and got == _scores_to_reverse(n)
    return check(
        ok,
        "each output step asks one query; it is scored against every valid source position. "
        "How many output steps does a reversal of n letters take, counting the one that "
        "writes EOS?",
        "Correct! Quadratic in the length, like self-attention in chapter 6, but the decoder "
        "computes its scores one step after another.",
    )


LONGER_INPUT = (10, 14)  # exercise 4: MAX_LEN before and after


def _scores_to_reverse(n: int) -> int:
    """(query, key) scores the attention decoder computes to reverse n letters: n + 1 output
    steps (the n letters, then EOS), each scored against the n source positions."""
    return (n + 1) * n


@self_check
def check_parameter_growth(prediction: Any) -> bool:
    """Exercise 4 (predict first), a pair: the parameters the attention model gains when MAX_LEN
    goes from 10 to 14, and how many more scores it computes to reverse 14 letters than 10."""
    if isinstance(prediction, torch.Tensor):
        prediction = prediction.tolist()
    if not isinstance(prediction, (tuple, list)) or len(prediction) != 2:
        raise ReaderError("give a pair of two numbers: (parameters gained, extra scores).")
    gained = as_number(prediction[0], "the parameters gained")
    extra = as_number(prediction[1], "the extra scores")
    # `make_seq2seq(vocab_size, embed_size, num_hiddens, ...)` takes no length at all: the
    # vocabulary is set by the alphabet, every weight by the embedding and hidden sizes.
    short, long = LONGER_INPUT
    want = (0, _scores_to_reverse(long) - _scores_to_reverse(short))
    hints = []
    if gained != want[0]:
        hints.append("for the parameters, go through the shapes of W_q, W_k, w_v, the GRUs, the "
                     "embeddings and the output layer: which of them mention the source length?")
    if extra != want[1]:
        hints.append("for the scores, count the output steps of a reversal of n letters (the "
                     "step that writes EOS included) and the keys each step scores, for n = 14 "
                     "and for n = 10, then subtract.")
    return check(
        not hints,
        " ".join(hints),
        "Correct! Nothing in the model is sized by the sequence length: the same weights simply "
        "weigh more keys at more steps, so the work grows with the square of the length while "
        "the parameters stay put.",
    )
