"""Chapter 08: the attention-only models, the encoding explorer and the self-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import ch08
from helpers.explorer import REPLACE_NONE


def _out(check, answer, capsys):
    result = check(answer)
    return result, capsys.readouterr().out


def _sinusoids(T: int, d: int) -> np.ndarray:
    """The sinusoidal table from its formula, in float64: (T, d)."""
    P = np.zeros((T, d))
    for t in range(T):
        for i in range(d // 2):
            P[t, 2 * i] = math.sin(t / 10000 ** (2 * i / d))
            P[t, 2 * i + 1] = math.cos(t / 10000 ** (2 * i / d))
    return P


# --- the table and the models ----------------------------------------------------------------


def test_sinusoid_table_matches_the_formula():
    np.testing.assert_allclose(ch08.sinusoid_table(50, 16).numpy(), _sinusoids(50, 16), atol=1e-5)


def test_reverser_without_positions_cannot_see_order():
    torch.manual_seed(0)
    src = torch.randint(3, 13, (4, 8))
    perm = torch.tensor([5, 2, 7, 0, 1, 6, 3, 4])
    blind = ch08.PositionQueryReverser(13, positions="none").eval()
    with torch.no_grad():  # a shuffled source gives exactly the same outputs
        torch.testing.assert_close(blind(src[:, perm]), blind(src), atol=1e-5, rtol=0)
    for kind in ("sinusoidal", "learned"):
        model = ch08.PositionQueryReverser(13, positions=kind).eval()
        with torch.no_grad():
            out = model(src)
            assert out.shape == (4, 8, 13)
            assert (model(src[:, perm]) - out).abs().max() > 1e-3


def test_reverser_rejects_bad_input():
    with pytest.raises(ValueError, match="positions"):
        ch08.PositionQueryReverser(13, positions="rope")
    model = ch08.PositionQueryReverser(13, max_len=8)
    with pytest.raises(ValueError, match="src"):
        model(torch.zeros(8, dtype=torch.long))
    with pytest.raises(ValueError, match="9 positions"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_offset_task_targets_are_the_previous_token():
    X, Y = ch08.offset_task(20, 7, num_symbols=5, seed=3)
    assert X.shape == Y.shape == (20, 7)
    assert int(X.min()) >= 0 and int(X.max()) < 5
    assert (Y[:, 0] == -100).all()
    assert torch.equal(Y[:, 1:], X[:, :-1])
    X2, _ = ch08.offset_task(20, 7, num_symbols=5, seed=3)
    assert torch.equal(X, X2)
    with pytest.raises(ValueError, match="length"):
        ch08.offset_task(20, 1)


@pytest.mark.parametrize("kind", ["learned", "sinusoidal", "rope"])
def test_offset_attention_is_causal(kind):
    torch.manual_seed(0)
    model = ch08.OffsetAttention(10, num_hiddens=16, positions=kind, max_len=16).eval()
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
    model = ch08.OffsetAttention(10, num_hiddens=16, positions="rope").eval()
    with torch.no_grad():  # the same token everywhere: scores depend on the offset alone
        model(torch.full((1, 12), 4))
    w = model.attention_weights[0]  # (12, 12) causal weights
    # w[m, m] / w[m, m - 1] = exp(score at offset 0 - score at offset 1): the same for every m
    ratios = [w[m, m] / w[m, m - 1] for m in range(1, 12)]
    torch.testing.assert_close(torch.stack(ratios), torch.full((11,), float(ratios[0])))
    with pytest.raises(ValueError, match="positions"):
        ch08.OffsetAttention(10, positions="none")
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(5, dtype=torch.long))


def test_fit_lowers_the_loss():
    torch.manual_seed(0)
    X, Y = ch08.offset_task(200, 6, seed=1)
    model = ch08.OffsetAttention(10, num_hiddens=16, positions="rope")
    losses = ch08.fit(model, X, Y, steps=40, lr=0.03, batch_size=32)
    assert len(losses) == 40 and losses[-1] < 0.8 * losses[0]
    assert not model.training
    with pytest.raises(ValueError, match="same shape"):
        ch08.fit(model, X, Y[:, :3])


# --- the explorer ----------------------------------------------------------------------------


def test_encoding_explorer_draws_the_similarity_of_every_control():
    box = ch08.encoding_explorer(num_positions=40, dims=(8, 32))
    fig = box.figure
    ax_wave, ax_dot = fig.axes
    n = np.arange(40)
    for d in (8, 32):
        box.controls["d"].value = d
        P = _sinusoids(40, d)
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


def _rotate(x: np.ndarray, pos: int) -> np.ndarray:
    """RoPE from its definition, in float64: pair (x[2j], x[2j+1]) turned by pos·10000^(-2j/d)."""
    out = x.copy()
    for j in range(len(x) // 2):
        a = pos * 10000 ** (-2 * j / len(x))
        out[2 * j] = x[2 * j] * math.cos(a) - x[2 * j + 1] * math.sin(a)
        out[2 * j + 1] = x[2 * j] * math.sin(a) + x[2 * j + 1] * math.cos(a)
    return out


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
            want = [_rotate(q, m) @ _rotate(k, n) for n in range(30)]
            np.testing.assert_allclose(
                s["similarity"], np.array(want) / (np.linalg.norm(q) * np.linalg.norm(k)), atol=1e-9
            )
            want_pair = [_rotate(q, m)[4:6] @ _rotate(k, n)[4:6] for n in range(30)]  # i = 2
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


def test_check_slowest_wavelength(capsys):
    want = 2 * math.pi * 10000 ** (62 / 64)  # the last pair, i = 31, of d = 64
    assert _out(ch08.check_slowest_wavelength, want, capsys)[0]
    assert _out(ch08.check_slowest_wavelength, int(round(want)), capsys)[0]
    ok, out = _out(ch08.check_slowest_wavelength, 2 * math.pi * 10000, capsys)
    assert not ok and "Hint" in out and str(int(want)) not in out
    assert _out(ch08.check_slowest_wavelength, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_sinusoid_dot(capsys):
    want = math.cos(3) + math.cos(3 / 100)  # two frequencies, offset 3
    P = _sinusoids(9, 4)
    assert want == pytest.approx(P[5] @ P[8])
    assert _out(ch08.check_sinusoid_dot, want, capsys)[0]
    ok, out = _out(ch08.check_sinusoid_dot, math.cos(3), capsys)
    assert not ok and "Hint" in out and f"{want:.2f}" not in out
    assert _out(ch08.check_sinusoid_dot, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_rope_angle(capsys):
    want = 5 * 10000 ** (-2 / 8)  # 0.5 rad
    assert _out(ch08.check_rope_angle, want, capsys)[0]
    assert _out(ch08.check_rope_angle, torch.tensor(want), capsys)[0]
    ok, out = _out(ch08.check_rope_angle, 5.0, capsys)
    assert not ok and "Hint" in out and "0.5" not in out
    assert _out(ch08.check_rope_angle, None, capsys) == (False, REPLACE_NONE + "\n")


def test_check_positions_and_shuffles(capsys):
    state = torch.random.get_rng_state()
    assert _out(ch08.check_positions_and_shuffles, False, capsys)[0]
    assert torch.equal(torch.random.get_rng_state(), state)  # the reader's seed is untouched
    ok, out = _out(ch08.check_positions_and_shuffles, True, capsys)
    assert not ok and "Hint" in out and "False" not in out
    ok, out = _out(ch08.check_positions_and_shuffles, "no", capsys)
    assert not ok and "True or False" in out
    assert _out(ch08.check_positions_and_shuffles, None, capsys) == (False, REPLACE_NONE + "\n")
