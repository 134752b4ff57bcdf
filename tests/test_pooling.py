"""helpers.pooling against independent references: float64 formulas, statsmodels, hand sums."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from references import (
    gaussian_nw_float64_chunked,
    loo_mse_float64,
    loo_predictions_float64,
    nw_float64,
    nw_weights_float64,
)

from helpers import pooling as P

KERNEL_NAMES = ["gaussian", "boxcar", "constant", "epanechnikov"]


@pytest.fixture
def small():
    g = torch.Generator().manual_seed(0)
    k = torch.sort(torch.rand(40, generator=g) * 5).values
    v = 2 * torch.sin(k) + k**0.8 + 0.5 * torch.randn(40, generator=g)
    q = torch.arange(50) / 10
    return q.float(), k.float(), v.float()


# ---------------------------------------------------------------------------------------------
# kernels and average pooling
# ---------------------------------------------------------------------------------------------


def test_kernel_values_hand_worked():
    u = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    assert torch.allclose(P.gaussian(u), torch.tensor([math.exp(-x * x / 2) for x in u.tolist()]))
    assert P.boxcar(u).tolist() == [0, 0, 1, 1, 1, 0, 0]
    assert P.constant(u).tolist() == [1] * 7
    assert P.epanechnikov(u).tolist() == [0, 0, 0.75, 1, 0.75, 0, 0]
    assert P.boxcar(u).dtype == u.dtype


def test_average_pooling_scalar_and_vector_values():
    v = torch.tensor([1.0, 2.0, 6.0])
    out = P.average_pooling(v, 4)
    assert out.shape == (4,) and torch.equal(out, torch.full((4,), 3.0))
    vv = torch.tensor([[1.0, 0.0], [2.0, 3.0], [6.0, 3.0]])
    out = P.average_pooling(vv, 2)
    assert out.shape == (2, 2) and torch.equal(out, torch.tensor([[3.0, 2.0], [3.0, 2.0]]))
    out[0, 0] = 99  # a fresh tensor, not a view of the input or of another row
    assert vv[0, 0] == 1 and out[1, 0] == 3


def test_average_pooling_bad_input():
    with pytest.raises(ValueError, match="n_queries"):
        P.average_pooling(torch.ones(3), 0)
    with pytest.raises(TypeError, match="n_queries"):
        P.average_pooling(torch.ones(3), 2.0)
    with pytest.raises(ValueError, match="values"):
        P.average_pooling(torch.ones(0), 2)


def test_constant_kernel_is_average_pooling(small):
    q, k, v = small
    assert torch.allclose(P.nadaraya_watson(q, k, v, "constant"), P.average_pooling(v, len(q)))


# ---------------------------------------------------------------------------------------------
# weights and regression against references
# ---------------------------------------------------------------------------------------------


def test_three_point_hand_worked():
    # keys 0, 1, 3; values 1, 2, 4; query 1, sigma 1: log-weights -1/2, 0, -2
    q, k, v = torch.tensor([1.0]), torch.tensor([0.0, 1.0, 3.0]), torch.tensor([1.0, 2.0, 4.0])
    e = [math.exp(-0.5), 1.0, math.exp(-2.0)]
    want = sum(a * b for a, b in zip(e, [1, 2, 4], strict=True)) / sum(e)
    assert P.nadaraya_watson(q, k, v).item() == pytest.approx(want, rel=1e-6)
    assert P.nadaraya_watson(q, k, v).item() == pytest.approx(1.807184, abs=1e-6)
    # boxcar, sigma 1.5: keys 0 and 1 in reach -> (1 + 2) / 2
    assert P.nadaraya_watson(q, k, v, "boxcar", 1.5).item() == pytest.approx(1.5)
    # Epanechnikov, sigma 2: u = 0.5, 0, -1 -> weights 0.75, 1, 0 -> (0.75 + 2) / 1.75
    assert P.nadaraya_watson(q, k, v, "epanechnikov", 2.0).item() == pytest.approx(2.75 / 1.75)
    # constant: (1 + 2 + 4) / 3
    assert P.nadaraya_watson(q, k, v, "constant").item() == pytest.approx(7 / 3)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("h", [0.3, 1.0, 2.5])
def test_weights_match_float64_formula(small, kernel, h):
    q, k, _ = small
    w = P.attention_weights(q, k, kernel, h)
    assert w.shape == (len(q), len(k)) and w.dtype == torch.float32
    ref = nw_weights_float64(q, k, kernel, h)
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-5, atol=1e-7)
    assert torch.allclose(w.sum(dim=1), torch.ones(len(q)))


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nadaraya_watson_matches_float64_formula(small, kernel, dtype):
    q, k, v = (t.to(dtype) for t in small)
    out = P.nadaraya_watson(q, k, v, kernel, 0.7)
    assert out.shape == (len(q),) and out.dtype == dtype
    ref = nw_float64(q, k, v, kernel, 0.7)
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5 if dtype == torch.float32 else 1e-12)


def test_vector_values(small):
    q, k, v = small
    vv = torch.stack([v, -2 * v, torch.ones_like(v)], dim=1)  # (n_k, 3)
    out = P.nadaraya_watson(q, k, vv, "gaussian", 0.5)
    assert out.shape == (len(q), 3)
    np.testing.assert_allclose(out.numpy(), nw_float64(q, k, vv, "gaussian", 0.5), rtol=1e-5)
    assert torch.allclose(out[:, 2], torch.ones(len(q)))


@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("h", [0.25, 0.7, 1.5])
def test_matches_statsmodels_local_constant(small, h):
    """statsmodels' KernelReg(var_type='c', reg_type='lc') uses the Gaussian kernel
    exp(-((x - x_i) / bw)^2 / 2) / sqrt(2 pi): its bandwidth bw *is* our sigma (no factor)."""
    kernel_regression = pytest.importorskip("statsmodels.nonparametric.kernel_regression")
    q, k, v = (t.double() for t in small)
    model = kernel_regression.KernelReg(v.numpy(), k.numpy(), var_type="c", reg_type="lc", bw=[h])
    sm_mean, _ = model.fit(q.numpy())
    np.testing.assert_allclose(P.nadaraya_watson(q, k, v, bandwidth=h).numpy(), sm_mean, rtol=1e-10)


# ---------------------------------------------------------------------------------------------
# numerics: far queries, ties, duplicates, one key, low precision
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_far_query_gaussian_is_finite_and_matches_float64(dtype):
    k = torch.tensor([0.0, 1.0, 2.5, 4.0, 4.99], dtype=dtype)
    v = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=dtype)
    q = torch.tensor([1e3, -1e3, 5.2], dtype=dtype)
    w = P.attention_weights(q, k)
    assert torch.isfinite(w).all()
    naive = torch.exp(-((q[:, None] - k) ** 2) / 2)
    assert (naive[:2].sum(dim=1) == 0).all()  # so exp / sum is 0/0 for the far queries
    np.testing.assert_allclose(w.numpy(), nw_weights_float64(q, k, "gaussian", 1.0), atol=1e-7)
    assert w[0, 4].item() == pytest.approx(1.0) and w[1, 0].item() == pytest.approx(1.0)
    out = P.nadaraya_watson(q, k, v)
    np.testing.assert_allclose(out.numpy(), nw_float64(q, k, v), rtol=1e-6)


def test_far_query_close_keys_share_weight_as_float64_says():
    # far query but two nearest keys 0.001 apart: float64 says weights e^{-(d^2)/2} ratio
    k = torch.tensor([0.0, 2.0, 4.999, 5.0], dtype=torch.float64)
    q = torch.tensor([1000.0], dtype=torch.float64)
    w = P.attention_weights(q, k)
    np.testing.assert_allclose(w.numpy(), nw_weights_float64(q, k, "gaussian", 1.0), rtol=1e-9)
    assert 0 < w[0, 2] < w[0, 3] < 1


@pytest.mark.parametrize("kernel", ["boxcar", "epanechnikov"])
def test_compact_kernel_out_of_reach_falls_back_to_nearest_key(kernel):
    k = torch.tensor([0.0, 1.0, 3.0, 5.0])
    v = torch.tensor([10.0, 20.0, 30.0, 40.0])
    q = torch.tensor([2.0, 7.0, 1.1])  # 2.0 is 1 from keys 1 and 3 (a tie); 7.0 is far
    w = P.attention_weights(q, k, kernel, bandwidth=0.5)
    assert torch.isfinite(w).all()
    assert w[0].tolist() == [0, 0.5, 0.5, 0] and w[1].tolist() == [0, 0, 0, 1]
    assert w[2].tolist() == [0, 1, 0, 0]  # in reach of key 1 only
    assert P.nadaraya_watson(q, k, v, kernel, 0.5).tolist() == pytest.approx([25.0, 40.0, 20.0])


def test_ties_and_duplicate_keys_get_equal_weights():
    k = torch.tensor([1.0, 3.0, 3.0])
    w = P.attention_weights(torch.tensor([2.0]), k, "gaussian", 0.8)
    assert w[0, 0] == pytest.approx(w[0, 1].item()) and w[0, 1] == w[0, 2]
    v = torch.tensor([1.0, 5.0, 5.0])
    assert P.nadaraya_watson(torch.tensor([3.0]), k, v, bandwidth=1e-3).item() == pytest.approx(5.0)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_single_key_returns_its_value(kernel):
    q = torch.tensor([-100.0, 0.0, 3.0, 1e4])
    out = P.nadaraya_watson(q, torch.tensor([1.0]), torch.tensor([7.5]), kernel, 0.3)
    assert out.tolist() == [7.5] * 4


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(small, dtype):
    q, k, v = (t.to(dtype) for t in small)
    out = P.nadaraya_watson(q, k, v, bandwidth=0.5)
    w = P.attention_weights(q, k, bandwidth=0.5)
    assert out.dtype == dtype and w.dtype == dtype
    ref = nw_float64(q.float(), k.float(), v.float(), "gaussian", 0.5)
    tol = 1e-2 if dtype == torch.float16 else 3e-2
    np.testing.assert_allclose(out.float().numpy(), ref, rtol=tol, atol=tol)


def test_integer_inputs_are_promoted():
    out = P.nadaraya_watson(torch.tensor([1, 2]), torch.tensor([0, 1, 3]), torch.tensor([1, 2, 4]))
    assert out.dtype == torch.get_default_dtype()
    np.testing.assert_allclose(out.numpy(), nw_float64([1, 2], [0, 1, 3], [1, 2, 4]), rtol=1e-6)


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
def test_inputs_not_modified(small, kernel):
    q, k, v = small
    copies = [t.clone() for t in small]
    P.attention_weights(q, k, kernel, 0.5)
    P.nadaraya_watson(q, k, v, kernel, 0.5)
    if kernel == "gaussian":
        P.nadaraya_watson(q, k, v, kernel, 0.5, method="fused")
    P.average_pooling(v, 3)
    P.leave_one_out(k, v)
    for t, c in zip(small, copies, strict=True):
        assert torch.equal(t, c)


def test_callable_kernel_and_module_functions():
    q, k = torch.tensor([0.5, 9.0]), torch.tensor([0.0, 1.0, 2.0])
    tri = lambda u: torch.clamp(1 - u.abs(), min=0)  # triangular kernel, d2l's "epanechikov"
    w = P.attention_weights(q, k, tri, 1.0)
    assert w[0].tolist() == pytest.approx([0.5, 0.5, 0.0]) and w[1].tolist() == [0, 0, 1]
    assert torch.equal(
        P.attention_weights(q, k, P.boxcar, 0.7), P.attention_weights(q, k, "boxcar", 0.7)
    )
    assert torch.equal(P.attention_weights(q, k, P.gaussian), P.attention_weights(q, k, "gaussian"))


# ---------------------------------------------------------------------------------------------
# the fused (lifted) path
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_q,n_k", [(1, 1), (7, 3), (300, 1000), (50, 40000)])
@pytest.mark.parametrize("offset", [0.0, -37.0, 1e3])
@pytest.mark.parametrize("h", [0.2, 1.0, 3.0])
def test_fused_equals_direct(n_q, n_k, offset, h):
    g = torch.Generator().manual_seed(n_q * 7 + n_k)
    k = offset + torch.rand(n_k, generator=g) * 5
    v = torch.randn(n_k, generator=g) + offset
    q = offset - 0.5 + torch.rand(n_q, generator=g) * 6
    direct = P.nadaraya_watson(q, k, v, bandwidth=h, method="direct")
    ref = nw_float64(q, k, v, "gaussian", h)
    fused = P.nadaraya_watson(q, k, v, bandwidth=h, method="fused")
    auto = P.nadaraya_watson(q, k, v, bandwidth=h)
    scale = 1 + abs(offset)
    assert torch.allclose(fused, direct, atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(fused.numpy(), ref, atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(auto.numpy(), ref, atol=2e-5 * scale, rtol=0)


def test_fused_refuses_imprecise_inputs():
    k, v = torch.rand(100) * 5, torch.rand(100)
    with pytest.raises(ValueError, match="too far apart"):
        P.nadaraya_watson(torch.tensor([1e3]), k, v, method="fused")
    with pytest.raises(ValueError, match="too far apart"):
        P.nadaraya_watson(torch.tensor([1.0]), k, v, bandwidth=0.01, method="fused")


def test_fused_vector_values_and_float64():
    g = torch.Generator().manual_seed(3)
    k = torch.rand(5000, generator=g, dtype=torch.float64) * 5
    v = torch.randn(5000, 3, generator=g, dtype=torch.float64)
    q = torch.rand(200, generator=g, dtype=torch.float64) * 5
    fused = P.nadaraya_watson(q, k, v, bandwidth=0.4, method="fused")
    assert fused.shape == (200, 3) and fused.dtype == torch.float64
    np.testing.assert_allclose(fused.numpy(), nw_float64(q, k, v, "gaussian", 0.4), atol=1e-12)


def test_auto_mixes_near_fused_and_far_direct_queries():
    g = torch.Generator().manual_seed(4)
    k = torch.rand(30000, generator=g) * 5
    v = torch.sin(k)
    q = torch.cat([torch.rand(200, generator=g) * 5, torch.tensor([1e3, -40.0])])
    out = P.nadaraya_watson(q, k, v)  # 202 * 30000 pairs: the fused path for most queries
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.numpy(), nw_float64(q, k, v), atol=2e-5)


def test_large_problem_does_not_build_the_matrix(monkeypatch):
    """Chunked/fused paths never ask for an (n_q, n_k) block larger than the chunk size."""
    calls = []
    real = P._weights

    def spy(q, k, kernel, h):
        calls.append(len(q) * len(k))
        return real(q, k, kernel, h)

    monkeypatch.setattr(P, "_weights", spy)
    k = torch.rand(200_000) * 5
    q = torch.rand(64) * 5
    P.nadaraya_watson(q, k, torch.sin(k), "epanechnikov", 0.3)
    assert calls and max(calls) <= max(P._CHUNK_ELEMENTS, len(k))
    calls.clear()
    P.nadaraya_watson(q, k, torch.sin(k))  # fused: no weight matrix at all
    assert calls == []


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,err,match",
    [
        ((torch.ones(2, 1), torch.ones(3), torch.ones(3)), ValueError, r"queries.*\(2, 1\)"),
        ((torch.ones(2), torch.ones(3, 1), torch.ones(3)), ValueError, r"keys.*\(3, 1\)"),
        ((torch.ones(2), torch.ones(3), torch.ones(4)), ValueError, r"values.*\(4,\)"),
        ((torch.ones(0), torch.ones(3), torch.ones(3)), ValueError, "non-empty"),
        ((torch.ones(2), torch.ones(0), torch.ones(0)), ValueError, "non-empty"),
        (([1.0], torch.ones(3), torch.ones(3)), TypeError, "queries"),
    ],
)
def test_bad_shapes(args, err, match):
    with pytest.raises(err, match=match):
        P.nadaraya_watson(*args)


@pytest.mark.parametrize("h", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_bandwidth(h):
    with pytest.raises(ValueError, match="bandwidth"):
        P.nadaraya_watson(torch.ones(2), torch.ones(3), torch.ones(3), bandwidth=h)
    with pytest.raises(ValueError, match="bandwidth"):
        P.attention_weights(torch.ones(2), torch.ones(3), bandwidth=h)


def test_bad_kernel_and_method():
    with pytest.raises(ValueError, match="kernel"):
        P.attention_weights(torch.ones(2), torch.ones(3), "tophat")
    with pytest.raises(TypeError, match="kernel"):
        P.attention_weights(torch.ones(2), torch.ones(3), 3)
    with pytest.raises(ValueError, match="method"):
        P.nadaraya_watson(torch.ones(2), torch.ones(3), torch.ones(3), method="fast")
    with pytest.raises(ValueError, match="fused"):
        P.nadaraya_watson(torch.ones(2), torch.ones(3), torch.ones(3), "boxcar", method="fused")


# ---------------------------------------------------------------------------------------------
# leave-one-out and the parametric model
# ---------------------------------------------------------------------------------------------


def test_leave_one_out_hand_worked():
    x, y = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 30.0])
    keys, values = P.leave_one_out(x, y)
    assert keys.tolist() == [[2, 3], [1, 3], [1, 2]]
    assert values.tolist() == [[20, 30], [10, 30], [10, 20]]
    with pytest.raises(ValueError, match="at least 2"):
        P.leave_one_out(torch.ones(1), torch.ones(1))
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        P.leave_one_out(torch.ones(3), torch.ones(2))


@pytest.mark.parametrize("kernel", KERNEL_NAMES)
@pytest.mark.parametrize("h", [0.004, 0.3, 2.0])  # 0.004: some points have no other key in reach
def test_leave_one_out_mse_matches_float64_loop(small, kernel, h):
    _, k, v = small
    got = P.leave_one_out_mse(k, v, h, kernel)
    assert got.shape == ()
    assert float(got) == pytest.approx(loo_mse_float64(k, v, kernel, h), rel=1e-5, abs=1e-7)


def test_leave_one_out_mse_hand_worked_and_batched(small):
    # Three points, Gaussian: each prediction is the softmax-weighted mean of the other two.
    x, y = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64), torch.tensor([1.0, 2.0, 4.0])
    e = math.exp
    p0 = (2 * e(-0.5) + 4 * e(-4.5)) / (e(-0.5) + e(-4.5))
    p1 = (1 * e(-0.5) + 4 * e(-2.0)) / (e(-0.5) + e(-2.0))
    p2 = (1 * e(-4.5) + 2 * e(-2.0)) / (e(-4.5) + e(-2.0))
    want = ((p0 - 1) ** 2 + (p1 - 2) ** 2 + (p2 - 4) ** 2) / 3
    assert float(P.leave_one_out_mse(x, y, 1.0)) == pytest.approx(want, rel=1e-12)
    _, k, v = small
    hs = torch.tensor([0.1, 0.5, 1.5])
    batched = P.leave_one_out_mse(k, v, hs)  # (3,)
    assert batched.shape == (3,)
    for h, got in zip(hs.tolist(), batched.tolist()):
        assert got == pytest.approx(loo_mse_float64(k, v, "gaussian", h), rel=1e-5)
    k0, v0 = k.clone(), v.clone()
    P.leave_one_out_mse(k, v, hs, "boxcar")
    assert torch.equal(k, k0) and torch.equal(v, v0)


def test_leave_one_out_mse_bad_input():
    x = torch.arange(4.0)
    with pytest.raises(ValueError, match="positive"):
        P.leave_one_out_mse(x, x, 0.0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        P.leave_one_out_mse(x, x, torch.ones(2, 2))
    with pytest.raises(TypeError, match="bandwidth"):
        P.leave_one_out_mse(x, x, "wide")
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        P.leave_one_out_mse(x, x[:3], 1.0)
    with pytest.raises(ValueError, match="kernel"):
        P.leave_one_out_mse(x, x, 1.0, "triangle")


def test_nw_module_matches_formula_and_nadaraya_watson(small):
    q, k, v = small
    model = P.NWKernelRegression(w=2.0)
    keys, values = k.repeat(len(q), 1), v.repeat(len(q), 1)  # (n_q, n_k)
    out = model(q, keys, values)
    assert out.shape == (len(q),)
    assert model.attention_weights.shape == (len(q), len(k))
    # w = 1 / sigma
    np.testing.assert_allclose(
        out.detach().numpy(), nw_float64(q, k, v, "gaussian", 0.5), rtol=1e-5
    )
    assert torch.allclose(model(q, k, v), out)  # 1-D keys/values are shared by every query
    w = model.attention_weights
    np.testing.assert_allclose(
        w.detach().numpy(), nw_weights_float64(q, k, "gaussian", 0.5), atol=1e-6
    )


def test_nw_module_gradient_matches_finite_difference(small):
    q, k, v = (t.double() for t in small)
    keys, values = P.leave_one_out(k, v)
    model = P.NWKernelRegression(w=1.3).double()
    loss = ((model(k, keys, values) - v) ** 2).sum() / 2
    loss.backward()

    def f(w):
        y_hat = loo_predictions_float64(k.numpy(), v.numpy(), "gaussian", 1 / w)
        return ((y_hat - v.numpy()) ** 2).sum() / 2

    eps = 1e-6
    fd = (f(1.3 + eps) - f(1.3 - eps)) / (2 * eps)
    assert model.w.grad.item() == pytest.approx(fd, rel=1e-6)


def test_nw_module_default_init_and_bad_shapes():
    torch.manual_seed(0)
    model = P.NWKernelRegression()
    assert model.w.shape == (1,) and 0 <= model.w.item() < 1
    with pytest.raises(ValueError, match=r"\(2, 3\)"):
        model(torch.ones(4), torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="queries"):
        model(torch.ones(4, 1), torch.ones(4, 3), torch.ones(4, 3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(small):  # pragma: no cover - runs on GPU machines
    q, k, v = small
    for method in ("direct", "fused"):
        out = P.nadaraya_watson(q.cuda(), k.cuda(), v.cuda(), method=method)
        assert out.device.type == "cuda"
        assert torch.allclose(out.cpu(), P.nadaraya_watson(q, k, v), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# The FFT path (binned keys convolved with the kernel) against float64 direct sums
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("h", [0.05, 0.5, 2.0])
def test_fft_path_matches_float64_on_many_keys(h):
    g = torch.Generator().manual_seed(0)
    k = torch.rand(200_000, generator=g) * 5
    v = torch.stack([torch.sin(3 * k), k**0.8 + 0.5 * torch.randn(200_000, generator=g)], 1)
    q = torch.cat([torch.linspace(-1, 6, 500), torch.tensor([-1e3, 1e3, 40.0])])
    got = P.nadaraya_watson(q, k, v, bandwidth=h, method="fft")
    want = gaussian_nw_float64_chunked(q, k, v, h)
    assert got.dtype == torch.float32 and got.shape == (503, 2)
    assert (got.double() - want).abs().max() < 1e-5


def test_auto_takes_the_fft_path_for_large_gaussian_problems(monkeypatch):
    from helpers import _nw_fast

    calls = []
    real = _nw_fast.binned_fft
    monkeypatch.setattr(P, "binned_fft", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    g = torch.Generator().manual_seed(1)
    k = torch.rand(50_000, generator=g) * 5
    v = torch.randn(50_000, generator=g)
    q = torch.linspace(0, 5, 200)
    got = P.nadaraya_watson(q, k, v, bandwidth=0.3)
    assert calls == [1]
    want = gaussian_nw_float64_chunked(q, k, v[:, None], 0.3)[:, 0]
    assert (got.double() - want).abs().max() < 1e-5


def test_fft_path_refuses_a_grid_too_fine_for_the_span_and_auto_falls_back():
    k = torch.tensor([0.0, 1e6, 2e6]).repeat(2000)  # span 2e6 at bandwidth 0.01
    v = torch.arange(6000.0)
    q = torch.tensor([1e6 + 0.001])
    with pytest.raises(ValueError, match="grid points"):
        P.nadaraya_watson(q, k, v, bandwidth=0.01, method="fft")
    got = P.nadaraya_watson(q.repeat(1000), k, v, bandwidth=0.01)  # large: auto tries fft first
    assert torch.allclose(got, v[1::3].mean().expand(1000))
