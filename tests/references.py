"""Reference implementations the tests compare the helpers against.

Each is written from the formula (loops or dense float64 arithmetic), never from the code under
test, and is shared by every test file that needs it.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def masked_softmax_loop(X: torch.Tensor, lens: list[list[int]]) -> torch.Tensor:
    """float64 loop: softmax over the first lens[b][i] entries of each row, zeros elsewhere."""
    B, n_q, n_k = X.shape
    out = torch.zeros(B, n_q, n_k, dtype=torch.float64)
    for b in range(B):
        for i in range(n_q):
            m = min(lens[b][i], n_k)
            if m == 0:
                continue
            row = [float(v) for v in X[b, i, :m]]
            top = max(row)
            e = [math.exp(v - top) for v in row]
            for j in range(m):
                out[b, i, j] = e[j] / sum(e)
    return out


def additive_attention_loop(q, k, v, lens, W_q, W_k, w_v):
    """float64 loops over a(q, k) = w_vᵀ tanh(W_q q + W_k k), masked softmax, weighted sum."""
    q, k, v, W_q, W_k, w_v = (t.detach().double() for t in (q, k, v, W_q, W_k, w_v))
    B, n_q, n_k = q.shape[0], q.shape[1], k.shape[1]
    out = torch.zeros(B, n_q, v.shape[-1], dtype=torch.float64)
    for b in range(B):
        for i in range(n_q):
            m = min(int(lens[b]), n_k)
            scores = [float(w_v @ torch.tanh(W_q @ q[b, i] + W_k @ k[b, j])) for j in range(m)]
            e = [math.exp(s - max(scores)) for s in scores]
            for j in range(m):
                out[b, i] += e[j] / sum(e) * v[b, j]
    return out


@torch.no_grad()
def pairwise_scores(scoring, q, k, additive):
    """Float64 scores (n_q, n_k) written directly from each formula, pair by pair."""
    n_q, n_k = q.shape[0], k.shape[0]
    out = torch.zeros(n_q, n_k, dtype=torch.float64)
    for i in range(n_q):
        for j in range(n_k):
            if scoring == "scaled dot product":
                out[i, j] = q[i] @ k[j] / math.sqrt(q.shape[1])
            elif scoring == "dot product":
                out[i, j] = q[i] @ k[j]
            elif scoring == "gaussian":
                out[i, j] = -((q[i] - k[j]) ** 2).sum() / 2
            else:
                W_q, W_k, w_v = additive.W_q.weight, additive.W_k.weight, additive.w_v.weight[0]
                out[i, j] = w_v @ torch.tanh(W_q @ q[i] + W_k @ k[j])
    return out


def nw_weights_float64(q, k, kernel: str, h: float) -> np.ndarray:
    """Float64 NumPy weights (n_q, n_k), written from the formulas, not from the helpers."""
    q = np.asarray(q, dtype=np.float64)[:, None]
    k = np.asarray(k, dtype=np.float64)[None, :]
    u = (q - k) / h
    if kernel == "gaussian":
        logw = -(u**2) / 2
        w = np.exp(logw - logw.max(axis=1, keepdims=True))
    elif kernel == "boxcar":
        w = (np.abs(u) < 1).astype(np.float64)
    elif kernel == "constant":
        w = np.ones_like(u)
    elif kernel == "epanechnikov":
        w = np.maximum(1 - u**2, 0)
    else:  # pragma: no cover
        raise AssertionError(kernel)
    empty = w.sum(axis=1) == 0
    if empty.any():  # documented fallback: the nearest key(s)
        d = np.abs(u[empty])
        w[empty] = (d == d.min(axis=1, keepdims=True)).astype(np.float64)
    return w / w.sum(axis=1, keepdims=True)


def nw_float64(q, k, v, kernel="gaussian", h=1.0) -> np.ndarray:
    """Float64 NumPy Nadaraya-Watson predictions (n_q,): the weights above times the values."""
    return nw_weights_float64(q, k, kernel, h) @ np.asarray(v, dtype=np.float64)


def loo_predictions_float64(x, y, kernel="gaussian", h=1.0) -> np.ndarray:
    """Float64 loop: each y_i predicted by Nadaraya-Watson from the other points, (n,)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    out = []
    for i in range(len(x)):
        others = np.arange(len(x)) != i
        out.append(nw_float64(x[i : i + 1], x[others], y[others], kernel, h)[0])
    return np.array(out)


