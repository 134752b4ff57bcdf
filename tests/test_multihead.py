"""MultiHeadAttention against torch.nn.MultiheadAttention and an explicit loop over heads."""

import math

import pytest
import torch
from torch import nn

from helpers.attention import MultiHeadAttention


def _pair(embed_dim, num_heads, bias, kdim=None, vdim=None, seed=0):
    """Our module and torch's with the same weights (ours materialised by one call)."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(
        embed_dim, num_heads, bias=bias, batch_first=True, kdim=kdim, vdim=vdim
    )
    if bias:  # torch zeroes biases at init: give them values so the test sees them
        with torch.no_grad():
            ref.in_proj_bias.normal_()
            ref.out_proj.bias.normal_()
    ours = MultiHeadAttention(embed_dim, num_heads, 0.0, bias=bias)
    ours(
        torch.zeros(1, 1, embed_dim),
        torch.zeros(1, 1, kdim or embed_dim),
        torch.zeros(1, 1, vdim or embed_dim),
    )
    E = embed_dim
    with torch.no_grad():
        if ref._qkv_same_embed_dim:
            w_q, w_k, w_v = ref.in_proj_weight.split(E)
        else:
            w_q, w_k, w_v = ref.q_proj_weight, ref.k_proj_weight, ref.v_proj_weight
        ours.W_q.weight.copy_(w_q)
        ours.W_k.weight.copy_(w_k)
        ours.W_v.weight.copy_(w_v)
        ours.W_o.weight.copy_(ref.out_proj.weight)
        if bias:
            ours.W_q.bias.copy_(ref.in_proj_bias[:E])
            ours.W_k.bias.copy_(ref.in_proj_bias[E : 2 * E])
            ours.W_v.bias.copy_(ref.in_proj_bias[2 * E :])
            ours.W_o.bias.copy_(ref.out_proj.bias)
    return ours.eval(), ref.eval()


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("num_heads", [1, 2, 4])
def test_matches_torch_multihead_attention(bias, num_heads):
    ours, ref = _pair(16, num_heads, bias)
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(3, n, 16, generator=g) for n in (5, 7, 7))
    valid_lens = torch.tensor([7, 3, 1])
    padding = torch.arange(7)[None, :] >= valid_lens[:, None]  # (B, n_k), True = ignore
    expected, expected_w = ref(q, k, v, key_padding_mask=padding, average_attn_weights=False)
    got = ours(q, k, v, valid_lens)
    assert got.shape == (3, 5, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert torch.allclose(ours.head_weights, expected_w, atol=1e-5, rtol=0)
    # without a mask too
    expected, _ = ref(q, k, v)
    assert torch.allclose(ours(q, k, v), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("bias", [False, True])
def test_matches_torch_with_other_key_and_value_widths(bias):
    ours, ref = _pair(12, 3, bias, kdim=5, vdim=9)
    g = torch.Generator().manual_seed(2)
    q, k, v = (
        torch.randn(2, 4, 12, generator=g),
        torch.randn(2, 6, 5, generator=g),
        torch.randn(2, 6, 9, generator=g),
    )
    valid_lens = torch.tensor([2, 6])
    padding = torch.arange(6)[None, :] >= valid_lens[:, None]
    expected, _ = ref(q, k, v, key_padding_mask=padding)
    assert torch.allclose(ours(q, k, v, valid_lens), expected, atol=1e-5, rtol=0)


def test_per_query_valid_lens_match_an_attention_mask():
    ours, ref = _pair(8, 2, True)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 4, 8, generator=g)
    lens = torch.tensor([[1, 2, 3, 4], [4, 4, 2, 1]])  # (B, n_q): causal-like per-query lengths
    mask = torch.arange(4)[None, None, :] >= lens[..., None]  # (B, n_q, n_k), True = ignore
    mask = mask.repeat_interleave(2, dim=0)  # (B*h, n_q, n_k), torch's head order
    expected, _ = ref(x, x, x, attn_mask=mask)
    assert torch.allclose(ours(x, x, x, lens), expected, atol=1e-5, rtol=0)


def test_loop_over_heads_equals_batched_result_float64():
    torch.manual_seed(4)
    mha = MultiHeadAttention(12, 3, 0.0, bias=True).double()
    g = torch.Generator().manual_seed(5)
    q = torch.randn(2, 4, 10, generator=g, dtype=torch.float64)
    kv = torch.randn(2, 6, 10, generator=g, dtype=torch.float64)
    valid_lens = torch.tensor([6, 2])
    out = mha(q, kv, kv, valid_lens)
    p = 4
    heads = []
    for i in range(3):
        rows = slice(i * p, (i + 1) * p)
        Q = q @ mha.W_q.weight[rows].T + mha.W_q.bias[rows]  # (B, n_q, p)
        K = kv @ mha.W_k.weight[rows].T + mha.W_k.bias[rows]  # (B, n_k, p)
        V = kv @ mha.W_v.weight[rows].T + mha.W_v.bias[rows]  # (B, n_k, p)
        scores = Q @ K.transpose(1, 2) / math.sqrt(p)  # (B, n_q, n_k)
        scores = scores.masked_fill(
            torch.arange(6)[None, None, :] >= valid_lens[:, None, None], float("-inf")
        )
        w = torch.softmax(scores, dim=-1)
        assert torch.allclose(mha.head_weights[:, i], w, atol=1e-12)
        heads.append(w @ V)  # (B, n_q, p)
        proj = mha.head_projections(i)
        assert torch.equal(proj["W_q"], mha.W_q.weight[rows])
        assert proj["W_o"].shape == (12, p)
    expected = mha.W_o(torch.cat(heads, dim=-1))  # (B, n_q, h*p) -> (B, n_q, 12)
    assert torch.allclose(out, expected, atol=1e-12)
    assert mha.attention_weights.shape == (2 * 3, 4, 6)


def test_reshape_helpers_invert_each_other():
    mha = MultiHeadAttention(12, 4, 0.0)
    X = torch.randn(3, 5, 12)
    Y = mha.transpose_qkv(X)
    assert Y.shape == (3 * 4, 5, 3)
    assert torch.equal(mha.transpose_output(Y), X)
    Z = torch.randn(8, 2, 7)
    assert torch.equal(mha.transpose_qkv(mha.transpose_output(Z)), Z)
    # head i of example b sits at row b * num_heads + i and holds features i*p .. (i+1)*p - 1
    assert torch.equal(Y[1 * 4 + 2], X[1, :, 6:9])


def test_inputs_not_modified_and_gradients_flow():
    mha = MultiHeadAttention(8, 2, 0.0)
    q = torch.randn(2, 3, 8, requires_grad=True)
    lens = torch.tensor([3, 1])
    q0, lens0 = q.detach().clone(), lens.clone()
    mha(q, q, q, lens).sum().backward()
    assert torch.equal(q.detach(), q0) and torch.equal(lens, lens0)
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="num_hiddens"):
        MultiHeadAttention(10, 3, 0.0)
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(8, 0, 0.0)
    with pytest.raises(TypeError, match="num_heads"):
        MultiHeadAttention(8, 2.0, 0.0)
    mha = MultiHeadAttention(8, 2, 0.0)
    x = torch.randn(2, 3, 8)
    with pytest.raises(ValueError, match="valid_lens"):
        mha(x, x, x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="queries"):
        mha(x[0], x, x)
    with pytest.raises(ValueError, match="head index"):
        mha.head_projections(2)
    with pytest.raises(ValueError, match="num_heads"):
        mha.transpose_output(torch.randn(3, 2, 4))


def test_dropout_only_in_training_and_head_weights_before_call():
    mha = MultiHeadAttention(8, 2, 0.5)
    assert mha.head_weights is None
    x = torch.randn(2, 3, 8)
    mha.eval()
    assert torch.equal(mha(x, x, x), mha(x, x, x))
