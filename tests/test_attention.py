"""Tests for helpers.attention: masked softmax, scoring modules, the self-attention worked example.

References are independent of the code under test: PyTorch's fused attention, float64 loops over
the textbook formulas, and numbers worked out by hand.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from references import additive_attention_loop, masked_softmax_loop

from helpers.attention import (
    AdditiveAttention,
    DotProductAttention,
    masked_softmax,
    self_attention_steps,
    worked_example,
)

# ---------------------------------------------------------------------------------------------
# masked_softmax
# ---------------------------------------------------------------------------------------------


def test_masked_softmax_without_mask_is_softmax():
    X = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(masked_softmax(X, None), torch.softmax(X, dim=-1))


def test_masked_softmax_one_length_per_example():
    X = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    got = masked_softmax(X, torch.tensor([2, 4]))
    want = masked_softmax_loop(X, [[2, 2, 2], [4, 4, 4]])
    torch.testing.assert_close(got.double(), want, atol=1e-7, rtol=0)
    assert (got[0, :, 2:] == 0).all() and (got[1, :, 4:] == 0).all()  # exactly zero


def test_masked_softmax_one_length_per_query():
    X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    lens = [[1, 3, 4], [2, 2, 1]]
    got = masked_softmax(X, torch.tensor(lens))
    torch.testing.assert_close(got.double(), masked_softmax_loop(X, lens), atol=1e-7, rtol=0)
    assert got[0, 0, 0] == 1.0 and got[1, 2, 0] == 1.0


def test_masked_softmax_accepts_lists_and_whole_floats():
    X = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(3))
    want = masked_softmax(X, torch.tensor([1, 2]))
    torch.testing.assert_close(masked_softmax(X, [1, 2]), want)
    torch.testing.assert_close(masked_softmax(X, torch.tensor([1.0, 2.0])), want)


def test_masked_softmax_row_without_valid_key_is_all_zero():
    X = torch.randn(2, 2, 3, generator=torch.Generator().manual_seed(4))
    got = masked_softmax(X, torch.tensor([[0, 2], [3, 0]]))
    assert torch.equal(got[0, 0], torch.zeros(3)) and torch.equal(got[1, 1], torch.zeros(3))
    assert not torch.isnan(got).any()
    torch.testing.assert_close(got[0, 1].sum(), torch.tensor(1.0))


def test_masked_softmax_lengths_beyond_n_k_mean_no_mask():
    X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(masked_softmax(X, torch.tensor([4, 9])), torch.softmax(X, dim=-1))


def test_masked_softmax_does_not_modify_inputs():
    X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(6))
    lens = torch.tensor([[1, 0, 2], [4, 3, 2]])
    X0, lens0 = X.clone(), lens.clone()
    masked_softmax(X, lens)
    assert torch.equal(X, X0) and torch.equal(lens, lens0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_masked_softmax_low_precision_has_no_nan(dtype):
    g = torch.Generator().manual_seed(7)
    X = (torch.randn(2, 3, 6, generator=g) * 1e4).to(dtype).requires_grad_()
    w = masked_softmax(X, torch.tensor([[0, 3, 9], [6, 1, 0]]))
    (w * torch.arange(6, dtype=dtype)).sum().backward()
    assert w.dtype == dtype
    assert not torch.isnan(w).any() and not torch.isnan(X.grad).any()
    sums = w.float().sum(-1)
    torch.testing.assert_close(sums, torch.tensor([[0.0, 1, 1], [1, 1, 0]]), atol=1e-2, rtol=0)


def test_masked_softmax_gradients_match_finite_differences():
    X = torch.randn(2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    X.requires_grad_()
    lens = torch.tensor([[0, 2, 4], [1, 3, 7]])
    assert torch.autograd.gradcheck(lambda t: masked_softmax(t, lens), (X,))
    masked_softmax(X, lens)[..., 0].sum().backward()
    assert not torch.isnan(X.grad).any()
    assert (X.grad[0, 0] == 0).all()  # a row with no valid key does not depend on X


@pytest.mark.parametrize(
    ("lens", "error", "words"),
    [
        (torch.tensor([1, -1]), ValueError, "non-negative"),
        (torch.tensor([1, 2, 3]), ValueError, "(3,)"),
        (torch.tensor([[1, 2]]), ValueError, "(1, 2)"),
        (torch.ones(2, 3, 1, dtype=torch.long), ValueError, "(2, 3, 1)"),
        (torch.tensor([1.5, 2.0]), ValueError, "whole"),
        (torch.tensor([True, False]), TypeError, "bool"),
    ],
)
def test_masked_softmax_rejects_bad_valid_lens(lens, error, words):
    with pytest.raises(error, match="valid_lens") as info:
        masked_softmax(torch.zeros(2, 3, 4), lens)
    assert words in str(info.value)


def test_masked_softmax_rejects_bad_scores():
    with pytest.raises(ValueError, match=r"X must be 3-D .*\(3, 4\)"):
        masked_softmax(torch.zeros(3, 4), None)
    with pytest.raises(TypeError, match="X must be a floating-point"):
        masked_softmax(torch.zeros(1, 3, 4, dtype=torch.long), None)
    with pytest.raises(TypeError, match="X must be a torch.Tensor"):
        masked_softmax([[[1.0]]], None)


# ---------------------------------------------------------------------------------------------
# DotProductAttention vs PyTorch's fused scaled_dot_product_attention
# ---------------------------------------------------------------------------------------------


def _bool_mask(lens: torch.Tensor, n_q: int, n_k: int) -> torch.Tensor:
    """(B,) or (B, n_q) lengths -> (B, n_q, n_k) boolean mask, True = may attend."""
    lens = lens[:, None].expand(-1, n_q) if lens.dim() == 1 else lens
    return torch.arange(n_k) < lens[..., None]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("per_query", [False, True])
def test_dot_product_attention_matches_torch_sdpa(seed, per_query):
    g = torch.Generator().manual_seed(seed)
    B, n_q, n_k, d, d_v = (int(v) for v in torch.randint(1, 9, (5,), generator=g))
    q = torch.randn(B, n_q, d, generator=g, requires_grad=True)
    k = torch.randn(B, n_k, d, generator=g, requires_grad=True)
    v = torch.randn(B, n_k, d_v, generator=g, requires_grad=True)
    shape = (B, n_q) if per_query else (B,)
    lens = torch.randint(1, n_k + 3, shape, generator=g)  # >= 1 valid key; some > n_k
    attention = DotProductAttention(dropout=0.5).eval()
    got = attention(q, k, v, lens)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=_bool_mask(lens, n_q, n_k))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    grad_out = torch.randn(got.shape, generator=g)
    grads = torch.autograd.grad(got, (q, k, v), grad_out)
    grads_ref = torch.autograd.grad(want, (q, k, v), grad_out)
    for a, b in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_dot_product_attention_without_mask_matches_torch_sdpa():
    g = torch.Generator().manual_seed(10)
    q, k, v = (torch.randn(3, n, 8, generator=g) for n in (4, 6, 6))
    got = DotProductAttention().eval()(q, k, v)
    torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v), atol=1e-6, rtol=0)


def test_dot_product_attention_fully_masked_query_outputs_zero():
    g = torch.Generator().manual_seed(11)
    q, k, v = (
        torch.randn(2, 2, 4, generator=g),
        torch.randn(2, 3, 4, generator=g),
        torch.ones(2, 3, 5),
    )
    attention = DotProductAttention()
    out = attention(q, k, v, torch.tensor([[0, 2], [3, 3]]))
    assert torch.equal(out[0, 0], torch.zeros(5)) and torch.equal(
        attention.attention_weights[0, 0], torch.zeros(3)
    )
    torch.testing.assert_close(out[0, 1], torch.ones(5))


def test_dot_product_attention_stores_weights_before_dropout():
    g = torch.Generator().manual_seed(12)
    q, k, v = (
        torch.randn(2, 3, 4, generator=g),
        torch.randn(2, 5, 4, generator=g),
        torch.randn(2, 5, 2, generator=g),
    )
    attention = DotProductAttention(dropout=0.9).train()
    attention(q, k, v, torch.tensor([2, 5]))
    w = attention.attention_weights
    assert w.shape == (2, 3, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3))
    scores = torch.bmm(q, k.transpose(1, 2)) / 2.0  # sqrt(4) = 2
    torch.testing.assert_close(w[1], torch.softmax(scores[1], dim=-1))


def test_dot_product_attention_does_not_modify_inputs_and_checks_shapes():
    g = torch.Generator().manual_seed(13)
    q, k, v = (
        torch.randn(2, 3, 4, generator=g),
        torch.randn(2, 5, 4, generator=g),
        torch.randn(2, 5, 2, generator=g),
    )
    lens = torch.tensor([1, 3])
    copies = [t.clone() for t in (q, k, v, lens)]
    DotProductAttention()(q, k, v, lens)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v, lens), copies, strict=True))
    with pytest.raises(ValueError, match=r"queries \(2, 3, 4\) and keys \(2, 5, 3\)"):
        DotProductAttention()(q, torch.randn(2, 5, 3), v)
    with pytest.raises(ValueError, match=r"keys \(2, 5, 4\) and values \(2, 4, 2\)"):
        DotProductAttention()(q, k, torch.randn(2, 4, 2))
    with pytest.raises(ValueError, match=r"queries must be 3-D .*\(3, 4\)"):
        DotProductAttention()(q[0], k, v)


# ---------------------------------------------------------------------------------------------
# AdditiveAttention vs a float64 direct formula
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_additive_attention_matches_direct_formula(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    q = torch.randn(2, 3, 20, generator=g)  # queries and keys of different widths
    k = torch.randn(2, 6, 2, generator=g)
    v = torch.randn(2, 6, 4, generator=g)
    lens = torch.tensor([2, 6])
    attention = AdditiveAttention(num_hiddens=8, dropout=0.1).eval()
    got = attention(q, k, v, lens)
    W_q, W_k, w_v = attention.W_q.weight, attention.W_k.weight, attention.w_v.weight[0]
    assert W_q.shape == (8, 20) and W_k.shape == (8, 2) and w_v.shape == (8,)
    want = additive_attention_loop(q, k, v, lens, W_q, W_k, w_v)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-5)
    assert attention.attention_weights.shape == (2, 3, 6)
    assert (attention.attention_weights[0, :, 2:] == 0).all()


def test_additive_attention_equal_keys_give_the_mean_of_valid_values():
    # d2l's toy batch: identical keys score equally, so each query averages its valid values
    queries, keys = torch.randn(2, 1, 20), torch.ones(2, 10, 2)
    values = torch.arange(40, dtype=torch.float32).reshape(1, 10, 4).repeat(2, 1, 1)
    out = AdditiveAttention(num_hiddens=8).eval()(queries, keys, values, torch.tensor([2, 6]))
    # mean of rows 0-1 of [[0,1,2,3],[4,5,6,7],...] and of rows 0-5
    torch.testing.assert_close(out, torch.tensor([[[2.0, 3, 4, 5]], [[10.0, 11, 12, 13]]]))


def test_additive_attention_gradients_flow_and_inputs_unchanged():
    g = torch.Generator().manual_seed(20)
    q = torch.randn(2, 3, 5, generator=g, requires_grad=True)
    k = torch.randn(2, 4, 3, generator=g, requires_grad=True)
    v = torch.randn(2, 4, 2, generator=g, requires_grad=True)
    copies = [t.detach().clone() for t in (q, k, v)]
    AdditiveAttention(6)(q, k, v, torch.tensor([[0, 1, 4], [2, 2, 3]])).sum().backward()
    for t, c in zip((q, k, v), copies, strict=True):
        assert torch.equal(t.detach(), c) and t.grad is not None and not torch.isnan(t.grad).any()


# ---------------------------------------------------------------------------------------------
# The worked example (three 4-d inputs, 4x3 weights), every step against values worked by hand
# ---------------------------------------------------------------------------------------------

X = [[1, 0, 1, 0], [0, 2, 0, 2], [1, 1, 1, 1]]
W_KEY = [[0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 1, 0]]
W_QUERY = [[1, 0, 1], [1, 0, 0], [0, 0, 1], [0, 1, 1]]
W_VALUE = [[0, 2, 0], [0, 3, 0], [1, 0, 3], [1, 1, 0]]

# Worked by hand: each input picks out rows of a weight matrix (x1 = rows 1+3, x2 = 2*(rows 2+4),
# x3 = all rows), then the dot products of each query with the three keys.
HAND_QUERIES = [[1, 0, 2], [2, 2, 2], [2, 1, 3]]
HAND_KEYS = [[0, 1, 1], [4, 4, 0], [2, 3, 1]]
HAND_VALUES = [[1, 2, 3], [2, 8, 0], [2, 6, 3]]
HAND_SCORES = [[2, 4, 4], [4, 16, 12], [4, 12, 10]]


def _hand_softmax_rows() -> list[list[float]]:
    """Softmax of each hand score row, shifted by its maximum: exponents are small integers."""
    e = math.exp
    return [
        [e(-2) / (2 + e(-2)), 1 / (2 + e(-2)), 1 / (2 + e(-2))],  # [2, 4, 4] - 4 = [-2, 0, 0]
        [e(-12) / (1 + e(-12) + e(-4)), 1 / (1 + e(-12) + e(-4)), e(-4) / (1 + e(-12) + e(-4))],
        [e(-8) / (1 + e(-8) + e(-2)), 1 / (1 + e(-8) + e(-2)), e(-2) / (1 + e(-8) + e(-2))],
    ]


# Output 1 in closed form: (e^-2 [1, 2, 3] + [2, 8, 0] + [2, 6, 3]) / (2 + e^-2)
HAND_OUTPUT_1 = [1.93662106, 6.68310531, 1.59506841]
HAND_WEIGHTS_1 = [0.06337894, 0.46831053, 0.46831053]


def _example(dtype=torch.float64):
    return [torch.tensor(t, dtype=dtype) for t in (X, W_QUERY, W_KEY, W_VALUE)]


def test_worked_example_every_step_matches_hand_values():
    x, wq, wk, wv = _example()
    s = self_attention_steps(x, wq, wk, wv)
    f64 = dict(dtype=torch.float64)
    assert torch.equal(s.queries, torch.tensor(HAND_QUERIES, **f64))
    assert torch.equal(s.keys, torch.tensor(HAND_KEYS, **f64))
    assert torch.equal(s.values, torch.tensor(HAND_VALUES, **f64))
    assert torch.equal(s.scores, torch.tensor(HAND_SCORES, **f64))
    weights = torch.tensor(_hand_softmax_rows(), **f64)
    torch.testing.assert_close(s.weights, weights, atol=1e-15, rtol=0)
    torch.testing.assert_close(s.weights[0], torch.tensor(HAND_WEIGHTS_1, **f64), atol=1e-7, rtol=0)
    values = torch.tensor(HAND_VALUES, **f64)
    for i in range(3):
        for j in range(3):
            torch.testing.assert_close(s.weighted_values[i, j], weights[i, j] * values[j])
    e2 = math.exp(-2)
    out1 = [(e2 * 1 + 2 + 2) / (2 + e2), (e2 * 2 + 8 + 6) / (2 + e2), (e2 * 3 + 0 + 3) / (2 + e2)]
    torch.testing.assert_close(s.outputs[0], torch.tensor(out1, **f64), atol=1e-14, rtol=0)
    torch.testing.assert_close(s.outputs[0], torch.tensor(HAND_OUTPUT_1, **f64), atol=1e-7, rtol=0)
    e4, e8, e12 = math.exp(-4), math.exp(-8), math.exp(-12)
    d2, d3 = 1 + e12 + e4, 1 + e8 + e2
    out2 = [(e12 + 2 + 2 * e4) / d2, (2 * e12 + 8 + 6 * e4) / d2, (3 * e12 + 3 * e4) / d2]
    out3 = [(e8 + 2 + 2 * e2) / d3, (2 * e8 + 8 + 6 * e2) / d3, (3 * e8 + 3 * e2) / d3]
    torch.testing.assert_close(s.outputs[1:], torch.tensor([out2, out3], **f64), atol=1e-14, rtol=0)


def test_worked_example_copied_weights_give_the_widely_copied_answer():
    x, wq, wk, wv = _example()
    s = self_attention_steps(x, wq, wk, wv)
    copied = torch.tensor([[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1]], dtype=torch.float64)
    want = torch.tensor([[2.0, 7.0, 1.5], [2.0, 8.0, 0.0], [2.0, 7.8, 0.3]], dtype=torch.float64)
    torch.testing.assert_close(copied @ s.values, want)
    # rows 2 and 3 are the exact weights rounded to one decimal; row 1 rounds to [0.1, 0.5, 0.5]
    # (0.0634 -> 0.1), so the copied row 1 also drops its smallest weight to zero
    torch.testing.assert_close(s.weights[1:].round(decimals=1), copied[1:])
    assert s.weights[0].round(decimals=1).tolist() == [0.1, 0.5, 0.5]
    assert (s.weights - copied).abs().max().item() == pytest.approx(HAND_WEIGHTS_1[0], abs=1e-8)
    # the exact output 1 differs from [2.0, 7.0, 1.5] by more than 0.3 in its second entry
    assert abs(s.outputs[0, 1].item() - 7.0) > 0.3


def test_worked_example_scaled_and_float32():
    x, wq, wk, wv = _example(torch.float32)
    s = self_attention_steps(x, wq, wk, wv, scale=True)
    r3 = math.sqrt(3)
    torch.testing.assert_close(s.scores, torch.tensor(HAND_SCORES) / r3)
    a = math.exp(-2 / r3)  # [2, 4, 4] / sqrt(3), shifted by its maximum: [-2/sqrt(3), 0, 0]
    torch.testing.assert_close(s.weights[0], torch.tensor([a, 1, 1]) / (2 + a))
    assert s.outputs.dtype == torch.float32


def test_self_attention_steps_vectorised_and_batched():
    g = torch.Generator().manual_seed(30)
    x = torch.randn(2, 5, 4, generator=g)
    wq, wk, wv = (
        torch.randn(4, 3, generator=g),
        torch.randn(4, 3, generator=g),
        torch.randn(4, 6, generator=g),
    )
    x0 = x.clone()
    s = self_attention_steps(x, wq, wk, wv, scale=True)
    assert torch.equal(x, x0)
    assert s.weighted_values.shape == (2, 5, 5, 6) and s.outputs.shape == (2, 5, 6)
    want = F.scaled_dot_product_attention(x @ wq, x @ wk, x @ wv)
    torch.testing.assert_close(s.outputs, want, atol=1e-6, rtol=1e-6)
    one = self_attention_steps(x[1], wq, wk, wv, scale=True)
    torch.testing.assert_close(one.outputs, s.outputs[1])


def test_self_attention_steps_rejects_bad_shapes():
    x, wq, wk, wv = _example()
    with pytest.raises(ValueError, match=r"w_key .*\(3, 3\).*x \(3, 4\)"):
        self_attention_steps(x, wq, wk[:3], wv)
    with pytest.raises(ValueError, match=r"w_query \(4, 3\) and w_key \(4, 2\)"):
        self_attention_steps(x, wq, wk[:, :2], wv)
    with pytest.raises(ValueError, match=r"x must be .*\(4,\)"):
        self_attention_steps(x[0], wq, wk, wv)
    with pytest.raises(TypeError, match="w_value must be a floating-point"):
        self_attention_steps(x, wq, wk, wv.long())


def test_worked_example_helper_returns_the_chapter_tensors():
    x, wq, wk, wv = worked_example(torch.float64)
    assert x.tolist() == X and wq.tolist() == W_QUERY and wk.tolist() == W_KEY
    assert wv.tolist() == W_VALUE and x.dtype == torch.float64
    assert worked_example()[0].dtype == torch.float32
