"""Chapter 08: the attention-only models, the encoding explorer and the self-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check
from references import rope_float64, sinusoids_float64

from helpers import positions
from helpers.ui import ch08
from helpers.ui.checks import REPLACE_NONE

# --- the table and the models ----------------------------------------------------------------


def test_sinusoid_table_matches_the_formula():
    table = positions.sinusoid_table(50, 16).numpy()
    np.testing.assert_allclose(table, sinusoids_float64(50, 16), atol=1e-5)


def test_reverser_without_positions_cannot_see_order():
    torch.manual_seed(0)
    src = torch.randint(3, 13, (4, 8))
    perm = torch.tensor([5, 2, 7, 0, 1, 6, 3, 4])
    blind = positions.PositionQueryReverser(13, positions="none").eval()
    with torch.no_grad():  # a shuffled source gives exactly the same outputs
        torch.testing.assert_close(blind(src[:, perm]), blind(src), atol=1e-5, rtol=0)
    for kind in ("sinusoidal", "learned"):
        model = positions.PositionQueryReverser(13, positions=kind).eval()
        with torch.no_grad():
            out = model(src)
            assert out.shape == (4, 8, 13)
            assert (model(src[:, perm]) - out).abs().max() > 1e-3


def test_reverser_rejects_bad_input():
    with pytest.raises(ValueError, match="positions"):
        positions.PositionQueryReverser(13, positions="rope")
    model = positions.PositionQueryReverser(13, max_len=8)
    with pytest.raises(ValueError, match="src"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="9 positions"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_offset_task_targets_are_the_previous_token():
    X, Y = positions.offset_task(20, 7, num_symbols=5, seed=3)
    assert X.shape == Y.shape == (20, 7)
    assert int(X.min()) >= 0 and int(X.max()) < 5
    assert (Y[:, 0] == -100).all()
    assert torch.equal(Y[:, 1:], X[:, :-1])
    X2, _ = positions.offset_task(20, 7, num_symbols=5, seed=3)
    assert torch.equal(X, X2)
    with pytest.raises(ValueError, match="length"):
        positions.offset_task(20, 1)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rope"])
def test_offset_attention_is_causal(kind):
    torch.manual_seed(0)
    model = positions.OffsetAttention(10, num_hiddens=16, positions=kind, max_len=16).eval()
    X = torch.randint(0, 10, (3, 9))
    X_changed = X.clone()
    X_changed[:, 5] = (X[:, 5] + 1) % 10
    with torch.no_grad():
        out, out_changed = model(X), model(X_changed)
    w = model.attention_weights  # (3, 9, 9)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 9))
    assert torch.all(torch.triu(w[0], diagonal=1) == 0)
    torch.testing.assert_close(out[:, :5], out_changed[:, :5])  # the past does not see the future
    assert (out[:, 5:] - out_changed[:, 5:]).abs().max() > 1e-4


def test_offset_attention_rope_scores_depend_on_the_offset_only():
    torch.manual_seed(0)
    model = positions.OffsetAttention(10, num_hiddens=16, positions="rope").eval()
    with torch.no_grad():  # the same token everywhere: scores depend on the offset alone
        model(torch.full((1, 12), 4))
    w = model.attention_weights[0]  # (12, 12) causal weights
    # w[m, m] / w[m, m - 1] = exp(score at offset 0 - score at offset 1): the same for every m
    ratios = [w[m, m] / w[m, m - 1] for m in range(1, 12)]
    torch.testing.assert_close(torch.stack(ratios), torch.full((11,), float(ratios[0])))
    with pytest.raises(ValueError, match="positions"):
        positions.OffsetAttention(10, positions="none")
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(5, dtype=torch.long))


def test_fit_lowers_the_loss():
    torch.manual_seed(0)
    X, Y = positions.offset_task(200, 6, seed=1)
    model = positions.OffsetAttention(10, num_hiddens=16, positions="rope")
    losses = positions.fit(model, X, Y, steps=40, lr=0.03, batch_size=32)
    assert len(losses) == 40 and losses[-1] < 0.8 * losses[0]
    assert not model.training
    with pytest.raises(ValueError, match="same shape"):
        positions.fit(model, X, Y[:, :3])


# --- the explorer ----------------------------------------------------------------------------


def test_encoding_explorer_draws_the_similarity_of_every_control():
    box = ch08.encoding_explorer(num_positions=40, dims=(8, 32))
    fig = box.figure
    ax_wave, ax_dot = fig.axes
    n = np.arange(40)
    for d in (8, 32):
        box.controls["d"].value = d
        P = sinusoids_float64(40, d)
        for i in (0, 3, 9):
            box.controls["i"].value = i
            for m in (0, 17, 39):
                box.controls["m"].value = m
                s = box.state
                i_used = min(i, d // 2 - 1)
                omega = 10000 ** (-2 * i_used / d)
                assert box.figure is fig
                assert (s["d"], s["i"], s["m"]) == (d, i_used, m)
                assert s["wavelength"] == pytest.approx(2 * math.pi / omega)
                want_sim = sum(np.cos((n - m) * 10000 ** (-2 * j / d)) for j in range(d // 2))
                np.testing.assert_allclose(s["similarity"], want_sim / (d / 2), atol=1e-5)
                np.testing.assert_allclose(s["term"], np.cos((n - m) * omega), atol=1e-5)
                sin_line, cos_line = ax_wave.get_lines()[:2]
                np.testing.assert_allclose(sin_line.get_ydata(), P[:, 2 * i_used], atol=1e-5)
                np.testing.assert_allclose(cos_line.get_ydata(), P[:, 2 * i_used + 1], atol=1e-5)
                np.testing.assert_allclose(ax_dot.get_lines()[0].get_ydata(), s["similarity"])
                assert str(m) in ax_dot.get_title() and str(i_used) in ax_wave.get_title()
    with pytest.raises(ValueError, match="even dims"):
        ch08.encoding_explorer(dims=(7,))


def test_encoding_explorer_every_control_changes_the_state_over_its_whole_range():
    box = ch08.encoding_explorer(num_positions=40, dims=(8, 16, 32))
    ctl = box.controls
    assert ctl["i"].max == 32 // 2 - 1  # the default d is the third
    for encoding in ("sinusoidal", "rotary"):
        ctl["encoding"].value = encoding
        for d in (32, 8, 16):  # down, then up: the slider's range follows d both ways
            ctl["d"].value = d
            assert (ctl["i"].min, ctl["i"].max) == (0, d // 2 - 1)
            assert box.state["i"] <= d // 2 - 1
            seen = []
            for i in range(ctl["i"].max + 1):  # every value the slider offers
                ctl["i"].value = i
                s = box.state
                assert s["i"] == i and s["d"] == d
                seen.append((s["wavelength"], s["term"].tobytes()))
            assert len(set(seen)) == len(seen)  # each i draws something new
        sims = []
        for m in range(ctl["m"].min, ctl["m"].max + 1):
            ctl["m"].value = m
            sims.append(box.state["similarity"].tobytes())
        assert len(set(sims)) == len(sims)
    states = []
    for d in ctl["d"].options:
        ctl["d"].value = d
        states.append(box.state["similarity"].tobytes())
    assert len(set(states)) == len(states)
    ctl["encoding"].value = "sinusoidal"
    before = box.state["similarity"].copy()
    ctl["encoding"].value = "rotary"
    assert not np.allclose(before, box.state["similarity"])


def test_encoding_explorer_rotary_scores_match_rotations_by_hand():
    box = ch08.encoding_explorer(num_positions=30, dims=(8, 32))
    box.controls["encoding"].value = "rotary"
    ax_dot = box.figure.axes[1]
    for d in (8, 32):
        box.controls["d"].value = d
        gen = torch.Generator().manual_seed(0)  # the explorer's fixed query and key
        q, k = torch.randn(2, 32, generator=gen, dtype=torch.float64).numpy()[:, :d]
        box.controls["i"].value = 2
        for m in (0, 13, 29):
            box.controls["m"].value = m
            s = box.state
            want = [rope_float64(q, m) @ rope_float64(k, n) for n in range(30)]
            np.testing.assert_allclose(
                s["similarity"], np.array(want) / (np.linalg.norm(q) * np.linalg.norm(k)), atol=1e-9
            )
            want_pair = [  # i = 2
                rope_float64(q, m)[4:6] @ rope_float64(k, n)[4:6] for n in range(30)
            ]
            norms = np.linalg.norm(q[4:6]) * np.linalg.norm(k[4:6])
            np.testing.assert_allclose(s["term"], np.array(want_pair) / norms, atol=1e-9)
            assert s["encoding"] == "rotary"
            assert "RoPE" in ax_dot.get_title() and f"m = {m}" in ax_dot.get_title()
        # relative: moving the query by 5 slides the curve by 5
        box.controls["m"].value = 5
        first = box.state["similarity"]
        box.controls["m"].value = 10
        np.testing.assert_allclose(box.state["similarity"][10:], first[5:25], atol=1e-12)
    box.controls["encoding"].value = "sinusoidal"
    assert "similarity of position" in ax_dot.get_title()


def test_explorer_demos_build():
    for name, make in ch08.EXPLORER_DEMOS.items():
        box = make()
        assert box.png.startswith(b"\x89PNG"), name


# --- the self-checks -------------------------------------------------------------------------


def test_check_base_for_wavelength(capsys):
    # independent: bisect, in float64, the base whose last column of a d = 128 table has the
    # smallest period 1e6 (the period of sin(t ω) is 2π/ω)
    d, target = 128, 1e6
    lo, hi = 1e3, 1e7
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        omega_last = np.float64(mid) ** (-(d - 2) / d)
        lo, hi = (mid, hi) if 2 * math.pi / omega_last < target else (lo, mid)
    want = lo
    assert want == pytest.approx(192_481, rel=1e-5)
    assert run_check(ch08.check_base_for_wavelength, want, capsys)[0]
    assert run_check(ch08.check_base_for_wavelength, want * 1.004, capsys)[0]
    assert run_check(ch08.check_base_for_wavelength, torch.tensor(want), capsys)[0]
    for wrong in (target / (2 * math.pi),  # the exponent taken as 1
                  target ** (d / (d - 2)),  # no 2π
                  (target / (2 * math.pi)) ** (d / (d - 4)),  # pair d/2 - 2 taken as the last
                  (target / (2 * math.pi)) ** ((d - 2) / d),  # exponent upside down
                  500_000.0, 10_000.0, target):
        ok, out = run_check(ch08.check_base_for_wavelength, wrong, capsys)
        assert not ok and "Hint" in out and "192" not in out
    ok, out = run_check(ch08.check_base_for_wavelength, "large", capsys)
    assert not ok and "number" in out
    assert run_check(ch08.check_base_for_wavelength, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_first_negative_offset(capsys):
    # independent: the float64 table from its formula, p_0 · p_k for k = 1, 2, ...
    P = sinusoids_float64(100, 4)
    dots = P[1:] @ P[0]
    want = int(np.argmax(dots < 0)) + 1
    assert want == 22 and dots[want - 1] < -0.02  # well clear of float32 rounding
    assert all(d > 0.005 for d in dots[: want - 1])
    assert run_check(ch08.check_first_negative_offset, want, capsys)[0]
    assert run_check(ch08.check_first_negative_offset, float(want), capsys)[0]
    # where cos(k) first is < 0; nearest integers to π, 3π, 5π; where cos(k/100) turns negative
    for wrong in (2, 3, 9, 16, 21, 23, 158, 0):
        ok, out = run_check(ch08.check_first_negative_offset, wrong, capsys)
        assert not ok and "Hint" in out and "22" not in out
    ok, out = run_check(ch08.check_first_negative_offset, "soon", capsys)
    assert not ok and "number" in out
    assert run_check(ch08.check_first_negative_offset, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_rope_angle(capsys):
    # independent: rotate float64 pairs at the interpolated positions 750 and 250 from the
    # definition and read the angle between the query's and the key's pair 1 off the score
    q, k = np.zeros(16), np.zeros(16)
    q[2], k[2] = 1.0, 1.0  # unit vectors along the first feature of pair 1
    rq, rk = rope_float64(q, 3000 / 4), rope_float64(k, 1000 / 4)
    want = math.atan2(rq[3], rq[2]) - math.atan2(rk[3], rk[2])
    assert math.cos(want) == pytest.approx(rq[2:4] @ rk[2:4])
    assert min(abs(math.remainder(want - s * 500 / 10000 ** (1 / 8), 2 * math.pi))
               for s in (1, -1)) < 1e-9
    rights = (500 / 10000 ** (1 / 8), want, -want, want + 2 * math.pi, torch.tensor(want))
    for right in rights:
        assert run_check(ch08.check_rope_angle, right, capsys)[0]
    w1 = 10000 ** (-2 / 16)
    for wrong in (2000 * w1,  # no interpolation
                  750 * w1, 250 * w1,  # one position alone
                  500 * 10000 ** (-1 / 16),  # ω_i with i/d instead of 2i/d
                  500 * 10000 ** (-2 / 8),  # d = 8's pair 1
                  8000 * w1,  # offset multiplied by 4
                  500.0, 0.0):
        ok, out = run_check(ch08.check_rope_angle, wrong, capsys)
        assert not ok and "Hint" in out and "158" not in out and "1.03" not in out
    ok, out = run_check(ch08.check_rope_angle, [1.0], capsys)
    assert not ok and "number" in out
    assert run_check(ch08.check_rope_angle, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_shift_trace(capsys):
    # independent: solve P[1:] M = P[:-1] on a float64 table by least squares
    T, d = 5000, 16  # long enough for the slow pairs to turn: a well-conditioned table
    t = np.arange(T)[:, None]
    omegas = 10000.0 ** (-np.arange(0, d, 2) / d)
    P = np.zeros((T, d))
    P[:, 0::2], P[:, 1::2] = np.sin(t * omegas), np.cos(t * omegas)
    M = np.linalg.lstsq(P[1:], P[:-1], rcond=None)[0]
    assert np.allclose(P[1:] @ M, P[:-1], atol=1e-8)
    want = float(np.trace(M))
    assert want == pytest.approx(2 * np.cos(omegas).sum(), abs=1e-6)
    assert run_check(ch08.check_shift_trace, want, capsys)[0]
    for wrong in (float(np.cos(omegas).sum()), 16.0, 0.0, float(2 * np.sin(omegas).sum())):
        ok, out = run_check(ch08.check_shift_trace, wrong, capsys)
        assert not ok and "Hint" in out and f"{want:.2f}" not in out
    ok, out = run_check(ch08.check_shift_trace, "sixteen", capsys)
    assert not ok and "number" in out
    assert run_check(ch08.check_shift_trace, None, capsys) == (False, REPLACE_NONE + "\n")
