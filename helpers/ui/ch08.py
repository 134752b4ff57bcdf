"""Chapter 8, order and position: the encoding explorer and the exercises' self-checks.

The encodings live in `helpers.transformer` (`PositionalEncoding`, `LearnedPositionalEmbedding`,
`apply_rotary`) and the chapter's small models in `helpers.positions`; this module only draws
them and checks the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.positions import sinusoid_table
from helpers.transformer import apply_rotary
from helpers.ui.checks import as_number, check, self_check
from helpers.ui.explorer import build_explorer

__all__ = [
    "EXPLORER_DEMOS",
    "check_base_for_wavelength",
    "check_first_negative_offset",
    "check_rope_angle",
    "check_shift_trace",
    "encoding_explorer",
]


# ---------------------------------------------------------------------------------------------
# The encoding explorer
# ---------------------------------------------------------------------------------------------


def encoding_explorer(
    num_positions: int = 64, dims: tuple[int, ...] = (8, 16, 32, 64, 128)
) -> widgets.VBox:
    """Pick the encoding, d, a frequency index i and a position m; see sin/cos of frequency i over
    positions and a similarity against n that depends on n - m only. The slider for i runs over
    the d/2 frequencies of the chosen d (its maximum follows d).

    - "sinusoidal": P[m]·P[n] / (d/2); `term` is frequency i's share, cos((n - m)·ω_i).
    - "rotary": the score of one fixed random query rotated to position m with one fixed random key
      rotated to position n (`apply_rotary`), divided by |q||k|; `term` is pair i's score alone,
      divided by the norms of the two pairs: cos((n - m)·ω_i + φ_i), φ_i set by the contents.

    State: `encoding`, `d`, `i`, `m`, `wavelength` (2π·10000^(2i/d), in positions), `similarity`
    (num_positions,) and `term` (num_positions,).
    """
    if num_positions < 2 or not dims or any(d < 2 or d % 2 for d in dims):
        raise ValueError(f"need num_positions >= 2 and even dims >= 2, got {num_positions}, {dims}")
    tables = {d: sinusoid_table(num_positions, d).double().numpy() for d in dims}  # (T, d) each
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, max(dims), generator=gen, dtype=torch.float64)  # one query, one key
    rotated = {}  # d -> (q rotated to every position, k rotated to every position), (T, d) each
    for d in dims:
        qd, kd = q[:d].expand(num_positions, d), k[:d].expand(num_positions, d)
        rotated[d] = (apply_rotary(qd).numpy(), apply_rotary(kd).numpy())
    n = np.arange(num_positions)
    fig = Figure(figsize=(6.4, 4.0))
    ax_wave = fig.add_axes((0.09, 0.58, 0.86, 0.33))
    ax_dot = fig.add_axes((0.09, 0.1, 0.86, 0.33))
    (sin_line,) = ax_wave.plot(
        n, np.zeros_like(n, dtype=float), "-", color="tab:blue", label="P[n, 2i] = sin"
    )
    (cos_line,) = ax_wave.plot(
        n, np.zeros_like(n, dtype=float), "-", color="tab:orange", label="P[n, 2i+1] = cos"
    )
    wave_mark = ax_wave.axvline(0, color="black", linestyle=":")
    ax_wave.set_xlim(-0.5, num_positions - 0.5)
    ax_wave.set_ylim(-1.1, 1.1)
    ticks = list(range(0, num_positions, max(1, num_positions // 4)))
    for ax in (ax_wave, ax_dot):  # few tick labels: text is most of a redraw's cost
        ax.set_xticks(ticks)
        ax.set_yticks([-1, 0, 1])
    ax_wave.tick_params(labelbottom=False)  # the panels share their x axis
    wave_title = ax_wave.set_title("")
    (dot_line,) = ax_dot.plot(
        n,
        np.zeros_like(n, dtype=float),
        "-",
        color="tab:green",
        label="P[m]·P[n] / (d/2), all frequencies",
    )
    (term_line,) = ax_dot.plot(
        n,
        np.zeros_like(n, dtype=float),
        "--",
        color="tab:gray",
        label="frequency i alone: cos((n - m) ω_i)",
    )
    dot_mark = ax_dot.axvline(0, color="black", linestyle=":")
    ax_dot.set_xlim(-0.5, num_positions - 0.5)
    ax_dot.set_ylim(-1.75, 1.1)  # room for the legend below the curves
    ax_dot.set_xlabel("position n")
    ax_dot.legend(loc="lower center", fontsize=8, ncol=2)
    dot_title = ax_dot.set_title("")

    dot_legend = ax_dot.get_legend().get_texts()
    labels = {
        "sinusoidal": ("P[m]·P[n] / (d/2), all frequencies", "frequency i alone: cos((n - m) ω_i)"),
        "rotary": ("q at m · k at n / (|q||k|), all pairs", "pair i alone, over its norms"),
    }

    def draw(encoding: str, d: int, i: int, m: int) -> tuple[Figure, dict[str, Any]]:
        i = min(i, d // 2 - 1)  # d/2 frequencies: i in 0 .. d/2 - 1
        P = tables[d]  # (T, d)
        omega = 10000.0 ** (-2 * i / d)
        if encoding == "sinusoidal":
            similarity = P @ P[m] / (d / 2)  # (T, d) @ (d,) -> (T,)
            term = P[:, 2 * i] * P[m, 2 * i] + P[:, 2 * i + 1] * P[m, 2 * i + 1]  # (T,)
        else:
            Q, K = rotated[d]  # (T, d) each
            similarity = K @ Q[m] / (np.linalg.norm(Q[m]) * np.linalg.norm(K[0]))  # (T,)
            pair = slice(2 * i, 2 * i + 2)
            term = K[:, pair] @ Q[m, pair]  # (T,): pair i's part of the score
            term = term / (np.linalg.norm(Q[m, pair]) * np.linalg.norm(K[0, pair]))
        for text, label in zip(dot_legend, labels[encoding], strict=True):
            text.set_text(label)
        sin_line.set_ydata(P[:, 2 * i])
        cos_line.set_ydata(P[:, 2 * i + 1])
        term_line.set_ydata(term)
        dot_line.set_ydata(similarity)
        wave_mark.set_xdata([m, m])
        dot_mark.set_xdata([m, m])
        wavelength = 2 * math.pi / omega
        wave = "sin, cos" if encoding == "sinusoidal" else "sin, cos of the angle n ω_i"
        wave_title.set_text(f"d = {d}, i = {i}: {wave}; wavelength {wavelength:.1f} positions")
        what = "similarity of position" if encoding == "sinusoidal" else "RoPE score of a query at"
        dot_title.set_text(f"{what} m = {m} with every position n")
        state = {
            "encoding": encoding,
            "d": d,
            "i": i,
            "m": m,
            "wavelength": wavelength,
            "similarity": similarity.copy(),
            "term": term.copy(),
        }
        return fig, state

    controls = {
        "encoding": widgets.Dropdown(
            options=["sinusoidal", "rotary"], value="sinusoidal", description="encoding"
        ),
        "d": widgets.Dropdown(
            options=list(dims), value=dims[min(2, len(dims) - 1)], description="d"
        ),
        "i": widgets.IntSlider(
            value=0,
            min=0,
            max=dims[min(2, len(dims) - 1)] // 2 - 1,  # d/2 frequencies; follows d below
            description="frequency i",
            continuous_update=True,
        ),
        "m": widgets.IntSlider(
            value=num_positions // 2,
            min=0,
            max=num_positions - 1,
            description="position m",
            continuous_update=True,
        ),
    }
    def bound_i(change: dict) -> None:  # frequencies 0 .. d/2 - 1 exist for the chosen d
        controls["i"].max = change["new"] // 2 - 1

    controls["d"].observe(bound_i, names="value")  # before the redraw's observer
    return build_explorer(controls, draw, title="Positions: waves and similarity by offset")


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"encoding": encoding_explorer}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


@self_check
def check_base_for_wavelength(base: Any) -> bool:
    """Exercise 1: the base a rotary/sinusoidal table with d = 128 needs so that its slowest pair
    repeats every 1,000,000 positions."""
    d, wavelength = 128, 1_000_000
    want = (wavelength / (2 * math.pi)) ** (d / (d - 2))  # 2π·base^((d-2)/d) = wavelength
    got = as_number(base, "base")
    return check(
        abs(got - want) <= 0.005 * want,
        "which pair is the slowest, and what is its frequency as a power of the base? Write its "
        "wavelength as a function of the base, set it to 1,000,000 and solve for the base.",
        "Correct! The slowest pair's exponent is (d-2)/d, not 1, so the base must be a little "
        "larger than wavelength/2π. Raising the base stretches every slow wave at once: that is "
        "what Llama 3 (500,000) and the 'NTK-aware' rescaling do.",
    )


@self_check
def check_first_negative_offset(offset: Any) -> bool:
    """Exercise 2: the smallest offset k > 0 at which p_m·p_(m+k) < 0 for the sinusoidal table
    with d = 4."""
    P = sinusoid_table(200, 4).double()  # (200, 4)
    dots = P[1:] @ P[0]  # (199,): p_0·p_k for k = 1..199, which is p_m·p_(m+k) for every m
    want = int((dots < 0).nonzero()[0]) + 1
    got = as_number(offset, "offset")
    return check(
        got == want,
        "with d = 4, p_m·p_n is a sum of two cosines of the offset, one fast (ω_0 = 1) and one "
        "slow (ω_1 = 1/100). Where the fast one is negative, is the slow one still close to 1? "
        "For the sum to drop below 0 the fast one must be very near -1. Angles are in radians.",
        "Correct! The fast cosine is negative already at offset 2, but the slow one is still "
        "almost 1 there and at 3 (where cos 3 = -0.990 is not enough). Only near 7π ≈ 21.99 is "
        "the fast one close enough to -1 to outweigh the slow one, cos(0.22) ≈ 0.976.",
    )


@self_check
def check_rope_angle(angle: Any) -> bool:
    """Exercise 3: with position interpolation by 4 (d = 16, base 10000), the one angle (radians)
    between the query's and the key's pair i = 1 for a query at m = 3000 and a key at n = 1000.
    Either sign is accepted, modulo 2π."""
    m, n, d, i, scale = 3000, 1000, 16, 1, 4
    want = (m / scale - n / scale) * 10000 ** (-2 * i / d)  # positions divided, then rotated
    got = as_number(angle, "angle")
    gap = min(abs(math.remainder(got - s * want, 2 * math.pi)) for s in (1, -1))
    return check(
        gap <= 1e-3,
        "RoPE turns each pair by position·ω_i, with ω_i = 10000^(-2i/d). What positions does "
        "position interpolation hand to the rotation, and what does the score feel of the two "
        "rotations? Give radians (any multiple of 2π may be added).",
        "Correct! Dividing positions by 4 divides every offset by 4: the pair turns as if the "
        "two tokens stood 500 positions apart, an offset the model met in training.",
    )


@self_check
def check_shift_trace(trace: Any) -> bool:
    """Exercise 4 (predict first): the trace of the (16, 16) matrix M with p_m M = p_(m-1) for
    every position m of the sinusoidal table, d = 16."""
    d = 16
    omegas = [10000 ** (-2 * i / d) for i in range(d // 2)]
    want = sum(2 * math.cos(w) for w in omegas)  # one 2 x 2 rotation by -ω_i per pair
    return check(
        abs(as_number(trace, "trace") - want) <= 1e-3,
        "section 8.4: moving one position turns each sin/cos pair by its own angle, and leaves "
        "the other pairs alone. So M is block-diagonal: what is the trace of a 2 x 2 rotation? "
        "You can check your prediction afterwards by solving P[1:] @ M = P[:-1] with "
        "torch.linalg.lstsq on a float64 table of a few thousand positions (the slow pairs must "
        "turn enough to be told apart).",
        "Correct! One fixed matrix moves every position back by one: the same map at position 5 "
        "and at position 500.",
    )
