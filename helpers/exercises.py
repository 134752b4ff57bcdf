"""Self-checks for the exercises: they say whether an answer is right and give a hint, never the answer."""

from __future__ import annotations

__all__ = ["check"]


def check(ok: bool, hint: str, praise: str = "Correct!") -> bool:
    """Print praise when `ok`, else the hint; return ok so a notebook can assert on it."""
    print(praise if ok else f"Not yet. Hint: {hint}")
    return bool(ok)


# ---------------------------------------------------------------------------------------------
# Chapters 00-01
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 02-03
# ---------------------------------------------------------------------------------------------


def check_nw_by_hand(answer: float) -> bool:
    """Chapter 02: the Gaussian (sigma = 1) Nadaraya-Watson prediction at x = 2 from keys 0, 1, 3
    and values 1, 2, 4, computed by hand."""
    import math

    logw = [-((2 - k) ** 2) / 2 for k in (0, 1, 3)]
    e = [math.exp(a) for a in logw]
    truth = sum(a * b for a, b in zip(e, (1, 2, 4), strict=True)) / sum(e)
    return check(
        abs(float(answer) - truth) < 1e-3,
        "write the three log-weights -(2 - x_i)^2 / 2, exponentiate them, divide by their sum, "
        "and average the values with those weights (3 decimals are enough).",
    )


def check_lifted_features(lift) -> bool:
    """Chapter 02: `lift(queries (n_q,), keys (n_k,), sigma) -> (Q (n_q, d), K (n_k, d))` such that
    softmax(Q @ K.T) along the keys equals the Gaussian Nadaraya-Watson weights."""
    import torch

    from helpers.pooling import attention_weights

    g = torch.Generator().manual_seed(1)
    ok = True
    for offset, sigma in ((0.0, 1.0), (3.0, 0.5), (-2.0, 2.0)):
        q = offset + torch.rand(7, generator=g, dtype=torch.float64) * 5
        k = offset + torch.rand(11, generator=g, dtype=torch.float64) * 5
        try:
            Q, K = lift(q.clone(), k.clone(), sigma)
            got = torch.softmax(torch.as_tensor(Q) @ torch.as_tensor(K).T, dim=1)
            ok &= got.shape == (7, 11) and torch.allclose(
                got.double(), attention_weights(q, k, bandwidth=sigma), atol=1e-6
            )
        except Exception as e:  # a wrong shape is a wrong answer, not a crash
            print(f"(your function raised {type(e).__name__}: {e})")
            ok = False
    return check(
        ok,
        "expand -((x - x_i) / sigma)^2 / 2 into three terms: one depends on x and x_i, one on x_i "
        "only, one on x only. The last one is the same for every key, so softmax ignores it; "
        "put the other two into a dot product of 2-d vectors.",
    )


def check_loo_bandwidth(sigma: float, data, kernel: str = "boxcar") -> bool:
    """Chapter 02: a width whose leave-one-out error is within 2 % of the best on a fine grid."""
    import torch

    from helpers.pooling import leave_one_out, nadaraya_watson

    keys, values = leave_one_out(data.x_train, data.y_train)  # (n, n - 1)

    def loo(s: float) -> float:
        y_hat = torch.cat(
            [
                nadaraya_watson(data.x_train[i : i + 1], keys[i], values[i], kernel, s)
                for i in range(data.n_train)
            ]
        )
        return float(((y_hat - data.y_train) ** 2).mean())

    best = min(loo(float(s)) for s in torch.linspace(0.05, 2.0, 79))
    ok = float(sigma) > 0 and loo(float(sigma)) <= 1.02 * best
    return check(
        ok,
        f"compute the leave-one-out error of the {kernel} kernel for a grid of widths between "
        "0.05 and 2 (at least every 0.025) and keep the width with the smallest error.",
    )


def check_batched_pooling(pool) -> bool:
    """Chapter 03: `pool(weights (n, m), values (n, m)) -> (n,)`: row-wise weighted sums by bmm."""
    import torch

    g = torch.Generator().manual_seed(2)
    w = torch.softmax(torch.randn(6, 4, generator=g), dim=1)
    v = torch.randn(6, 4, generator=g)
    try:
        got = torch.as_tensor(pool(w.clone(), v.clone()))
        ok = got.shape == (6,) and torch.allclose(got, (w * v).sum(dim=1), atol=1e-6)
    except Exception as e:
        print(f"(your function raised {type(e).__name__}: {e})")
        ok = False
    return check(
        ok,
        "torch.bmm multiplies (n, a, b) by (n, b, c); make the weights (n, 1, m) and the values "
        "(n, m, 1) with unsqueeze, then reshape the (n, 1, 1) result to (n,).",
    )


def check_best_w(w: float, data) -> bool:
    """Chapter 03: a w whose leave-one-out loss is within 1 % of the best on a fine grid."""
    import torch

    from helpers.widgets import loo_loss

    best = min(loo_loss(data, float(x)) for x in torch.linspace(0.5, 15, 291))
    ok = float(w) > 0 and loo_loss(data, float(w)) <= 1.01 * best
    return check(
        ok,
        "evaluate the leave-one-out loss for w on a grid from 0.5 to 15 in steps of 0.05 (no "
        "gradients needed) and keep the w with the smallest loss.",
    )


def check_sigma_from_w(sigma: float, w: float) -> bool:
    """Chapter 03: the non-parametric width sigma that gives the same weights as w."""
    ok = float(sigma) > 0 and abs(float(sigma) * abs(float(w)) - 1) < 1e-3
    return check(
        ok,
        "compare -((x - x_i) w)^2 / 2 with -((x - x_i) / sigma)^2 / 2 term by term.",
    )


# ---------------------------------------------------------------------------------------------
# Chapters 04-05
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Chapters 06-07
# ---------------------------------------------------------------------------------------------