def loo_mse_float64(x, y, kernel="gaussian", h=1.0) -> float:
    """Float64 leave-one-out MSE: the mean squared error of the predictions above."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((loo_predictions_float64(x, y, kernel, h) - y) ** 2))


def gaussian_nw_float64_chunked(q, k, v, h):
    """Direct float64 softmax weights times values, a few queries at a time."""
    out = []
    for i in range(0, len(q), 64):
        s = -(((q[i : i + 64, None].double() - k.double()[None]) / h) ** 2) / 2
        out.append(torch.softmax(s, dim=1) @ v.double())
    return torch.cat(out)


def masked_attention_float64(q, k, v, allowed, scale):
    """float64 softmax over the allowed keys only: (B, H, n_q, d_v)."""
    s = (q.double() @ k.double().transpose(-2, -1)) * scale
    s = s.masked_fill(~allowed, -math.inf)
    return torch.softmax(s, dim=-1) @ v.double()


def linear_attention_loop(q, k, v, phi, causal):
    """float64 loops: out_i = Σ_j φ(q_i)·φ(k_j) v_j / Σ_j φ(q_i)·φ(k_j), j ≤ i when causal."""
    B, H, n, _ = q.shape
    out = torch.zeros(B, H, n, v.shape[-1], dtype=torch.float64)
    fq, fk = phi(q.double()), phi(k.double())
    for b in range(B):
        for h in range(H):
            for i in range(n):
                top = i + 1 if causal else k.shape[2]
                w = torch.stack([fq[b, h, i] @ fk[b, h, j] for j in range(top)])
                out[b, h, i] = (w[:, None] * v[b, h, :top].double()).sum(0) / w.sum()
    return out


def sinusoids_float64(T: int, d: int) -> np.ndarray:
    """The sinusoidal position table (T, d) from its formula, in float64 loops."""
    P = np.zeros((T, d))
    for t in range(T):
        for i in range(d // 2):
            P[t, 2 * i] = math.sin(t / 10000 ** (2 * i / d))
            P[t, 2 * i + 1] = math.cos(t / 10000 ** (2 * i / d))
    return P


def rope_float64(x: np.ndarray, pos: int) -> np.ndarray:
    """RoPE from its definition, in float64: pair (x[2j], x[2j+1]) turned by pos·10000^(-2j/d)."""
    out = x.copy()
    for j in range(len(x) // 2):
        a = pos * 10000 ** (-2 * j / len(x))
        out[2 * j] = x[2 * j] * math.cos(a) - x[2 * j + 1] * math.sin(a)
        out[2 * j + 1] = x[2 * j] * math.sin(a) + x[2 * j + 1] * math.cos(a)
    return out


def gqa_loop_float64(q, k, v, allowed):
    """float64, one query head at a time: head i reads key/value head i // (h / g)."""
    B, h, n_q, p = q.shape
    g = k.shape[1]
    out = torch.zeros(B, h, n_q, p, dtype=torch.float64)
    for b in range(B):
        for i in range(h):
            j = i // (h // g)
            s = q[b, i].double() @ k[b, j].double().T / math.sqrt(p)  # (n_q, n_k)
            s = s.masked_fill(~allowed, -math.inf)
            out[b, i] = torch.softmax(s, -1) @ v[b, j].double()
    return out


def sliding_window_mask_by_definition(num_queries, num_keys, window, num_sinks):
    """The last num_queries positions' rows: key j visible to the query at p when j <= p and
    (p - j < window or j < num_sinks), entry by entry."""
    rows = []
    for p in range(num_keys - num_queries, num_keys):
        rows.append([j <= p and (p - j < window or j < num_sinks) for j in range(num_keys)])
    return torch.tensor(rows)
