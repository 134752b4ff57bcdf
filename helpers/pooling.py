"""Attention pooling for 1-D regression: average pooling and Nadaraya-Watson kernel regression.

The Nadaraya-Watson estimator predicts at a query x the weighted average

    f(x) = sum_i alpha(x, x_i) y_i,  alpha(x, x_i) = K((x - x_i) / s) / sum_j K((x - x_j) / s),

with bandwidth s (sigma): the keys are the training inputs x_i, the values are the training
targets y_i and the attention weights alpha are a normalised kernel. With the Gaussian kernel the
weights are a softmax over -((x - x_i) / s)^2 / 2, which is how they are computed here (never as
exp / sum, which gives 0/0 for a query far from every key).

Conventions: queries are rows and keys are columns of every weight matrix, (n_q, n_k).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from helpers._nw_fast import binned_fft, fused_or_direct
from helpers.data import make_regression_data

__all__ = [
    "KERNELS",
    "NWKernelRegression",
    "attention_weights",
    "average_pooling",
    "average_pooling_test_mse",
    "boxcar",
    "constant",
    "epanechnikov",
    "gaussian",
    "leave_one_out",
    "leave_one_out_mse",
    "nadaraya_watson",
    "window_weights",
]

Kernel = str | Callable[[torch.Tensor], torch.Tensor]

# Rows of the (n_q, n_k) matrix built at once by the direct path: about 2^21 entries per chunk.
_CHUNK_ELEMENTS = 2**21
# Below this many (query, key) pairs the direct path is cheap and the most accurate.
_DIRECT_MAX_PAIRS = 2**22


# ------------------------------------------------------------------------------------------------
# Kernels: functions of the scaled distance u = (x - x_i) / sigma, up to a constant factor
# (which cancels in the normalised weights).
# ------------------------------------------------------------------------------------------------


def gaussian(u: torch.Tensor) -> torch.Tensor:
    """Gaussian kernel exp(-u^2 / 2), elementwise: (...) -> (...)."""
    return torch.exp(-(u**2) / 2)


def boxcar(u: torch.Tensor) -> torch.Tensor:
    """Boxcar kernel: 1 where |u| < 1, else 0 (in u's dtype): (...) -> (...)."""
    return (u.abs() < 1).to(u.dtype)


def constant(u: torch.Tensor) -> torch.Tensor:
    """Constant kernel 1 everywhere: Nadaraya-Watson with it is average pooling. (...) -> (...)."""
    return torch.ones_like(u)


def epanechnikov(u: torch.Tensor) -> torch.Tensor:
    """Epanechnikov kernel max(1 - u^2, 0) (the 3/4 factor cancels): (...) -> (...).

    d2l's `epanechikov` is max(1 - |u|, 0), which is the triangular kernel; this is the real one.
    """
    return torch.clamp(1 - u**2, min=0)


KERNELS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gaussian": gaussian,
    "boxcar": boxcar,
    "constant": constant,
    "epanechnikov": epanechnikov,
}


# ------------------------------------------------------------------------------------------------
# Input checks
# ------------------------------------------------------------------------------------------------


def _kernel_name(kernel: Kernel) -> str | Callable[[torch.Tensor], torch.Tensor]:
    """A known kernel's name (also for the functions above), or the user's callable."""
    if isinstance(kernel, str):
        if kernel not in KERNELS:
            raise ValueError(
                f"kernel must be one of {sorted(KERNELS)} or a callable, got {kernel!r}"
            )
        return kernel
    for name, fn in KERNELS.items():
        if kernel is fn:
            return name
    if callable(kernel):
        return kernel
    raise TypeError(f"kernel must be a name or a callable, got {type(kernel).__name__}")


def _bandwidth(bandwidth: float | torch.Tensor) -> float:
    if isinstance(bandwidth, torch.Tensor):
        if bandwidth.numel() != 1:
            raise ValueError(f"bandwidth must be a scalar, got shape {tuple(bandwidth.shape)}")
        bandwidth = bandwidth.item()
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)):
        raise TypeError(f"bandwidth must be a positive number, got {type(bandwidth).__name__}")
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth}")
    return float(bandwidth)


