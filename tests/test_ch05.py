"""Chapter 05: the scoring explorer, the self-checks, and the attention modules' `scores`."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers_for_tests import run_check
from references import pairwise_scores

from helpers import attention
from helpers.attention import (
    SCORING_FUNCTIONS,
    AdditiveAttention,
    DotProductAttention,
    scoring_weights,
)
from helpers.ui import ch05
from helpers.ui.checks import REPLACE_NONE


def _inputs():
    gen = torch.Generator().manual_seed(3)
    queries = torch.randn(4, 2, generator=gen, dtype=torch.float64)  # (n_q, d)
    keys = torch.randn(10, 2, generator=gen, dtype=torch.float64)  # (n_k, d)
    values = torch.randn(10, 3, generator=gen, dtype=torch.float64)  # (n_k, d_v)
    torch.manual_seed(0)
    additive = AdditiveAttention(num_hiddens=5).double().eval()
    additive(queries[None], keys[None], values[None])
    return queries, keys, values, additive


# --- the modules' scores -------------------------------------------------------------------


def test_dot_product_scores_match_the_formula_and_feed_forward():
    q, k, v, _ = _inputs()
    attn = DotProductAttention()
    got = attn.scores(q[None], k[None])[0]
    torch.testing.assert_close(got, pairwise_scores("scaled dot product", q, k, None))
    out = attn(q[None], k[None], v[None])
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q[None], k[None], v[None]))


def test_additive_scores_match_the_formula_and_feed_forward():
    q, k, v, additive = _inputs()
    with torch.no_grad():
        got = additive.scores(q[None], k[None])[0]
        want = pairwise_scores("additive", q, k, additive)
        torch.testing.assert_close(got, want)
        additive(q[None], k[None], v[None], torch.tensor([7]))
    want_w = torch.softmax(want[:, :7], dim=-1)
    torch.testing.assert_close(additive.attention_weights[0, :, :7], want_w)
    assert (additive.attention_weights[0, :, 7:] == 0).all()


def test_scores_reject_bad_shapes():
    with pytest.raises(ValueError, match="same width"):
        DotProductAttention().scores(torch.zeros(1, 2, 3), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="3-D"):
        DotProductAttention().scores(torch.zeros(2, 3), torch.zeros(1, 4, 3))
    with pytest.raises(ValueError, match="batch size"):
        AdditiveAttention(4).scores(torch.zeros(2, 2, 3), torch.zeros(1, 4, 3))


@pytest.mark.parametrize("scoring", SCORING_FUNCTIONS)
def test_scoring_weights_by_name(scoring):
    q, k, _, additive = _inputs()
    with torch.no_grad():
        got = scoring_weights(q[None], k[None], scoring, torch.tensor([6]), additive)[0]
    want = torch.softmax(pairwise_scores(scoring, q, k, additive)[:, :6], dim=-1)
    torch.testing.assert_close(got[:, :6], want)
    assert (got[:, 6:] == 0).all()


def test_scoring_weights_rejects_unknown_names_and_missing_modules():
    q = torch.zeros(1, 2, 3)
    with pytest.raises(ValueError, match="scoring must be one of"):
        scoring_weights(q, q, "cosine")
    with pytest.raises(TypeError, match="AdditiveAttention"):
        scoring_weights(q, q, "additive")


def test_causal_lengths_equal_is_causal():
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 6, 4, generator=gen) for _ in range(3))
    lens = torch.arange(1, 7).expand(2, 6)
    ours = DotProductAttention()(q, k, v, lens)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def test_dropout_keeps_weights_unbiased_in_training_and_is_off_in_eval():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 3, 4, generator=gen), torch.randn(1, 5, 4, generator=gen)
    v = torch.eye(5)[None]  # (1, 5, 5): the output row is the dropped weight row itself
    torch.manual_seed(0)
    attn = DotProductAttention(dropout=0.5).train()
    rows = torch.stack([attn(q, k, v) for _ in range(4000)])  # (4000, 1, 3, 5)
    w = torch.softmax(q @ k.transpose(1, 2) / 2, dim=-1)
    kept = rows[rows != 0]
    assert set(torch.unique(rows[0] / w).round(decimals=4).tolist()) <= {0.0, 2.0}
    assert kept.numel() < rows.numel()  # some weights were dropped
    torch.testing.assert_close(rows.mean(0), w, atol=0.02, rtol=0)
    attn.eval()
    torch.testing.assert_close(attn(q, k, v), w)


# --- the explorer ----------------------------------------------------------------------------


def test_explorer_draws_every_scoring_function_and_masks_from_the_valid_length():
    q, k, v, additive = _inputs()
    box = ch05.scoring_explorer(q, k, v, additive, valid_len=6)
    fig = box.figure
    for scoring in SCORING_FUNCTIONS:
        box.controls["scoring"].value = scoring
        assert box.figure is fig
        want = torch.softmax(pairwise_scores(scoring, q, k, additive)[:, :6], dim=-1)
        w = np.array(box.state["weights"])
        np.testing.assert_allclose(w[:, :6], want.numpy(), atol=1e-10)
        np.testing.assert_allclose(w[:, 6:], 0)
        np.testing.assert_allclose(box.state["outputs"], w @ v.numpy(), atol=1e-10)
        np.testing.assert_allclose(fig.axes[0].images[0].get_array(), w)
    assert box.state["masked"] == [6, 7, 8, 9]
    assert box.state["title"].endswith("keys 6–9 masked")


def test_explorer_title_and_boundary_agree_with_the_0_based_ticks():
    q, k, v, additive = _inputs()
    box = ch05.scoring_explorer(q, k, v, additive)
    ax = box.figure.axes[0]
    assert list(ax.get_xticks()) == list(range(10))
    line = ax.lines[0]
    for n, title, masked in [
        (10, "no key masked", []),
        (9, "key 9 masked", [9]),
        (3, "keys 3–9 masked", list(range(3, 10))),
        (0, "every key masked, all weights 0", list(range(10))),
    ]:
        box.controls["valid_len"].value = n
        assert box.state["title"] == f"scaled dot product: {title}"
        assert ax.get_title() == box.state["title"]
        assert box.state["masked"] == masked
        assert line.get_xdata()[0] == n - 0.5 and line.get_visible() == (n < 10)
        w = np.array(box.state["weights"])
        np.testing.assert_allclose(w[:, n:], 0)
        np.testing.assert_allclose(w.sum(-1), 1.0 if n else 0.0, atol=1e-12)


def test_explorer_rejects_mismatched_inputs():
    q, k, v, additive = _inputs()
    with pytest.raises(ValueError, match="same n_k"):
        ch05.scoring_explorer(q, k, v[:5], additive)
    with pytest.raises(ValueError, match="2-D"):
        ch05.scoring_explorer(q[None], k, v, additive)


def test_demo_builds():
    box = ch05.EXPLORER_DEMOS["scoring"]()
    assert box.controls["valid_len"].value == 6 and box.png.startswith(b"\x89PNG")


# --- the self-checks -------------------------------------------------------------------------


def _np_masked_row(scores, valid_len):
    # independent: NumPy float64 from the definition (softmax over the first valid_len scores)
    s = np.asarray(scores, dtype=np.float64)
    n = min(valid_len, len(s))
    w = np.zeros_like(s)
    w[:n] = np.exp(s[:n]) / np.exp(s[:n]).sum()
    return w


def test_masked_row(capsys):
    e1, e2 = math.exp(1), math.exp(2)
    want = [e1 / (e1 + e2), e2 / (e1 + e2), 0, 0]  # by hand
    np.testing.assert_allclose(_np_masked_row([1, 2, 3, 4], 2), want)
    assert run_check(ch05.check_masked_row, lambda s, n: list(_np_masked_row(s, n)), capsys)[0]
    as_tensor = lambda s, n: torch.tensor(_np_masked_row(s, n))  # noqa: E731
    assert run_check(ch05.check_masked_row, as_tensor, capsys)[0]
    wrong = {
        "no mask": lambda s, n: _np_masked_row(s, len(s)),
        "softmax over all, masked after": lambda s, n: np.where(
            np.arange(len(s)) < n, np.exp(s) / np.exp(s).sum(), 0
        ),
        "uniform for length 0 (d2l)": lambda s, n: (
            np.full(len(s), 1 / len(s)) if n == 0 else _np_masked_row(s, n)
        ),
        "valid ones only, no zeros": lambda s, n: _np_masked_row(s, n)[:n],
        "off by one": lambda s, n: _np_masked_row(s, n + 1),
    }
    for idea, fn in wrong.items():
        ok, out = run_check(ch05.check_masked_row, fn, capsys)
        assert not ok and "Not yet" in out and "0.2689" not in out, (idea, out)
    assert run_check(ch05.check_masked_row, None, capsys) == (False, REPLACE_NONE + "\n")
    numbers = [0.2689, 0.7311, 0, 0]  # numbers, no function
    ok, out = run_check(ch05.check_masked_row, numbers, capsys)
    assert not ok and "function" in out


def test_masked_row_refuses_masked_softmax_and_restores_it(capsys):
    from helpers.attention import masked_softmax

    # a notebook's namespace, where the set-up cell imported masked_softmax: the call exercise 1
    # forbids, through the imported name and through the module
    notebook = {"masked_softmax": masked_softmax, "torch": torch, "attention": attention}
    exec(
        "def pasted(scores, valid_len):\n"
        "    return masked_softmax(torch.tensor([[scores]]), torch.tensor([valid_len]))[0, 0]\n"
        "def via_module(scores, valid_len):\n"
        "    lens = torch.tensor([valid_len])\n"
        "    return attention.masked_softmax(torch.tensor([[scores]]), lens)[0, 0]\n",
        notebook,
    )
    pasted, via_module = notebook["pasted"], notebook["via_module"]
    for fn in (pasted, via_module):
        ok, out = run_check(ch05.check_masked_row, fn, capsys)
        assert not ok and "without masked_softmax" in out
    assert notebook["masked_softmax"] is masked_softmax  # both restored afterwards
    assert attention.masked_softmax is masked_softmax
    torch.testing.assert_close(
        attention.masked_softmax(torch.tensor([[[1.0, 2, 3, 4]]]), torch.tensor([2]))[0, 0],
        torch.tensor(_np_masked_row([1, 2, 3, 4], 2), dtype=torch.float32),
    )


def _numpy_max_weight(d, n_k, copies=1, seed=0, scale=1.0):
    # independent: the same experiment in NumPy float64 from the same torch draws
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(1, 1000, d, generator=gen, dtype=torch.float64).numpy()[0]
    k = torch.randn(1, n_k, d, generator=gen, dtype=torch.float64).numpy()[0]
    s = scale * q @ np.tile(k, (copies, 1)).T  # (1000, n_k * copies)
    w = np.exp(s - s.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).max(1).mean()


def _numpy_max_weight_per_query(d, n_k, copies, seed):
    # chapter 4's set-up (fresh keys for every query) with NumPy's own generator
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1000, 1, d))
    k = np.tile(rng.standard_normal((1000, n_k, d)), (1, copies, 1))  # (1000, n_k * copies, d)
    s = (q * k).sum(-1)  # (1000, n_k * copies)
    w = np.exp(s - s.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)).max(1).mean()


def test_unscaled_max_weight_helper_matches_numpy():
    for n_k, copies in [(10, 1), (1000, 1), (10, 100), (100, 10)]:
        got = attention.unscaled_max_weight(64, n_k=n_k, copies=copies)
        assert got == pytest.approx(_numpy_max_weight(64, n_k, copies), rel=1e-12)
    few, many = _numpy_max_weight(64, 10), _numpy_max_weight(64, 1000)
    assert many < few - 0.1  # more fresh keys crowd the top scores: the weight falls, clearly
    assert attention.unscaled_max_weight(d=2) < 0.6 < attention.unscaled_max_weight()  # scaling
    with pytest.raises(ValueError, match="copies"):
        attention.unscaled_max_weight(64, copies=0)


def test_unscaled_max_weight_accepts_the_reasoned_and_measured_answers(capsys):
    few = _numpy_max_weight(64, 10)
    # from chapter 4's 0.863
    ok, out = run_check(ch05.check_unscaled_max_weight, 0.863 / 100, capsys)
    assert ok and "Correct" in out and f"{_numpy_max_weight(64, 1000):.2f}" in out
    assert run_check(ch05.check_unscaled_max_weight, torch.tensor(few / 100), capsys)[0]
    for seed in range(10):  # the copies measured with other draws, shared keys or per query
        for value in (
            _numpy_max_weight(64, 10, 100, seed=seed),
            _numpy_max_weight_per_query(64, 10, 100, seed),
        ):
            ok, out = run_check(ch05.check_unscaled_max_weight, value, capsys)
            assert ok, (seed, value, out)


def test_unscaled_max_weight_accepts_exactly_the_stated_tolerance(capsys):
    # the centre: the copies measured in NumPy over seeds 0-9; the exercise states 0.0003
    centre = np.mean([_numpy_max_weight(64, 10, 100, seed=s) for s in range(10)])
    few = np.mean([_numpy_max_weight(64, 10, seed=s) for s in range(10)])
    assert centre == pytest.approx(few / 100, rel=1e-9)  # copies divide the weight, exactly
    for offset, accepted in [(-2.9e-4, True), (2.9e-4, True), (-3.1e-4, False), (3.1e-4, False)]:
        assert run_check(ch05.check_unscaled_max_weight, centre + offset, capsys)[0] is accepted


def test_unscaled_max_weight_rejects_the_wrong_ideas(capsys):
    few, fresh = _numpy_max_weight(64, 10), _numpy_max_weight(64, 1000)
    wrong = {
        "same (copies change nothing)": few,
        "up (one key takes it all)": 1.0,
        "divided by 10, not 100": few / 10,
        "divided by 1000": few / 1000,
        "uniform over 1000 keys": 1 / 1000,
        "1000 fresh keys": fresh,
        "1000 fresh keys, over 100": fresh / 100,
        "scaled scores, over 100": _numpy_max_weight(64, 10, 100, scale=1 / 8),
        "d = 16, over 100": _numpy_max_weight(16, 10) / 100,
        "d = 256 (the helper's default), over 100": _numpy_max_weight(256, 10) / 100,
    }
    for idea, value in wrong.items():
        ok, out = run_check(ch05.check_unscaled_max_weight, value, capsys)
        assert not ok and "Hint" in out, (idea, value, out)
        assert f"{few / 100:.5f}" not in out and f"{few / 100:.4f}" not in out
        assert f"{fresh:.2f}" not in out and f"{fresh:.3f}" not in out
    ok, out = run_check(ch05.check_unscaled_max_weight, "down", capsys)
    assert not ok and out.startswith("Not yet:") and "number" in out
    ok, out = run_check(ch05.check_unscaled_max_weight, 86.3, capsys)  # a percentage
    assert not ok and out.startswith("Not yet:") and "between 0 and 1" in out
    assert run_check(ch05.check_unscaled_max_weight, None, capsys) == (False, REPLACE_NONE + "\n")


def test_score_variance_passes_the_derived_and_simulated_answers(capsys):
    assert run_check(ch05.check_score_variance, 2, capsys)[0]  # 64 products of variance 1 * (1 + 1)
    for seed in range(5):  # what a reader following the exercise gets: 10,000 simulated pairs
        gen = torch.Generator().manual_seed(seed)
        q = torch.randn(10_000, 64, generator=gen)
        k = torch.randn(10_000, 64, generator=gen) + 1
        estimate = ((q * k).sum(-1) / 8).var()
        ok, out = run_check(ch05.check_score_variance, estimate, capsys)
        assert ok, (seed, float(estimate), out)
    for wrong in (1, 64, 128):  # centred keys; no 1/√d; no 1/√d and off-centre
        ok, out = run_check(ch05.check_score_variance, wrong, capsys)
        assert not ok and "Hint" in out and "= 2" not in out
        for step in ("mean²", "variance + mean", "E[k_i²]", "(1 + 1)", "= 2"):
            assert step not in out  # the hint points at the idea, not the derivation


def test_causal_lengths(capsys):
    assert run_check(ch05.check_causal_lengths, [[3, 4, 5, 6]], capsys)[0]
    assert run_check(ch05.check_causal_lengths, torch.tensor([[3, 4, 5, 6]]), capsys)[0]
    for wrong in ([[1, 2, 3, 4]], [[2, 3, 4, 5]], [3, 4, 5, 6]):
        ok, out = run_check(ch05.check_causal_lengths, wrong, capsys)
        assert not ok and "[3, 4, 5, 6]" not in out
    ok, out = run_check(ch05.check_causal_lengths, torch.tensor([[3.0, 4, 5, 6]]), capsys)
    assert not ok and "whole numbers" in out
