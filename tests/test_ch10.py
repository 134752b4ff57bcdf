"""Chapter 10: the data, the measurements (per-position loss, head scores, ablation) against
direct references, the two explorers move with their controls, and the self-checks accept right
answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import ch10
from helpers.transformer import TinyGPT

V = 11


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=20).eval()


def test_repeated_sequences_repeat_and_are_seeded():
    a = ch10.repeated_sequences(5, 7, V, torch.Generator().manual_seed(3))
    b = ch10.repeated_sequences(5, 7, V, torch.Generator().manual_seed(3))
    assert a.shape == (5, 14) and a.dtype == torch.int64
    assert torch.equal(a, b) and torch.equal(a[:, :7], a[:, 7:])
    assert 0 <= int(a.min()) and int(a.max()) < V
    with pytest.raises(ValueError, match="half_len"):
        ch10.repeated_sequences(5, 0, V)


def test_periodic_sequences_repeat_with_a_period_in_range():
    x = ch10.periodic_sequences(200, 20, 3, 6, V, torch.Generator().manual_seed(0))
    assert x.shape == (200, 20)
    periods = []
    for row in x.tolist():
        p = next(p for p in range(3, 7) if all(row[t] == row[t - p] for t in range(p, 20)))
        periods.append(p)
    assert set(periods) == {3, 4, 5, 6}  # every period is drawn
    with pytest.raises(ValueError, match="max_period"):
        ch10.periodic_sequences(2, 10, 5, 10)


def test_per_position_loss_matches_a_loop(model):
    tokens = torch.randint(0, V, (4, 9))
    with torch.no_grad():
        got = ch10.per_position_loss(model, tokens)
    assert got.shape == (8,)
    for t in range(8):  # predict token t + 1 from tokens 0..t alone (causality makes it equal)
        with torch.no_grad():
            logits = model(tokens[:, : t + 1])[:, -1].double()  # (4, V)
        want = -torch.log_softmax(logits, -1)[torch.arange(4), tokens[:, t + 1]].mean()
        assert float(got[t]) == pytest.approx(float(want), rel=1e-4, abs=1e-5)
    with pytest.raises(ValueError, match="batch, T"):
        ch10.per_position_loss(model, tokens[0])


def test_diagonal_scores_match_a_loop():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 3, 10, 10, generator=g)
    for offset, first in ((1, 0), (4, 5), (0, 0)):
        got = ch10.diagonal_scores(w, offset, first)
        for h in range(3):
            vals = [float(w[b, h, t, t - offset]) for b in range(2)
                    for t in range(max(first, offset), 10)]
            assert float(got[h]) == pytest.approx(sum(vals) / len(vals))
    with pytest.raises(ValueError, match="no query"):
        ch10.diagonal_scores(w, 10)
    with pytest.raises(ValueError, match="batch, heads, T, T"):
        ch10.diagonal_scores(w[0], 1)


def test_ablate_head_equals_zeroing_that_heads_columns_of_W_o(model):
    tokens = torch.randint(0, V, (2, 8))
    before = model(tokens)
    ref = TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=20).eval()
    ref.load_state_dict(model.state_dict())
    p = 24 // 3
    with torch.no_grad():  # head 2 of block 1 feeds columns 2p..3p-1 of W_o
        ref.blks[1].attention.W_o.weight[:, 2 * p : 3 * p] = 0
    with ch10.ablate_head(model, 1, 2):
        got = model(tokens)
    torch.testing.assert_close(got, ref(tokens))
    assert not torch.allclose(got, before)
    torch.testing.assert_close(model(tokens), before)  # the hook is gone afterwards
    with pytest.raises(ValueError, match="head must be"):
        with ch10.ablate_head(model, 0, 3):
            pass


def test_attention_heads_explorer_shows_each_layer_and_head():
    g = torch.Generator().manual_seed(0)
    L, T = 4, 8
    maps = [torch.softmax(torch.randn(2, T, T, generator=g), -1) for _ in range(3)]
    box = ch10.attention_heads_explorer(maps, L)
    fig = box.figure
    for layer in (2, 1):
        for head in (1, 0):
            box.controls["layer"].value = layer
            box.controls["head"].value = head
            w = maps[layer][head]
            np.testing.assert_allclose(box.state["weights"], w.numpy())
            np.testing.assert_allclose(fig.axes[0].images[0].get_array(), w.numpy())
            prev = np.mean([float(w[t, t - 1]) for t in range(1, T)])
            ind = np.mean([float(w[t, t - L + 1]) for t in range(L, T)])
            assert box.state["prev_score"] == pytest.approx(prev, rel=1e-6)
            assert box.state["induction_score"] == pytest.approx(ind, rel=1e-6)
            assert f"layer {layer}, head {head}" in fig.axes[0].get_title()
    assert box.figure is fig
    with pytest.raises(ValueError, match="half_len"):
        ch10.attention_heads_explorer(maps, T)


def test_sampling_explorer_draws_the_sampling_distribution():
    logits = torch.tensor([1.0, 3.0, -0.5, 2.0, 0.0])
    box = ch10.sampling_explorer(logits)
    bars = box.figure.axes[0].patches
    box.controls["temperature"].value = 0.5
    want = torch.softmax(logits.double() / 0.5, 0)
    np.testing.assert_allclose([b.get_height() for b in bars], want.numpy(), rtol=1e-6)
    assert box.state["kept_mass"] == pytest.approx(1.0)
    box.controls["top_k"].value = 2  # keeps tokens 1 and 3
    kept = want[[1, 3]]
    heights = np.array([b.get_height() for b in bars])
    np.testing.assert_allclose(heights[[1, 3]], (kept / kept.sum()).numpy(), rtol=1e-6)
    assert heights[[0, 2, 4]].sum() == 0
    assert box.state["kept_mass"] == pytest.approx(float(kept.sum()))
    box.controls["temperature"].value = 0.0
    np.testing.assert_allclose([b.get_height() for b in bars], [0, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="vocab"):
        ch10.sampling_explorer(torch.zeros(2, 3))


@pytest.mark.parametrize("name", sorted(ch10.EXPLORER_DEMOS))
def test_demos_build(name):
    box = ch10.EXPLORER_DEMOS[name]()
    assert box.state and box.png


@pytest.mark.parametrize(
    "check,right,wrong",
    [
        (ch10.check_kv_cache_bytes, 2 * 12 * 12 * 64 * 1024 * 4, 12 * 12 * 64 * 1024 * 4),
        (ch10.check_induction_key, 22 - 15 + 1, 22 - 15),
        (ch10.check_top_k_mass,
         float(torch.softmax(torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0], dtype=torch.float64),
                             0)[:2].sum()),
         1.0),
    ],
)
def test_checks(check, right, wrong, capsys):
    assert check(right) is True
    assert "Correct" in capsys.readouterr().out
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "Hint" in out or "hint" in out.lower()
    assert str(right) not in out and f"{right:.3f}" not in out
    assert check(None) is False
    assert "Replace None" in capsys.readouterr().out


def test_top_k_mass_check_accepts_a_float_and_rejects_the_mass_of_one_token(capsys):
    p = torch.softmax(torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0]), 0)
    assert ch10.check_top_k_mass(float(p[:2].sum())) is True
    assert ch10.check_top_k_mass(float(p[0])) is False
    assert math.isfinite(float(p[0]))
