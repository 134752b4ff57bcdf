"""Attention at scale (chapter 11): tiled attention with an online softmax, local attention and
linear attention from the kernel view.

All functions take 4-D tensors (batch, heads, n, d), as PyTorch's fused attention does.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "causal_linear_attention_rnn",
    "elu_feature_map",
    "flash_attention",
    "linear_attention",
    "local_attention",
    "online_softmax_steps",
    "positive_random_features",
    "random_feature_map",
]


def _check_qkv4(queries, keys, values) -> None:
    """Raise a clear error unless queries, keys, values are compatible (B, H, n, d) tensors."""
    for name, t in (("queries", queries), ("keys", keys), ("values", values)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must be 4-D (batch, heads, n, d), got shape {tuple(t.shape)}"
            )
    if queries.shape[:2] != keys.shape[:2] or keys.shape[:3] != values.shape[:3]:
        raise ValueError(
            "queries, keys and values must share batch and heads, and keys and values their "
            f"length; got {tuple(queries.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}"
        )
    if queries.shape[-1] != keys.shape[-1]:
        raise ValueError(
            f"queries and keys must have the same width, got {tuple(queries.shape)} and "
            f"{tuple(keys.shape)}"
        )
    kinds = {(t.dtype, t.device) for t in (queries, keys, values)}
    if len(kinds) > 1 or not queries.is_floating_point():
        raise TypeError(
            "queries, keys and values must be floating-point tensors of one dtype on one device, "
            f"got {queries.dtype}/{queries.device}, {keys.dtype}/{keys.device}, "
            f"{values.dtype}/{values.device}"
        )


def _check_block_size(block_size) -> None:
    if not isinstance(block_size, int) or isinstance(block_size, bool):
        raise TypeError(f"block_size must be an int, got {type(block_size).__name__}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")


def online_softmax_steps(scores: torch.Tensor, values: torch.Tensor, block_size: int) -> list:
    """The online softmax of one query, block by block: after each block of keys, the running
    max m, the running sum l = Σ exp(s_j - m) and the running output o = Σ exp(s_j - m) v_j / l.

    scores (n_k,), values (n_k, d_v) -> a list of dicts with `stop` (keys seen), `max`, `sum`,
    `output` (d_v,) and `weights` (n_k,): the weights so far, exp(s_j - m) / l for seen keys and 0
    for the rest. After the last block `output` equals softmax(scores) @ values.
    """
    if scores.dim() != 1 or values.dim() != 2 or values.shape[0] != scores.shape[0]:
        raise ValueError(
            f"need scores (n_k,) and values (n_k, d_v), got {tuple(scores.shape)} and "
            f"{tuple(values.shape)}"
        )
    _check_block_size(block_size)
    m = torch.tensor(-math.inf, dtype=scores.dtype)
    total = torch.tensor(0.0, dtype=scores.dtype)
    acc = torch.zeros(values.shape[1], dtype=values.dtype)
    steps = []
    for start in range(0, scores.shape[0], block_size):
        s = scores[start : start + block_size]  # (b,)
        new_m = torch.maximum(m, s.max())
        correction = torch.exp(m - new_m)  # 0 on the first block (m = -inf)
        p = torch.exp(s - new_m)  # (b,)
        total = total * correction + p.sum()
        acc = acc * correction + p @ values[start : start + block_size]  # (b,) @ (b, d_v)
        m = new_m
        stop = start + s.shape[0]
        weights = torch.zeros_like(scores)
        weights[:stop] = torch.exp(scores[:stop] - m) / total
        steps.append(
            {"stop": stop, "max": float(m), "sum": float(total), "output": acc / total,
             "weights": weights}
        )
    return steps


def _query_blocks(n_q: int, block_size: int):
    """(start, stop) of each block of queries."""
    return [(i, min(i + block_size, n_q)) for i in range(0, n_q, block_size)]


def _tile_scores(q, k, rows, start, stop, is_causal, scale):
    """Scores of a query tile against keys start..stop-1, causal entries set to -inf."""
    s = q @ k[:, :, start:stop].transpose(-2, -1) * scale  # (B,H,bq,d) @ (B,H,d,bk) -> (B,H,bq,bk)
    if is_causal:
        cols = torch.arange(start, stop, device=q.device)[None, :]  # (1, bk)
        s = s.masked_fill(cols > rows, -math.inf)
    return s


def _tiled_forward(q, k, v, block_size: int, is_causal: bool, scale: float):
    """Online softmax over key blocks, one block of queries at a time (FlashAttention-2's loop
    order: query blocks outside, each block's output finished on chip and written once): returns
    the output (B, H, n_q, d_v) and every query's log-sum-exp (B, H, n_q); the largest
    intermediate is one (block_size, block_size) tile of scores per batch and head."""
    B, H, n_q, _ = q.shape
    n_k = k.shape[2]
    out = torch.empty(B, H, n_q, v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, n_q, dtype=q.dtype, device=q.device)
    for qs, qe in _query_blocks(n_q, block_size):
        qb = q[:, :, qs:qe]  # (B, H, bq, d)
        rows = torch.arange(qs, qe, device=q.device)[:, None]  # (bq, 1) query positions
        acc = torch.zeros(B, H, qe - qs, v.shape[-1], dtype=q.dtype, device=q.device)
        running_max = torch.full((B, H, qe - qs, 1), -math.inf, dtype=q.dtype, device=q.device)
        running_sum = torch.zeros(B, H, qe - qs, 1, dtype=q.dtype, device=q.device)
        for start in range(0, n_k, block_size):
            if is_causal and start > qe - 1:
                break  # this tile and every later one are fully masked (top-left alignment)
            stop = min(start + block_size, n_k)
            s = _tile_scores(qb, k, rows, start, stop, is_causal, scale)  # (B, H, bq, bk)
            new_max = torch.maximum(running_max, s.amax(dim=-1, keepdim=True))  # (B, H, bq, 1)
            # A row that has seen only masked keys so far keeps max -inf: use 0 (no inf - inf).
            safe_max = torch.where(torch.isinf(new_max), torch.zeros_like(new_max), new_max)
            p = torch.exp(s - safe_max)  # (B, H, bq, bk)
            correction = torch.exp(running_max - safe_max)  # rescales what was summed so far
            running_sum = running_sum * correction + p.sum(dim=-1, keepdim=True)
            acc = acc * correction + p @ v[:, :, start:stop]  # (B,H,bq,bk) @ (B,H,bk,d_v)
            running_max = new_max
        out[:, :, qs:qe] = acc / running_sum
        lse[:, :, qs:qe] = (running_max + torch.log(running_sum)).squeeze(-1)
    return out, lse


class _FlashAttention(torch.autograd.Function):
    """Forward by tiles; backward recomputes each tile's weights from the saved log-sum-exp, so
    neither pass stores an (n_q, n_k) matrix (FlashAttention's recomputation)."""

    @staticmethod
    def forward(ctx, q, k, v, block_size, is_causal, scale):
        out, lse = _tiled_forward(q, k, v, block_size, is_causal, scale)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.block_size, ctx.is_causal, ctx.scale = block_size, is_causal, scale
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        block_size, is_causal, scale = ctx.block_size, ctx.is_causal, ctx.scale
        n_q, n_k = q.shape[2], k.shape[2]
        dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
        # D_i = sum_j P_ij dP_ij = dO_i · O_i, one number per query
        delta = (grad_out * out).sum(dim=-1, keepdim=True)  # (B, H, n_q, 1)
        for qs, qe in _query_blocks(n_q, block_size):
            qb, gb = q[:, :, qs:qe], grad_out[:, :, qs:qe]  # (B, H, bq, d), (B, H, bq, d_v)
            rows = torch.arange(qs, qe, device=q.device)[:, None]
            for start in range(0, n_k, block_size):
                if is_causal and start > qe - 1:
                    break
                stop = min(start + block_size, n_k)
                kb, vb = k[:, :, start:stop], v[:, :, start:stop]
                s = _tile_scores(qb, k, rows, start, stop, is_causal, scale)  # (B, H, bq, bk)
                p = torch.exp(s - lse[:, :, qs:qe, None])  # this tile's exact weights
                dv[:, :, start:stop] += p.transpose(-2, -1) @ gb  # (B,H,bk,bq) @ (B,H,bq,d_v)
                dp = gb @ vb.transpose(-2, -1)  # (B, H, bq, bk)
                ds = p * (dp - delta[:, :, qs:qe])  # softmax backward, (B, H, bq, bk)
                dq[:, :, qs:qe] += ds @ kb * scale
                dk[:, :, start:stop] += ds.transpose(-2, -1) @ qb * scale
        return dq, dk, dv, None, None, None


def flash_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    block_size: int = 64,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(Q Kᵀ · scale) V computed over blocks of `block_size` keys with an online softmax.

    queries (B, H, n_q, d), keys (B, H, n_k, d), values (B, H, n_k, d_v) -> (B, H, n_q, d_v).
    scale defaults to 1/sqrt(d). is_causal: query i sees keys 0..i (top-left aligned, as
    `scaled_dot_product_attention`); tiles entirely above the diagonal are skipped. Beyond inputs
    and output, memory is a few (block_size, block_size) tiles, in the forward and the backward.
    """
    _check_qkv4(queries, keys, values)
    _check_block_size(block_size)
    if scale is None:
        scale = 1.0 / math.sqrt(queries.shape[-1])
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"scale must be a number or None, got {type(scale).__name__}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite number > 0, got {scale}")
    return _FlashAttention.apply(queries, keys, values, block_size, bool(is_causal), float(scale))


def local_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    window: int,
    is_causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Sliding-window attention: query i sees keys j with |i - j| <= window (j <= i if causal).

    Self-attention shapes: queries, keys (B, H, n, d), values (B, H, n, d_v) -> (B, H, n, d_v).
    Memory and time O(n · (2·window + 1)): each query scores only its band of keys.
    """
    _check_qkv4(queries, keys, values)
    if queries.shape[2] != keys.shape[2]:
        raise ValueError(
            "local_attention is self-attention: queries and keys must have the same length, "
            f"got {tuple(queries.shape)} and {tuple(keys.shape)}"
        )
    if not isinstance(window, int) or isinstance(window, bool) or window < 0:
        raise ValueError(f"window must be a non-negative int, got {window!r}")
    if scale is None:
        scale = 1.0 / math.sqrt(queries.shape[-1])
    n = keys.shape[2]
    w = 2 * window + 1
    # Pad the keys with `window` positions on both sides, then take every query's band.
    pad = (0, 0, window, window)
    k_band = torch.nn.functional.pad(keys, pad).unfold(2, w, 1)  # (B, H, n, d, w)
    v_band = torch.nn.functional.pad(values, pad).unfold(2, w, 1)  # (B, H, n, d_v, w)
    s = torch.einsum("bhnd,bhndw->bhnw", queries, k_band) * scale  # (B, H, n, w)
    offsets = torch.arange(-window, window + 1, device=queries.device)  # (w,) key j = i + offset
    positions = torch.arange(n, device=queries.device)[:, None] + offsets  # (n, w)
    invalid = (positions < 0) | (positions >= n)
    if is_causal:
        invalid = invalid | (offsets > 0)
    s = s.masked_fill(invalid, -math.inf)
    weights = torch.softmax(s, dim=-1)  # (B, H, n, w); the query itself is always valid
    return torch.einsum("bhnw,bhndw->bhnd", weights, v_band)


# ---------------------------------------------------------------------------------------------
# Linear attention: exp(q·k) replaced by a feature map φ(q)·φ(k)
# ---------------------------------------------------------------------------------------------


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = elu(x) + 1 (Katharopoulos et al., 2020): positive, cheap, not a softmax kernel."""
    return torch.nn.functional.elu(x) + 1


def random_feature_map(d: int, num_features: int, seed: int = 0, dtype=torch.float32):
    """Gaussian projections W (num_features, d) for `positive_random_features`."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_features, d, generator=g, dtype=dtype)


def positive_random_features(x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Positive random features (Performer, FAVOR+): φ(x) = exp(W x - ‖x‖²/2) / sqrt(m).

    E[φ(q)·φ(k)] = exp(q·k) for W with standard normal rows, so φ(q)·φ(k) estimates the
    softmax kernel. x (..., d), W (m, d) -> (..., m).
    """
    if x.shape[-1] != W.shape[-1]:
        raise ValueError(f"x (..., {x.shape[-1]}) and W {tuple(W.shape)} must share the width d")
    proj = x @ W.T.to(x)  # (..., d) @ (d, m) -> (..., m)
    return torch.exp(proj - (x**2).sum(-1, keepdim=True) / 2) / math.sqrt(W.shape[0])


def linear_attention(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    feature_map=elu_feature_map,
    is_causal: bool = False,
    eps: float = 1e-12,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Attention with the kernel φ(q)·φ(k) in place of exp(q·k): O(n · m · d_v) time, no (n, n)
    matrix.

    out_i = φ(q_i) Σ_j φ(k_j)ᵀ v_j / φ(q_i) Σ_j φ(k_j)ᵀ, the sums over all j (or j <= i if
    is_causal, as prefix sums). queries (B, H, n_q, d), keys (B, H, n_k, d),
    values (B, H, n_k, d_v); m is the feature map's width.

    Memory: without is_causal, one (m, d_v) sum per batch and head. With is_causal and
    chunk_size None, every prefix sum S_i is materialised at once: a (B, H, n, m, d_v) tensor,
    n times the state of the recurrent form (`causal_linear_attention_rnn`). With a chunk_size,
    the prefix sums are taken `chunk_size` positions at a time and the (m, d_v) state carried
    from chunk to chunk: (B, H, chunk_size, m, d_v) at a time, same result.
    """
    _check_qkv4(queries, keys, values)
    if is_causal and queries.shape[2] != keys.shape[2]:
        raise ValueError("causal linear attention needs as many queries as keys, got "
                         f"{tuple(queries.shape)} and {tuple(keys.shape)}")
    if chunk_size is not None:
        _check_block_size(chunk_size)
    phi_q, phi_k = feature_map(queries), feature_map(keys)  # (B, H, n, m)
    if not is_causal:
        kv = phi_k.transpose(-2, -1) @ values  # (B,H,m,n) @ (B,H,n,d_v) -> (B,H,m,d_v)
        z = phi_k.sum(dim=2)  # (B, H, m)
        num = phi_q @ kv  # (B, H, n_q, d_v)
        den = (phi_q * z[:, :, None]).sum(-1, keepdim=True)  # (B, H, n_q, 1)
        return num / (den + eps)
    n = phi_k.shape[2]
    step = n if chunk_size is None else chunk_size
    S = torch.zeros(*phi_k.shape[:2], phi_k.shape[-1], values.shape[-1],
                    dtype=values.dtype, device=values.device)  # (B, H, m, d_v) carried state
    z0 = torch.zeros_like(phi_k[:, :, 0])  # (B, H, m)
    outs = []
    for a in range(0, n, step):
        chunk = slice(a, a + step)
        fk, fq, vb = phi_k[:, :, chunk], phi_q[:, :, chunk], values[:, :, chunk]  # c positions
        kv = S[:, :, None] + torch.cumsum(fk[..., :, None] * vb[..., None, :], dim=2)  # (B,H,c,m,v)
        z = z0[:, :, None] + torch.cumsum(fk, dim=2)  # (B, H, c, m)
        num = (fq[..., None] * kv).sum(-2)  # (B, H, c, d_v)
        den = (fq * z).sum(-1, keepdim=True)  # (B, H, c, 1)
        outs.append(num / (den + eps))
        S, z0 = kv[:, :, -1], z[:, :, -1]
    return torch.cat(outs, dim=2)  # (B, H, n, d_v)


def causal_linear_attention_rnn(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    feature_map=elu_feature_map,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Causal linear attention as a recurrent network with an (m, d_v) state (chapter 7's view):

    S_t = S_{t-1} + φ(k_t)ᵀ v_t,  z_t = z_{t-1} + φ(k_t),  out_t = φ(q_t) S_t / (φ(q_t) · z_t).
    Same shapes as `linear_attention`; one step per position, constant memory per step.
    """
    _check_qkv4(queries, keys, values)
    phi_q, phi_k = feature_map(queries), feature_map(keys)  # (B, H, n, m)
    B, H, n, m = phi_k.shape
    S = torch.zeros(B, H, m, values.shape[-1], dtype=values.dtype, device=values.device)
    z = torch.zeros(B, H, m, dtype=values.dtype, device=values.device)
    outs = []
    for t in range(n):
        S = S + phi_k[:, :, t, :, None] * values[:, :, t, None, :]  # (B, H, m, d_v)
        z = z + phi_k[:, :, t]  # (B, H, m)
        num = (phi_q[:, :, t, :, None] * S).sum(-2)  # (B, H, d_v)
        den = (phi_q[:, :, t] * z).sum(-1, keepdim=True)  # (B, H, 1)
        outs.append(num / (den + eps))
    return torch.stack(outs, dim=2)  # (B, H, n, d_v)
