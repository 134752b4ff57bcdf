"""helpers.scale against independent references: PyTorch's scaled_dot_product_attention (outputs
and gradients) and float64 direct formulas."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from references import linear_attention_loop, masked_attention_float64

from helpers.scale import (
    causal_linear_attention_rnn,
    elu_feature_map,
    flash_attention,
    linear_attention,
    local_attention,
    online_softmax_steps,
    positive_random_features,
    random_feature_map,
)


def _qkv(n_q, n_k, d=16, d_v=None, B=2, H=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, n_q, d, generator=g, dtype=dtype)
    k = torch.randn(B, H, n_k, d, generator=g, dtype=dtype)
    v = torch.randn(B, H, n_k, d_v or d, generator=g, dtype=dtype)
    return q, k, v


@pytest.mark.parametrize("is_causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize(
    "n_q,n_k,block", [(37, 37, 8), (20, 53, 16), (53, 20, 7), (5, 5, 64), (33, 33, 1)]
)
def test_flash_attention_outputs_and_gradients_match_sdpa(n_q, n_k, block, is_causal):
    q, k, v = _qkv(n_q, n_k, d_v=8)
    for t in (q, k, v):
        t.requires_grad_(True)
    got = flash_attention(q, k, v, block_size=block, is_causal=is_causal)
    want = F.scaled_dot_product_attention(q, k, v, is_causal=is_causal)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    grad = torch.randn_like(want)
    g_got = torch.autograd.grad(got, (q, k, v), grad)
    g_want = torch.autograd.grad(want, (q, k, v), grad)
    for a, b in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_flash_attention_float32_and_custom_scale():
    q, k, v = _qkv(70, 70, dtype=torch.float32)
    got = flash_attention(q, k, v, block_size=32, scale=0.3)
    want = F.scaled_dot_product_attention(q, k, v, scale=0.3)
    torch.testing.assert_close(got, want, atol=2e-6, rtol=1e-5)


def test_flash_attention_is_stable_for_huge_scores():
    q, k, v = _qkv(10, 30)
    got = flash_attention(q * 300, k, v, block_size=4)  # scores in the thousands
    want = F.scaled_dot_product_attention(q * 300, k, v)
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want)


def test_flash_attention_rejects_bad_input():
    q, k, v = _qkv(4, 6)
    with pytest.raises(ValueError, match=r"4-D.*\(4, 16\)"):
        flash_attention(q[0, 0], k, v)
    with pytest.raises(ValueError, match="same width"):
        flash_attention(q, k[..., :8], v)
    with pytest.raises(ValueError, match="share batch"):
        flash_attention(q, k, v[:, :, :5])
    with pytest.raises(ValueError, match="at least 1"):
        flash_attention(q, k, v, block_size=0)
    with pytest.raises(TypeError, match="block_size must be an int"):
        flash_attention(q, k, v, block_size=2.5)
    with pytest.raises(TypeError, match="keys must be a torch.Tensor"):
        flash_attention(q, k.tolist(), v)


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("window", [0, 1, 3, 40])
def test_local_attention_equals_a_banded_dense_softmax(window, is_causal):
    q, k, v = _qkv(25, 25, d_v=5)
    i = torch.arange(25)[:, None]
    j = torch.arange(25)[None, :]
    allowed = (j - i).abs() <= window
    if is_causal:
        allowed &= j <= i
    want = masked_attention_float64(q, k, v, allowed, 1 / 4)
    got = local_attention(q, k, v, window, is_causal=is_causal)
    torch.testing.assert_close(got, want)
    if window >= 24 and not is_causal:  # the window covers every key: plain attention
        torch.testing.assert_close(got, F.scaled_dot_product_attention(q, k, v))


def test_local_attention_rejects_bad_window_and_cross_attention():
    q, k, v = _qkv(6, 6)
    with pytest.raises(ValueError, match="window"):
        local_attention(q, k, v, -1)
    q2, k2, v2 = _qkv(6, 8)
    with pytest.raises(ValueError, match="same length"):
        local_attention(q2, k2, v2, 2)


@pytest.mark.parametrize("is_causal", [False, True])
def test_linear_attention_equals_the_direct_formula(is_causal):
    q, k, v = _qkv(9, 9, d=4, d_v=3, B=1, H=2)
    want = linear_attention_loop(q, k, v, elu_feature_map, is_causal)
    torch.testing.assert_close(linear_attention(q, k, v, is_causal=is_causal), want)


@pytest.mark.parametrize("chunk_size", [1, 4, 9, 100])
def test_chunked_causal_linear_attention_equals_the_direct_formula(chunk_size):
    q, k, v = _qkv(9, 9, d=4, d_v=3, B=1, H=2)
    want = linear_attention_loop(q, k, v, elu_feature_map, True)
    got = linear_attention(q, k, v, is_causal=True, chunk_size=chunk_size)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="at least 1"):
        linear_attention(q, k, v, is_causal=True, chunk_size=0)


def test_chunked_causal_linear_attention_holds_one_chunk_of_prefix_states():
    """The largest intermediate is (B, H, chunk, m, d_v), not (B, H, n, m, d_v)."""
    q, k, v = _qkv(64, 64, d=4, d_v=3, B=1, H=1)
    sizes = []
    real_cumsum = torch.cumsum

    def spy(x, dim):
        sizes.append(x.numel())
        return real_cumsum(x, dim=dim)

    torch.cumsum = spy
    try:
        linear_attention(q, k, v, is_causal=True, chunk_size=8)
        chunked = max(sizes)
        sizes.clear()
        linear_attention(q, k, v, is_causal=True)
        whole = max(sizes)
    finally:
        torch.cumsum = real_cumsum
    assert chunked == 8 * 4 * 3 and whole == 64 * 4 * 3


def test_causal_linear_attention_as_an_rnn_equals_the_prefix_sum_form():
    q, k, v = _qkv(12, 12, d=4, d_v=3)
    W = random_feature_map(4, 32, seed=1, dtype=torch.float64)
    phi = lambda x: positive_random_features(x, W)
    torch.testing.assert_close(
        causal_linear_attention_rnn(q, k, v, phi),
        linear_attention(q, k, v, phi, is_causal=True),
    )
    torch.testing.assert_close(
        causal_linear_attention_rnn(q, k, v), linear_attention_loop(q, k, v, elu_feature_map, True)
    )


def test_exact_features_give_softmax_attention():
    # For d = 1, exp(q k) = Σ_n (q k)^n / n!: the features x^n / sqrt(n!), n < 30, make
    # φ(q)·φ(k) equal exp(q k) to float64 precision for |q k| < 1.
    q, k, v = _qkv(6, 8, d=1, d_v=2, B=1, H=1)
    q, k = q * 0.5, k * 0.5
    n = torch.arange(30, dtype=torch.float64)
    fact = torch.exp(torch.lgamma(n + 1))
    phi = lambda x: x**n / fact.sqrt()  # (…, 1) -> (…, 30): φ(q)·φ(k) = Σ (qk)^n / n!
    got = linear_attention(q, k, v, phi)
    want = F.scaled_dot_product_attention(q, k, v, scale=1.0)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-10)


def test_positive_random_features_estimate_the_softmax_kernel():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(20, 8, generator=g, dtype=torch.float64) * 0.4
    k = torch.randn(20, 8, generator=g, dtype=torch.float64) * 0.4
    exact = torch.exp(q @ k.T)  # (20, 20)
    errors = []
    for m in (16, 256, 4096):
        W = random_feature_map(8, m, seed=1, dtype=torch.float64)
        approx = positive_random_features(q, W) @ positive_random_features(k, W).T
        assert (approx > 0).all()  # positive features: never a negative "weight"
        errors.append(float(((approx - exact).abs() / exact).mean()))
    # Monte Carlo error falls like 1/sqrt(m): 16x the features, about 4x smaller error.
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05
    with pytest.raises(ValueError, match="share the width"):
        positive_random_features(q, random_feature_map(5, 4))


def test_online_softmax_steps_end_at_the_softmax_and_rescale_correctly():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(10, generator=g, dtype=torch.float64) * 3
    values = torch.randn(10, 2, generator=g, dtype=torch.float64)
    steps = online_softmax_steps(scores, values, block_size=4)
    assert [s["stop"] for s in steps] == [4, 8, 10]
    for s in steps:  # after each block: the softmax of the keys seen so far, by direct formula
        seen = scores[: s["stop"]]
        assert s["max"] == float(seen.max())
        assert s["sum"] == pytest.approx(float(torch.exp(seen - seen.max()).sum()))
        want = torch.softmax(seen, 0) @ values[: s["stop"]]
        torch.testing.assert_close(s["output"], want)
        torch.testing.assert_close(s["weights"][: s["stop"]], torch.softmax(seen, 0))
    with pytest.raises(ValueError, match=r"\(10,\)"):
        online_softmax_steps(scores, values[:5], 4)


def test_flash_attention_names_mismatched_dtypes_devices_and_a_bad_scale():
    q = torch.randn(1, 1, 4, 8)
    with pytest.raises(TypeError, match="one dtype on one device, got torch.float32/cpu, "
                                        "torch.float64/cpu"):
        flash_attention(q, q.double(), q)
    with pytest.raises(TypeError, match="floating-point"):
        flash_attention(q.long(), q.long(), q.long())
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite number > 0"):
            flash_attention(q, q, q, scale=bad)
    with pytest.raises(TypeError, match="scale must be a number or None"):
        flash_attention(q, q, q, scale="0.5")
