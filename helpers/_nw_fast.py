"""Fast paths of `helpers.pooling.nadaraya_watson` for the Gaussian kernel (chapter 11).

Both avoid the (n_q, n_k) weight matrix and hand the queries where they would be inaccurate to the
exact path (`direct`, a function of a subset of the queries):

- `fused_or_direct`: Gaussian NW *is* dot-product attention on lifted features, so PyTorch's
  fused attention kernel runs it in O(n_q + n_k) memory (time O(n_q · n_k)).
- `binned_fft`: with 1-D keys the kernel sums are a convolution. Linear binning of the keys on a
  grid of step h / STEPS_PER_BANDWIDTH and an FFT convolution with the sampled kernel give
  numerator and denominator on the grid, interpolated linearly at the queries:
  O(n_k + G log G + n_q). Error bound: binning and interpolation each change a kernel value
  K(u) by at most (Δ/h)² (u² + 1) / 8 relative (Δ the grid step, u the scaled distance), about
  5e-7 (u² + 1) here; queries whose kernel sum is below MIN_KERNEL_SUM (no key within a few
  bandwidths, where u is large and the relative error of the sum is no longer small) take the
  exact path, and so does everything when the grid would exceed MAX_GRID points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# The fused path works on lifted features whose float32 rounding error grows like
# 6e-8 * (max |x - c| / sigma)^2; above these scaled radii the direct path is used instead.
_LIFT_RADIUS = {torch.float32: 16.0, torch.float64: 1e5}
# Keys per fused call on the CPU (the blocks are merged in float64, see `_lifted`).
_KEY_BLOCK = 2**14
# PyTorch's fused CPU attention kernel that also returns the log-sum-exp (None if unavailable).
_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)

STEPS_PER_BANDWIDTH = 512  # grid step Δ = h / 512
CUTOFF = 10.0  # the sampled kernel is cut at 10 bandwidths, where it is exp(-50) ≈ 2e-22
MAX_GRID = 2**23  # more grid points than this: the FFT path is not used
MIN_KERNEL_SUM = 1e-3  # queries with a smaller binned kernel sum take the exact path
BIN_CHUNK = 2**18  # keys binned at a time


def _lifted(q, k, v, h) -> torch.Tensor:
    """Gaussian NW as one fused dot-product attention call on lifted features: (n_q, d_v).

    -(q - k)^2 / 2 = q k - k^2 / 2 - q^2 / 2 and the last term is the same for every key, so it
    cancels in the softmax: [q, 1] . [k, -k^2 / 2] gives the same weights. The caller centres the
    inputs first (see `_fused_or_direct`) so that the products stay small.
    """
    v_mean = v.mean(dim=0)  # (d_v,)
    d_v = v.shape[1]
    # The fused CPU kernel needs 4-D inputs with one common last dimension (CUDA likes 8-multiples)
    d = max(2, d_v)
    if q.device.type == "cuda":
        d = -(-d // 8) * 8
    Q = q.new_zeros(1, 1, len(q), d)  # (1, 1, n_q, d): [q, 1, 0...]
    Q[0, 0, :, 0], Q[0, 0, :, 1] = q / h, 1
    K = k.new_zeros(1, 1, len(k), d)  # (1, 1, n_k, d): [k, -k^2/2, 0...]
    K[0, 0, :, 0], K[0, 0, :, 1] = k / h, -((k / h) ** 2) / 2
    V = v.new_zeros(1, 1, len(k), d)  # (1, 1, n_k, d): [v - mean, 0...]
    V[0, 0, :, :d_v] = v - v_mean
    if _FLASH_CPU is None or q.device.type != "cpu":
        out = F.scaled_dot_product_attention(Q, K, V, scale=1.0)  # (1, 1, n_q, d)
        return out[0, 0, :, :d_v] + v_mean  # (n_q, d_v)
    # On the CPU, run the fused kernel on blocks of keys and merge the blocks' softmaxes through
    # their log-sum-exps in float64: float32 running sums over a million keys drift by ~1e-3.
    num = torch.zeros(len(q), d_v, dtype=torch.float64)  # running sum of exp(lse - m) * out
    den = torch.zeros(len(q), dtype=torch.float64)  # running sum of exp(lse - m)
    m = torch.full((len(q),), -math.inf, dtype=torch.float64)  # running max of lse
    for i in range(0, len(k), _KEY_BLOCK):
        block = slice(i, i + _KEY_BLOCK)
        # out (1, 1, n_q, d), lse (1, 1, n_q)
        out, lse = _FLASH_CPU(Q, K[:, :, block], V[:, :, block], scale=1.0)
        lse = lse[0, 0].double()  # (n_q,)
        m_new = torch.maximum(m, lse)
        old, new = torch.exp(m - m_new), torch.exp(lse - m_new)  # (n_q,), (n_q,)
        num = num * old[:, None] + new[:, None] * out[0, 0, :, :d_v].double()
        den = den * old + new
        m = m_new
    return (num / den[:, None]).to(v.dtype) + v_mean  # (n_q, d_v)


def fused_or_direct(q, k, v, h, direct, strict: bool) -> torch.Tensor:
    """Gaussian NW: fused lifted path for queries near the keys, direct path for the rest.

    `direct(queries)` is the exact path. Inputs are centred on the key mean; the lifted scores'
    rounding error grows like eps * (max |x - c| / h)^2, so queries (or key sets) beyond
    `_LIFT_RADIUS` take the direct path.
    """
    centre = k.mean()
    qc, kc = q - centre, k - centre  # centred (n_q,), (n_k,)
    limit = _LIFT_RADIUS.get(q.dtype, 0.0) * h
    near = qc.abs() <= limit  # (n_q,)
    if not kc.abs().max().item() <= limit:
        near = torch.zeros_like(near)
    if strict and not bool(near.all()):
        raise ValueError(
            "method='fused': queries/keys are too far apart relative to the bandwidth for the "
            "lifted features' precision; use method='auto' or 'direct'"
        )
    if bool(near.all()):
        return _lifted(qc, kc, v, h)
    out = v.new_empty(len(q), v.shape[1])  # (n_q, d_v)
    if bool(near.any()):
        out[near] = _lifted(qc[near], kc, v, h)
    out[~near] = direct(q[~near])
    return out


def binned_fft(q, k, v, h, direct, strict: bool) -> torch.Tensor | None:
    """Gaussian NW by linear binning and FFT convolution: q (n_q,), k (n_k,), v (n_k, d_v) ->
    (n_q, d_v), or None when the grid would be too large (unless strict, then ValueError)."""
    step = h / STEPS_PER_BANDWIDTH
    pad = math.ceil(CUTOFF * STEPS_PER_BANDWIDTH)  # grid points the kernel reaches on each side
    lo, hi = float(k.min()), float(k.max())
    G = math.ceil((hi - lo) / step) + 2 + 2 * pad  # the keys' span plus the kernel's reach
    if G > MAX_GRID:
        if strict:
            raise ValueError(
                f"method='fft': the keys span {hi - lo:.3g}, {G} grid points at step h/"
                f"{STEPS_PER_BANDWIDTH} (more than {MAX_GRID}); use method='auto'"
            )
        return None
    origin = lo - pad * step
    binned = torch.zeros(G, 1 + v.shape[1], dtype=torch.float64, device=k.device)
    for start in range(0, len(k), BIN_CHUNK):  # chunks of keys keep the float64 copies small
        k64, v64 = k[start : start + BIN_CHUNK].double(), v[start : start + BIN_CHUNK].double()
        pos = (k64 - origin) / step  # (chunk,) grid coordinates
        i0 = pos.floor().long().clamp(0, G - 2)
        frac = (pos - i0).unsqueeze(1)  # (chunk, 1) share of the right-hand grid point
        mass = torch.cat([torch.ones_like(frac), v64], dim=1)  # (chunk, 1 + d_v): den, num terms
        binned.index_add_(0, i0, (1 - frac) * mass)  # (G, 1 + d_v)
        binned.index_add_(0, i0 + 1, frac * mass)
    offsets = torch.arange(-pad, pad + 1, dtype=torch.float64, device=k.device)
    kernel = torch.exp(-((offsets / STEPS_PER_BANDWIDTH) ** 2) / 2)  # (2 pad + 1,)
    n_fft = 1 << (G + 2 * pad).bit_length()
    spectrum = torch.fft.rfft(binned, n=n_fft, dim=0) * torch.fft.rfft(kernel, n=n_fft)[:, None]
    sums = torch.fft.irfft(spectrum, n=n_fft, dim=0)[pad : pad + G]  # (G, 1 + d_v) on the grid
    q64 = q.double()
    qpos = (q64 - origin) / step  # (n_q,)
    inside = (qpos >= 0) & (qpos <= G - 1)
    j0 = qpos.clamp(0, G - 1).floor().long().clamp(0, G - 2)
    t = (qpos.clamp(0, G - 1) - j0).unsqueeze(1)  # (n_q, 1)
    at_q = (1 - t) * sums[j0] + t * sums[j0 + 1]  # (n_q, 1 + d_v) interpolated
    den, num = at_q[:, :1], at_q[:, 1:]
    exact = ~inside | (den[:, 0] < MIN_KERNEL_SUM)
    out = (num / den.clamp_min(MIN_KERNEL_SUM)).to(v.dtype)  # (n_q, d_v)
    if bool(exact.any()):
        out[exact] = direct(q[exact])
    return out
