"""Chapter 10: the data, the measurements (per-position loss, head scores, ablation) against
direct references, the two explorers move with their controls, and the self-checks accept right
answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import induction
from helpers.transformer import TinyGPT
from helpers.ui import ch10

V = 11


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=20).eval()


def test_repeated_sequences_repeat_and_are_seeded():
    a = induction.repeated_sequences(5, 7, V, torch.Generator().manual_seed(3))
    b = induction.repeated_sequences(5, 7, V, torch.Generator().manual_seed(3))
    assert a.shape == (5, 14) and a.dtype == torch.int64
    assert torch.equal(a, b) and torch.equal(a[:, :7], a[:, 7:])
    assert 0 <= int(a.min()) and int(a.max()) < V
    with pytest.raises(ValueError, match="half_len"):
        induction.repeated_sequences(5, 0, V)


def test_periodic_sequences_repeat_with_a_period_in_range():
    x = induction.periodic_sequences(200, 20, 3, 6, V, torch.Generator().manual_seed(0))
    assert x.shape == (200, 20)
    periods = []
    for row in x.tolist():
        p = next(p for p in range(3, 7) if all(row[t] == row[t - p] for t in range(p, 20)))
        periods.append(p)
    assert set(periods) == {3, 4, 5, 6}  # every period is drawn
    with pytest.raises(ValueError, match="max_period"):
        induction.periodic_sequences(2, 10, 5, 10)


def test_per_position_loss_matches_a_loop(model):
    tokens = torch.randint(0, V, (4, 9))
    with torch.no_grad():
        got = induction.per_position_loss(model, tokens)
    assert got.shape == (8,)
    for t in range(8):  # predict token t + 1 from tokens 0..t alone (causality makes it equal)
        with torch.no_grad():
            logits = model(tokens[:, : t + 1])[:, -1].double()  # (4, V)
        want = -torch.log_softmax(logits, -1)[torch.arange(4), tokens[:, t + 1]].mean()
        assert float(got[t]) == pytest.approx(float(want), rel=1e-4, abs=1e-5)
    with pytest.raises(ValueError, match="batch, T"):
        induction.per_position_loss(model, tokens[0])


def test_diagonal_scores_match_a_loop():
    g = torch.Generator().manual_seed(0)
    w = torch.rand(2, 3, 10, 10, generator=g)
    for offset, first in ((1, 0), (4, 5), (0, 0)):
        got = induction.diagonal_scores(w, offset, first)
        for h in range(3):
            vals = [float(w[b, h, t, t - offset]) for b in range(2)
                    for t in range(max(first, offset), 10)]
            assert float(got[h]) == pytest.approx(sum(vals) / len(vals))
    with pytest.raises(ValueError, match="no query"):
        induction.diagonal_scores(w, 10)
    with pytest.raises(ValueError, match="batch, heads, T, T"):
        induction.diagonal_scores(w[0], 1)


def test_ablate_head_equals_zeroing_that_heads_columns_of_W_o(model):
    tokens = torch.randint(0, V, (2, 8))
    before = model(tokens)
    ref = TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=20).eval()
    ref.load_state_dict(model.state_dict())
    p = 24 // 3
    with torch.no_grad():  # head 2 of block 1 feeds columns 2p..3p-1 of W_o
        ref.blks[1].attention.W_o.weight[:, 2 * p : 3 * p] = 0
    with induction.ablate_head(model, 1, 2):
        got = model(tokens)
    torch.testing.assert_close(got, ref(tokens))
    assert not torch.allclose(got, before)
    torch.testing.assert_close(model(tokens), before)  # the hook is gone afterwards
    with pytest.raises(ValueError, match="head must be"):
        with induction.ablate_head(model, 0, 3):
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


def test_mean_ablation_equals_a_bias_in_W_o(model):
    """Mean-ablation replaces the head's output by one vector c: the block then adds W_o's
    columns for that head times c at every position, which a reference builds by hand."""
    tokens = torch.randint(0, V, (3, 8))
    p = 24 // 3
    mean = induction.head_output_mean(model, 1, 2, tokens)
    assert mean.shape == (p,)
    seen = []
    hook = model.blks[1].attention.attention.register_forward_hook(
        lambda _m, _i, out: seen.append(out.detach().clone()))
    with torch.no_grad():
        model(tokens)
    hook.remove()
    head_out = seen[0].reshape(3, 3, 8, p)[:, 2]  # (B, T, p): rows b*h + i hold head i
    torch.testing.assert_close(mean, head_out.reshape(-1, p).mean(0))
    ref = TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=20).eval()
    ref.load_state_dict(model.state_dict())
    W_o = ref.blks[1].attention.W_o
    with torch.no_grad():
        extra = W_o.weight[:, 2 * p : 3 * p] @ mean  # (24,) the head's constant contribution
        W_o.weight[:, 2 * p : 3 * p] = 0
        if W_o.bias is None:
            W_o.bias = torch.nn.Parameter(extra)
        else:
            W_o.bias += extra
        with induction.ablate_head(model, 1, 2, mean):
            got = model(tokens)
        torch.testing.assert_close(got, ref(tokens), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="replacement"):
        with induction.ablate_head(model, 1, 2, torch.zeros(p + 1)):
            pass


def test_seen_token_mass_matches_a_loop(model):
    tokens = torch.randint(0, V, (4, 10), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mass, share = induction.seen_token_mass(model, tokens, 7)
        probs = torch.softmax(model(tokens[:, :6]).double(), -1)  # predictions at 0..5
    masses, shares = [], []
    for b in range(4):
        for t in range(6):
            seen = set(tokens[b, : t + 1].tolist())
            masses.append(sum(float(probs[b, t, x]) for x in seen))
            shares.append(len(seen) / V)
    assert mass == pytest.approx(np.mean(masses), rel=1e-5)
    assert share == pytest.approx(np.mean(shares), rel=1e-6)
    with pytest.raises(ValueError, match="stop"):
        induction.seen_token_mass(model, tokens, 11)


def _gqa_bytes():  # a reference written from the definition: K and V, per kv head and position
    per_position = 2 * 8 * 128 * 2  # (K + V) x kv heads x width x bf16 bytes, one layer
    return per_position * 32 * 4096 * 4  # layers, positions, sequences


def _induction_keys():  # a reference by brute search over the printed sequence
    toks = [5, 3, 8, 5, 1, 9, 3, 5, 2, 7, 5, 0, 4, 5]
    return [j for j in range(1, 13) if toks[j - 1] == toks[-1]]


def _runner_up_temperature():  # by hand: two kept tokens, gap 1: 1 / (1 + e^(1/T)) = 0.1
    return 1 / math.log(9)


def _temperature_without_top_k():  # the wrong idea of a softmax over all five logits (NumPy)
    from scipy.optimize import brentq

    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0])

    def runner_up(t):
        e = np.exp(logits / t)
        return e[1] / e.sum() - 0.1

    return brentq(runner_up, 0.05, 5.0, xtol=1e-12)


@pytest.mark.parametrize(
    "check,right,wrongs,malformed",
    [
        (ch10.check_kv_cache_bytes, _gqa_bytes(),
         [_gqa_bytes() * 4, _gqa_bytes() * 2, _gqa_bytes() / 2, _gqa_bytes() / 4, 12345],
         ["lots", [1, 2]]),
        (ch10.check_induction_keys, _induction_keys(),
         [[0, 3, 7, 10], [11], [1, 4, 8], [1, 4, 8, 11, 14], [2]],
         ["one", [1.5, 4]]),
        (ch10.check_top_k_temperature, _runner_up_temperature(),
         [_temperature_without_top_k(), 1 / _runner_up_temperature(), 1 / math.log(10), 0.5,
          -_runner_up_temperature()],
         ["hot", [0.4, 0.5]]),
    ],
)
def test_checks(check, right, wrongs, malformed, capsys):
    assert check(right) is True
    out = capsys.readouterr().out
    assert out.startswith(("Correct", "Consistent"))
    for wrong in wrongs:
        assert check(wrong) is False, wrong
        out = capsys.readouterr().out
        assert "hint" in out.lower()
        shown = [str(right)]
        if isinstance(right, float):
            shown += [f"{right:.3f}", f"{right:.2f}"]
        assert not any(x in out for x in shown), out
    for bad in malformed:
        assert check(bad) is False
        assert "Not yet" in capsys.readouterr().out
    assert check(None) is False
    assert "Replace None" in capsys.readouterr().out


def test_induction_keys_accepts_any_order_and_a_tensor(capsys):
    assert ch10.check_induction_keys([11, 8, 4, 1]) is True
    assert ch10.check_induction_keys(torch.tensor([1, 4, 8, 11])) is True


# Exercise 4: the reader passes a trained one-layer model; the check measures it itself.


def _train_one_layer(make_batch, steps, seed=0):
    """Section 10.3's recipe (AdamW, lr 3e-3, 32 sequences a step) written out here, with one
    layer: the check must accept what the exercise asks the reader to train."""
    torch.manual_seed(seed)
    m = TinyGPT(16, num_hiddens=32, num_heads=2, num_layers=1, max_len=24)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    for _ in range(steps):
        batch = make_batch(gen)  # (32, 24)
        logits = m(batch[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 16), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def _periodic(gen):  # periods 4..12, each sequence its own, from the definition
    tokens = torch.randint(0, 16, (32, 24), generator=gen)
    p = torch.randint(4, 13, (32, 1), generator=gen)
    return tokens.gather(1, torch.arange(24) % p)


def _period_12(gen):
    first = torch.randint(0, 16, (32, 12), generator=gen)
    return torch.cat((first, first), dim=1)


def _second_half_loss(model):
    """float64 reference: mean cross-entropy of the predictions made at positions 11..22 of
    section 10.2's test sequences (256 sequences, seed 1)."""
    first = torch.randint(0, 16, (256, 12), generator=torch.Generator().manual_seed(1))
    tokens = torch.cat((first, first), dim=1).numpy()  # (256, 24)
    with torch.no_grad():
        logits = model(torch.from_numpy(tokens[:, :-1])).double().numpy()  # (256, 23, 16)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    picked = np.take_along_axis(logp, tokens[:, 1:, None], axis=-1)[..., 0]  # (256, 23)
    return float(-picked[:, 11:].mean())