def _float(x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be real, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    return x


def _check(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.dtype, torch.dtype]:
    """Validate shapes and devices; return the tensors, the result dtype and the compute dtype."""
    queries, keys = _float(queries, "queries"), _float(keys, "keys")
    if queries.dim() != 1:
        raise ValueError(f"queries must be 1-D (n_q,), got shape {tuple(queries.shape)}")
    if keys.dim() != 1:
        raise ValueError(f"keys must be 1-D (n_k,), got shape {tuple(keys.shape)}")
    if queries.numel() == 0 or keys.numel() == 0:
        raise ValueError(
            f"queries and keys must be non-empty, got shapes {tuple(queries.shape)} and "
            f"{tuple(keys.shape)}"
        )
    dtype = torch.promote_types(queries.dtype, keys.dtype)
    if values is not None:
        values = _float(values, "values")
        if values.dim() not in (1, 2) or values.shape[0] != keys.shape[0]:
            raise ValueError(
                f"values must be (n_k,) or (n_k, d_v) with n_k = {keys.shape[0]} as in keys, "
                f"got shape {tuple(values.shape)}"
            )
        if values.numel() == 0:
            raise ValueError(f"values must be non-empty, got shape {tuple(values.shape)}")
        dtype = torch.promote_types(dtype, values.dtype)
    devices = {t.device for t in (queries, keys, values) if t is not None}
    if len(devices) > 1:
        raise ValueError(f"queries, keys and values must be on one device, got {devices}")
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    return queries, keys, values, dtype, compute


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------


def _weights(q: torch.Tensor, k: torch.Tensor, kernel, h: float) -> torch.Tensor:
    """Normalised weights of queries q (m,) over keys k (n_k,): (m, n_k), rows sum to 1."""
    u = (q[:, None] - k[None, :]) / h  # (m, 1) - (1, n_k) -> (m, n_k)
    if kernel == "gaussian":
        # in place on the fresh u where autograd allows it (fewer large temporaries)
        scores = -(u**2) / 2 if u.requires_grad else u.square().mul_(-0.5)  # (m, n_k)
        return torch.softmax(scores, dim=1)  # stable: the largest log-weight becomes 0
    if kernel == "constant":
        return torch.full_like(u, 1.0 / k.numel())
    fn = KERNELS[kernel] if isinstance(kernel, str) else kernel
    w = fn(u).to(u.dtype)  # (m, n_k)
    if w.shape != u.shape:
        raise ValueError(f"kernel returned shape {tuple(w.shape)} for input {tuple(u.shape)}")
    total = w.sum(dim=1, keepdim=True)  # (m, 1)
    empty = total.squeeze(1) <= 0  # (m,) rows with no key in reach
    if empty.any():
        # Fallback: the nearest key(s), shared equally when tied -- the limit of the estimate as
        # the bandwidth shrinks towards the distance of the nearest key.
        d = u[empty].abs()  # (e, n_k)
        w = w.clone()
        w[empty] = (d == d.min(dim=1, keepdim=True).values).to(w.dtype)
        total = w.sum(dim=1, keepdim=True)
    return w / total


def attention_weights(
    queries: torch.Tensor, keys: torch.Tensor, kernel: Kernel = "gaussian", bandwidth: float = 1.0
) -> torch.Tensor:
    """Nadaraya-Watson weights: queries (n_q,), keys (n_k,) -> (n_q, n_k), each row sums to 1.

    kernel: "gaussian", "boxcar", "constant", "epanechnikov" (or one of those functions), or any
    callable mapping scaled distances u = (x - x_i) / bandwidth to non-negative weights.
    A query with no key in a compact kernel's reach puts all weight on its nearest key (shared
    equally between keys at the same distance), never NaN. Half-precision inputs are computed in
    float32 and returned in their own dtype.
    """
    queries, keys, _, dtype, compute = _check(queries, keys)
    kernel, h = _kernel_name(kernel), _bandwidth(bandwidth)
    return _weights(queries.to(compute), keys.to(compute), kernel, h).to(dtype)


# ------------------------------------------------------------------------------------------------
# Nadaraya-Watson regression
# ------------------------------------------------------------------------------------------------


def _nw_direct(q, k, v, kernel, h) -> torch.Tensor:
    """Direct path, query chunks of about 2^21 (query, key) pairs: (n_q,), (n_k,), (n_k, d_v)."""
    rows = max(1, _CHUNK_ELEMENTS // k.numel())
    return torch.cat([_weights(q[i : i + rows], k, kernel, h) @ v for i in range(0, len(q), rows)])


def nadaraya_watson(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    kernel: Kernel = "gaussian",
    bandwidth: float = 1.0,
    method: str = "auto",
) -> torch.Tensor:
    """Nadaraya-Watson kernel regression: queries (n_q,), keys (n_k,), values (n_k,) or (n_k, d_v)
    -> (n_q,) or (n_q, d_v).

    Small problems, and every kernel but the Gaussian, take the direct path: the weights of a
    chunk of queries at a time ("direct"). Large Gaussian problems never build the (n_q, n_k)
    weight matrix (chapter 11 explains both ways): "fft" bins the keys on a fine grid and
    convolves with the kernel by FFT, O(n_k + G log G + n_q) with a relative error below about
    1e-6 near the keys; "fused" runs PyTorch's fused attention on lifted features. `method="auto"`
    picks fft when the grid is small enough, else fused, and either hands the queries where it
    would be inaccurate (far from every key) to the direct path. Kernels as in
    `attention_weights`.
    """
    queries, keys, values, dtype, compute = _check(queries, keys, values)
    kernel, h = _kernel_name(kernel), _bandwidth(bandwidth)
    if method not in ("auto", "direct", "fused", "fft"):
        raise ValueError(f"method must be 'auto', 'direct', 'fused' or 'fft', got {method!r}")
    if method in ("fused", "fft") and kernel != "gaussian":
        raise ValueError(f"method={method!r} needs the Gaussian kernel, got {kernel!r}")
    q, k = queries.to(compute), keys.to(compute)
    v = values.to(compute)
    v = v[:, None] if v.dim() == 1 else v  # (n_k, d_v)
    # The exact path for the queries a fast path hands back (far from every key): in float64,
    # since there the scores are huge and float32 cannot tell the nearest keys apart.
    direct = lambda qs: _nw_direct(qs.double(), k.double(), v.double(), "gaussian", h).to(v)
    out = None
    large = len(q) * len(k) > _DIRECT_MAX_PAIRS
    if kernel == "constant":
        out = v.mean(dim=0).expand(len(q), -1)
    elif kernel == "gaussian" and (method == "fft" or (method == "auto" and large)):
        out = binned_fft(q, k, v, h, direct, strict=method == "fft")
    if out is None and kernel == "gaussian" and (method == "fused" or (method == "auto" and large)):
        out = fused_or_direct(q, k, v, h, direct, strict=method == "fused")
    if out is None:
        out = _nw_direct(q, k, v, kernel, h)
    out = out.to(dtype)
    return out[:, 0].clone() if values.dim() == 1 else out.clone()


def average_pooling(values: torch.Tensor, n_queries: int) -> torch.Tensor:
    """Average pooling, every query gets the mean value: values (n_k,) or (n_k, d_v)
    -> (n_queries,) or (n_queries, d_v)."""
    values = _float(values, "values")
    if values.dim() not in (1, 2) or values.shape[0] == 0:
        raise ValueError(
            f"values must be non-empty (n_k,) or (n_k, d_v), got shape {tuple(values.shape)}"
        )
    if isinstance(n_queries, bool) or not isinstance(n_queries, int):
        raise TypeError(f"n_queries must be an int, got {type(n_queries).__name__}")
    if n_queries < 1:
        raise ValueError(f"n_queries must be at least 1, got {n_queries}")
    mean = values.mean(dim=0)  # () or (d_v,)
    return mean.repeat(n_queries, *([1] * mean.dim()))


def leave_one_out(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values in which no point is its own key: x, y (n,) -> keys, values (n, n - 1).

    Row i holds every training point except the i-th (d2l's masked `repeat` construction).
    """
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("x and y must be torch.Tensors")
    if x.dim() != 1 or y.shape != x.shape:
        raise ValueError(
            f"x and y must be 1-D of one length, got shapes {tuple(x.shape)} and {tuple(y.shape)}"
        )
    n = x.numel()
    if n < 2:
        raise ValueError(f"leave-one-out needs at least 2 points, got {n}")
    keep = ~torch.eye(n, dtype=torch.bool, device=x.device)  # (n, n), False on the diagonal
    keys = x.repeat(n, 1)[keep].reshape(n, n - 1)  # (n, n) -> (n, n - 1)
    values = y.repeat(n, 1)[keep].reshape(n, n - 1)  # (n, n) -> (n, n - 1)
    return keys, values


def leave_one_out_mse(
    x: torch.Tensor,
    y: torch.Tensor,
    bandwidth: float | torch.Tensor = 1.0,
    kernel: Kernel = "gaussian",
) -> torch.Tensor:
    """Leave-one-out mean squared error of Nadaraya-Watson: x, y (n,), bandwidth a number or (G,)
    -> () or (G,).

    Each y_i is predicted from the other n - 1 points (keys and values of `leave_one_out`) and
    the squared errors are averaged. A (G,) tensor of bandwidths gives one error per bandwidth
    in one batched call; w of chapter 3 is bandwidth 1 / w. Kernels as in `attention_weights`
    (a query with no other key in reach uses its nearest other key).
    """
    keys, values = leave_one_out(x, y)  # (n, n - 1) each
    kernel = _kernel_name(kernel)
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float, torch.Tensor)):
        raise TypeError(
            f"bandwidth must be a number or a 1-D tensor, got {type(bandwidth).__name__}"
        )
    h = torch.as_tensor(bandwidth, dtype=torch.float64 if isinstance(bandwidth, float) else None)
    if not h.is_floating_point():
        h = h.to(torch.get_default_dtype())
    if h.dim() > 1 or h.numel() == 0:
        raise ValueError(f"bandwidth must be a number or 1-D (G,), got shape {tuple(h.shape)}")
    if not bool(((h > 0) & torch.isfinite(h)).all()):
        raise ValueError("every bandwidth must be a positive finite number")
    dtype = torch.promote_types(_float(x, "x").dtype, _float(y, "y").dtype)
    compute = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x, y = x.to(compute), y.to(compute)
    keys, values = keys.to(compute), values.to(compute)
    hs = h.to(device=x.device, dtype=compute).reshape(-1, 1, 1)  # (G, 1, 1)
    u = (x[:, None] - keys) / hs  # ((n, 1) - (n, n - 1)) / (G, 1, 1) -> (G, n, n - 1)
    if kernel == "gaussian":
        alpha = torch.softmax(-(u**2) / 2, dim=-1)  # (G, n, n - 1)
    else:
        fn = KERNELS[kernel] if isinstance(kernel, str) else kernel
        w = fn(u).to(u.dtype)  # (G, n, n - 1)
        d = u.abs()
        nearest = (d == d.min(dim=-1, keepdim=True).values).to(u.dtype)  # (G, n, n - 1)
        w = torch.where(w.sum(dim=-1, keepdim=True) > 0, w, nearest)  # no key in reach
        alpha = w / w.sum(dim=-1, keepdim=True)  # (G, n, n - 1)
    y_hat = (alpha * values).sum(dim=-1)  # (G, n, n - 1) -> (G, n)
    mse = ((y_hat - y) ** 2).mean(dim=-1)  # (G,)
    return mse.reshape(h.shape)


class NWKernelRegression(nn.Module):
    """Parametric Nadaraya-Watson pooling with one learnable width w (d2l's `NWKernelRegression`).

    alpha(x, x_i) = softmax_i(-((x - x_i) w)^2 / 2), so w plays the part of 1 / sigma.
    The weights of the last forward pass are kept in `attention_weights`, (n_q, n_k).
    """

    def __init__(self, w: float | None = None, **kwargs):
        super().__init__(**kwargs)
        init = torch.rand((1,)) if w is None else torch.tensor([float(w)])
        self.w = nn.Parameter(init)
        self.attention_weights: torch.Tensor | None = None

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor
    ) -> torch.Tensor:
        """queries (n_q,); keys, values (n_q, n_k) or (n_k,) (shared by all queries) -> (n_q,)."""
        if queries.dim() != 1:
            raise ValueError(f"queries must be 1-D (n_q,), got shape {tuple(queries.shape)}")
        if keys.dim() == 1:
            keys = keys.expand(len(queries), -1)  # (n_k,) -> (n_q, n_k), a view
        if values.dim() == 1:
            values = values.expand(len(queries), -1)
        if keys.shape != values.shape or keys.dim() != 2 or keys.shape[0] != len(queries):
            raise ValueError(
                f"keys and values must both be (n_q, n_k) with n_q = {len(queries)}, got "
                f"{tuple(keys.shape)} and {tuple(values.shape)}"
            )
        if keys.shape[1] == 0:
            raise ValueError("keys must have at least one column (n_k >= 1)")
        scores = -(((queries[:, None] - keys) * self.w) ** 2) / 2  # (n_q, 1) - (n_q, n_k)
        self.attention_weights = torch.softmax(scores, dim=1)  # (n_q, n_k)
        # (n_q, 1, n_k) @ (n_q, n_k, 1) -> (n_q, 1, 1)
        out = torch.bmm(self.attention_weights.unsqueeze(1), values.unsqueeze(-1))
        return out.reshape(-1)  # (n_q,)


def average_pooling_test_mse(n_train: int = 50, noise: float = 0.5, seed: int = 0) -> float:
    """Test MSE (against the noise-free truth) of average pooling on `make_regression_data`."""
    data = make_regression_data(n_train=n_train, noise=noise, seed=seed, dtype=torch.float64)
    y_hat = data.y_train.mean()  # () one number for every query
    return ((y_hat - data.y_truth) ** 2).mean().item()  # (n_test,) -> ()



def window_weights(x_train: torch.Tensor, query: float, radius: float) -> torch.Tensor:
    """Weights (n_train,): 1/m on the m keys with |x_i - query| <= radius, 0 elsewhere."""
    if not isinstance(x_train, torch.Tensor) or x_train.dim() != 1:
        raise ValueError(f"x_train must be a 1-D tensor, got {getattr(x_train, 'shape', x_train)}")
    inside = ((x_train.double() - query).abs() <= radius).double()  # (n_train,) 0 or 1
    if inside.sum() == 0:
        raise ValueError(f"no key lies within {radius} of the query {query}")
    return inside / inside.sum()  # (n_train,), sums to 1