@pytest.mark.slow
def test_one_layer_check_measures_the_readers_model(one_thread, capsys):
    trained = _train_one_layer(_periodic, 600)
    want = _second_half_loss(trained)
    assert 1.0 < want < 2.0  # between the two-layer model's and chance, as the exercise finds
    trained.train()
    assert ch10.check_one_layer_model(trained) is True
    out = capsys.readouterr().out
    assert out.startswith("Consistent") and f"{want:.2f}" in out
    assert trained.training  # the check leaves the model's mode as it found it

    untrained = TinyGPT(16, num_hiddens=32, num_heads=2, num_layers=1, max_len=24).eval()
    shortcut = _train_one_layer(_period_12, 300)
    for wrong in (untrained, shortcut):
        loss = _second_half_loss(wrong)
        assert ch10.check_one_layer_model(wrong) is False
        out = capsys.readouterr().out
        assert "hint" in out.lower() and f"{loss:.2f}" in out
        assert "0.8" not in out and "2.4" not in out  # the accepted band is not printed
    assert _second_half_loss(untrained) > 2.6 and _second_half_loss(shortcut) < 0.5


def test_one_layer_check_rejects_numbers_and_other_models(capsys):
    two_layers = TinyGPT(16, num_hiddens=32, num_heads=2, num_layers=2, max_len=24).eval()
    other_vocab = TinyGPT(11, num_hiddens=32, num_heads=2, num_layers=1, max_len=24).eval()
    for bad, says in ((1.45, "not a number"), ("1.45", "not a number"),
                      ((two_layers, [2.8]), "(model, losses) pair"),
                      (two_layers, "2 layers"), (other_vocab, "vocab_size=16")):
        assert ch10.check_one_layer_model(bad) is False
        out = capsys.readouterr().out
        assert "Not yet" in out and says in out, out
    assert ch10.check_one_layer_model(None) is False
    assert "Replace None" in capsys.readouterr().out
