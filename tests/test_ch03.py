"""Chapter 03: the explorer driven headlessly, and every self-check with right and wrong answers.

References are float64 NumPy formulas and loops from tests/references.py, not the helpers
under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from references import loo_mse_float64, nw_float64
from torch import nn

from helpers.data import make_regression_data
from helpers.pooling import leave_one_out
from helpers.ui import ch03


def pooled(queries, keys, values, w: float) -> np.ndarray:
    """Gaussian pooling at the chapter's width parameter w, which is bandwidth 1 / w."""
    return nw_float64(queries, keys, values, "gaussian", 1 / w)


def loo_mse(x, y, w: float) -> float:
    """Leave-one-out MSE at the chapter's width parameter w (bandwidth 1 / w)."""
    return loo_mse_float64(x, y, "gaussian", 1 / w)


def test_explorer_follows_its_slider(regression_data):
    box = ch03.w_explorer(regression_data, w_trained=3.49)
    fig = box.figure
    assert box.state["w"] == pytest.approx(3.49)
    box.controls["w"].value = 6.0
    assert box.figure is fig  # the same figure, updated in place
    x, y = regression_data.x_train.numpy(), regression_data.y_train.numpy()
    want = pooled(regression_data.x_test, x, y, 6.0)
    np.testing.assert_allclose(box.state["y_hat"], want, rtol=1e-5)
    fit = next(line for line in fig.axes[1].get_lines() if line.get_linestyle() == "--")
    np.testing.assert_allclose(fit.get_ydata(), want, rtol=1e-5)  # what is drawn
    assert box.state["loss"] == pytest.approx(loo_mse(x, y, 6.0), rel=1e-6)
    dot = next(line for line in fig.axes[0].get_lines() if line.get_marker() == "o")
    assert dot.get_xdata()[0] == pytest.approx(6.0)
    assert dot.get_ydata()[0] == pytest.approx(loo_mse(x, y, 6.0), rel=1e-6)
    assert box.state["weights"].shape == (50, 50)
    np.testing.assert_allclose(box.state["weights"].sum(axis=1), 1, atol=1e-5)
    assert box.state["test_mse"] == pytest.approx(
        float(np.mean((want - regression_data.y_truth.numpy()) ** 2)), rel=1e-5
    )
    box.controls["w"].value = 0.25  # wide kernel: close to average pooling
    assert np.ptp(box.state["y_hat"]) < np.ptp(want)
    assert len(box.redraw_times) == 3


def test_explorer_curves_are_the_two_training_losses(regression_data):
    box = ch03.w_explorer(regression_data, w_trained=3.49)
    lines = box.figure.axes[0].get_lines()
    loo_line = next(line for line in lines if line.get_linestyle() == "-")
    self_line = next(line for line in lines if line.get_linestyle() == ":")
    x, y = regression_data.x_train.numpy(), regression_data.y_train.numpy()
    for w, loo, own in list(zip(loo_line.get_xdata(), loo_line.get_ydata(), self_line.get_ydata()))[
        ::15
    ]:
        assert loo == pytest.approx(loo_mse(x, y, w), rel=1e-6)
        assert own == pytest.approx(float(np.mean((pooled(x, x, y, w) - y) ** 2)), rel=1e-6)
    assert np.all(np.diff(self_line.get_ydata()) < 0)  # no minimum: falls as w grows


def test_explorer_demos_build():
    box = ch03.EXPLORER_DEMOS["w_explorer"]()
    assert set(box.controls) == {"w"}
    assert box.png.startswith(b"\x89PNG")


def test_check_batched_pooling(capsys):
    def right(weights, values):
        return torch.bmm(weights.unsqueeze(1), values).squeeze(1)  # (n, 1, m) @ (n, m, d)

    def right_method(weights, values):
        return weights[:, None, :].bmm(values)[:, 0]  # Tensor.bmm is the same call

    def wrong_axis(weights, values):
        return (weights[:, :, None] * values).sum(dim=0)  # sums over the queries: (m, d)

    def unscaled(weights, values):
        return values.sum(dim=1)

    def by_einsum(weights, values):  # right numbers, but not the batched product asked for
        return torch.einsum("nm,nmd->nd", weights, values)

    def by_broadcast(weights, values):
        return (weights[:, :, None] * values).sum(dim=1)

    def two_bmms(weights, values):
        half = torch.bmm(weights.unsqueeze(1), values).squeeze(1) / 2
        return half + torch.bmm(weights.unsqueeze(1), values).squeeze(1) / 2

    # the reference, independent of the helper: a float64 loop of dot products
    g = torch.Generator().manual_seed(2)
    w = torch.softmax(torch.randn(6, 4, generator=g, dtype=torch.float64), dim=1)
    v = torch.randn(6, 4, 3, generator=g, dtype=torch.float64)
    ref = np.array([[sum(w[i, j].item() * v[i, j, c].item() for j in range(4)) for c in range(3)]
                    for i in range(6)])
    assert np.allclose(right(w, v).numpy(), ref)
    assert ch03.check_batched_pooling(right)
    assert ch03.check_batched_pooling(right_method)
    capsys.readouterr()
    for numbers_right in (by_einsum, by_broadcast, two_bmms):
        assert np.allclose(numbers_right(w, v).numpy(), ref)
        assert not ch03.check_batched_pooling(numbers_right)
        assert "one torch.bmm" in capsys.readouterr().out
    assert not ch03.check_batched_pooling(wrong_axis)
    assert "(6, 3)" in capsys.readouterr().out
    assert not ch03.check_batched_pooling(unscaled)
    assert "Hint" in capsys.readouterr().out
    assert not ch03.check_batched_pooling(lambda w, v: None)
    assert "returned None" in capsys.readouterr().out
    assert not ch03.check_batched_pooling("bmm")
    assert "your function" in capsys.readouterr().out


def _bias_gradient_float64(x: np.ndarray, y: np.ndarray, w: float):
    """Exercise 2 from the definition, in float64: b on each query's nearest leave-one-out key.

    Returns the central finite difference of the loss at b = 0, and the pieces the wrong ideas
    are made of: per query the nearest key's weight, its value, the prediction and the target.
    """
    def loss(b: float, parts: list | None = None) -> float:
        errs = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            xk, yk = x[keep], y[keep]
            j = int(np.argmin(np.abs(xk - x[i])))
            s = -(((x[i] - xk) * w) ** 2) / 2
            s[j] += b
            a = np.exp(s - s.max())
            a /= a.sum()
            pred = float(a @ yk)
            errs.append((pred - y[i]) ** 2)
            if parts is not None:
                parts.append((a[j], yk[j], pred, y[i]))
        return float(np.mean(errs))

    parts: list = []
    loss(0.0, parts)
    measured = (loss(1e-5) - loss(-1e-5)) / 2e-5
    return measured, np.array(parts)  # parts: (n, 4)


def test_check_bias_gradient(regression_data, capsys):
    x = regression_data.x_train.numpy().astype(np.float64)
    y = regression_data.y_train.numpy().astype(np.float64)
    measured, parts = _bias_gradient_float64(x, y, 1.0)
    a, yj, pred, target = parts.T
    # the derivation, by hand: d pred_i / db = a_j (y_j - pred_i), then the chain rule
    by_hand = float(np.mean(2 * (pred - target) * a * (yj - pred)))
    assert by_hand == pytest.approx(measured, rel=1e-6)
    assert measured < -0.01  # clearly non-zero, so 0 is far outside the tolerance
    assert ch03.check_bias_gradient(round(measured, 4))  # as the measuring cell prints it
    assert ch03.check_bias_gradient(np.float32(measured))
    capsys.readouterr()
    assert not ch03.check_bias_gradient(0)  # b on every score: the shift-invariant answer
    out = capsys.readouterr().out
    assert "one score" in out
    wrong_ideas = {
        "opposite sign": -measured,
        "no factor 2": measured / 2,
        "factor 2 twice": 2 * measured,
        "no normalisation: a_j y_j": float(np.mean(2 * (pred - target) * a * yj)),
        "a_j (1 - a_j) as the slope": float(np.mean(2 * (pred - target) * a * (1 - a))),
        "y_j - target, not y_j - pred": float(np.mean(2 * (pred - target) * a * (yj - target))),
        "the same at w = 2, not 1": _bias_gradient_float64(x, y, 2.0)[0],
    }
    for name, wrong in wrong_ideas.items():
        assert abs(wrong - measured) > 0.02 * abs(measured), name
        assert not ch03.check_bias_gradient(wrong), name
        out = capsys.readouterr().out
        assert "Hint" in out and f"{measured:.3f}" not in out and f"{measured:.4f}" not in out
    assert not ch03.check_bias_gradient("small")
    assert "number" in capsys.readouterr().out


def test_check_w_growth_factor(capsys):
    factor = 4 ** 0.2  # sigma ~ n^(-1/5), so w = 1 / sigma ~ n^(1/5); n grows 4-fold
    assert ch03.check_w_growth_factor(factor)
    assert ch03.check_w_growth_factor(1.32)
    capsys.readouterr()
    for wrong in (4, 2, 1, 4 ** -0.2, 4 ** 0.25, 4 ** (1 / 6), 4 ** 0.8, 1.5):
        assert not ch03.check_w_growth_factor(wrong)
        out = capsys.readouterr().out
        assert "Hint" in out and "1.3" not in out
    assert not ch03.check_w_growth_factor(-1.32)
    assert "positive" in capsys.readouterr().out


def test_check_best_w_bigger_data(capsys):
    d = make_regression_data(n_train=200, seed=ch03.BIGGER_DATA_SEED, dtype=torch.float64)
    x, y = d.x_train.numpy(), d.y_train.numpy()
    grid = np.arange(0.5, 30.0001, 0.25)
    losses = [loo_mse(x, y, w) for w in grid]
    best = float(grid[int(np.argmin(losses))])
    assert ch03.check_best_w_bigger_data(best)
    capsys.readouterr()
    assert not ch03.check_best_w_bigger_data(3.49)  # the 50-point answer is not this one's
    out = capsys.readouterr().out
    assert "Hint" in out and f"{best:.1f}" not in out
    assert not ch03.check_best_w_bigger_data(-1.0)
    for printed in (4.77, 4.9, 4.7, 7.8):  # widths the chapter prints must not pass
        assert not ch03.check_best_w_bigger_data(printed)
    assert not ch03.check_best_w_bigger_data(3.49 * 4**0.2)  # the prediction is not a measurement
    coarse = np.arange(0.5, 30.0001, 0.5)  # a coarse grid still finds a passing w
    coarse_best = float(coarse[int(np.argmin([loo_mse(x, y, w) for w in coarse]))])
    assert ch03.check_best_w_bigger_data(coarse_best)


class LiftedPooling(nn.Module):
    """The exercise's design at the learned Gaussian: scores ([x, 1] W_q).([k, k^2] W_k)."""

    def __init__(self, w: float):
        super().__init__()
        self.W_q = nn.Parameter(torch.eye(2))
        self.W_k = nn.Parameter(torch.diag(torch.tensor([w**2, -(w**2) / 2])))

    def forward(self, queries, keys, values):
        q = torch.stack([queries, torch.ones_like(queries)], dim=-1) @ self.W_q  # (n, 2)
        k = torch.stack([keys, keys**2], dim=-1) @ self.W_k  # (n, n - 1, 2)
        scores = (k @ q[:, :, None]).squeeze(-1)  # (n, n - 1)
        return (torch.softmax(scores, dim=1) * values).sum(dim=1)


def test_check_own_pooling(regression_data, capsys):
    x, y = regression_data.x_train.numpy(), regression_data.y_train.numpy()
    grid = np.arange(0.5, 15.0001, 0.05)
    best = min(loo_mse(x, y, w) for w in grid)
    w_best = float(grid[int(np.argmin([loo_mse(x, y, w) for w in grid]))])
    net = LiftedPooling(w_best)
    assert not ch03.check_own_pooling(net)  # started at the best w, untrained: not enough
    assert "Hint" in capsys.readouterr().out
    keys, values = leave_one_out(regression_data.x_train, regression_data.y_train)
    torch.manual_seed(0)
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        loss = ((net(regression_data.x_train, keys, values) - regression_data.y_train) ** 2).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():  # the trained loss by a float64 loop, independent of the check
        q = np.stack([x, np.ones_like(x)], axis=1) @ net.W_q.double().numpy()  # (n, 2)
        wk = net.W_k.double().numpy()
        errs = []
        for i in range(len(x)):
            keep = np.arange(len(x)) != i
            k = np.stack([x[keep], x[keep] ** 2], axis=1).astype(np.float64) @ wk  # (n-1, 2)
            s = k @ q[i]
            a = np.exp(s - s.max())
            errs.append((a @ y[keep] / a.sum() - y[i]) ** 2)
    assert np.mean(errs) < 0.98 * best  # trained: at least 2 % below the best single width
    assert ch03.check_own_pooling(net)
    capsys.readouterr()
    assert not ch03.check_own_pooling(LiftedPooling(1.0))  # a poor start, untrained
    assert "Hint" in capsys.readouterr().out

    class VariableWidth(LiftedPooling):  # section 3.10's model is not the reader's own
        pass

    assert not ch03.check_own_pooling(VariableWidth(w_best))
    assert "3.10" in capsys.readouterr().out
    assert not ch03.check_own_pooling("my model")
    assert "nn.Module" in capsys.readouterr().out

    class WrongShape(LiftedPooling):
        def forward(self, queries, keys, values):
            return super().forward(queries, keys, values)[:, None]

    assert not ch03.check_own_pooling(WrongShape(w_best))
    assert "(50,)" in capsys.readouterr().out

    class OneParameter(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(w_best))

        def forward(self, queries, keys, values):
            s = -(((queries[:, None] - keys) * self.w) ** 2) / 2
            return (torch.softmax(s, dim=1) * values).sum(dim=1)

    assert not ch03.check_own_pooling(OneParameter())
    assert "at least 2" in capsys.readouterr().out


def _loo_mse_of(net, x, keys, values, y) -> float:
    """A model's leave-one-out training MSE, in float64 NumPy from its outputs."""
    with torch.no_grad():
        out = net(x, keys, values).double().numpy()
    return float(np.mean((out - y.double().numpy()) ** 2))


def _fit_adam(net, queries, keys, values, y, lr, steps=300):
    """Train `net` for `steps` full-batch Adam steps on the squared error; return it."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss = ((net(queries, keys, values) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return net


def test_check_own_pooling_asks_for_attention_pooling(regression_data, capsys, one_thread):
    """Models that beat the best single w without being attention pooling are rejected."""
    x_t, y_t = regression_data.x_train, regression_data.y_train
    x, y = x_t.numpy(), y_t.numpy()
    best = min(loo_mse(x, y, w) for w in np.arange(0.5, 15.0001, 0.05))
    keys, values = leave_one_out(x_t, y_t)
    n, m = keys.shape

    class MLPOnX(nn.Module):  # ignores keys and values: a regression of y on x
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                   nn.Linear(64, 1))

        def forward(self, queries, keys, values):
            return self.f(queries[:, None]).squeeze(-1)

    class Table(nn.Module):  # one learned output per query position: 50 parameters
        def __init__(self):
            super().__init__()
            self.t = nn.Parameter(y_t.clone())

        def forward(self, queries, keys, values):
            return self.t

    class ScoreTable(nn.Module):  # weights from a table of scores by key position
        def __init__(self):
            super().__init__()
            # the key whose value is closest to the target scores highest (a lookup, not keys)
            self.s = nn.Parameter(-10 * (values - y_t[:, None]).abs())

        def forward(self, queries, keys, values):
            return (torch.softmax(self.s, dim=1) * values).sum(dim=1)

    class WidthPerQuery(nn.Module):  # a Gaussian whose width is looked up by query position
        def __init__(self):
            super().__init__()
            widths = torch.linspace(0.5, 15, 60)
            scores = -(((x_t[:, None, None] - keys[:, None, :]) * widths[None, :, None]) ** 2) / 2
            preds = (torch.softmax(scores, dim=-1) * values[:, None, :]).sum(-1)  # (n, 60)
            best_w = widths[((preds - y_t[:, None]) ** 2).argmin(dim=1)]  # each query's own best
            self.w = nn.Parameter(best_w)

        def forward(self, queries, keys, values):
            s = -(((queries[:, None] - keys) * self.w[:, None]) ** 2) / 2
            return (torch.softmax(s, dim=1) * values).sum(dim=1)

    torch.manual_seed(0)
    mlp = _fit_adam(MLPOnX(), x_t, keys, values, y_t, lr=0.03)
    cheats = {
        "an MLP on x": (mlp, ("follow its values", "range")),
        "a table of outputs": (Table(), ("follow its values", "range")),
        "a table of scores by key position": (ScoreTable(), ("keys' positions",)),
        "a table of widths by query position": (WidthPerQuery(), ("not from its position",)),
    }
    for name, (net, messages) in cheats.items():
        # each one passes the loss criterion that the check used to apply alone
        assert _loo_mse_of(net, x_t, keys, values, y_t) < 0.98 * best, name
        assert not ch03.check_own_pooling(net), name
        out = capsys.readouterr().out
        assert "Hint" in out and any(m in out for m in messages), (name, out)

    class NotAnAverage(LiftedPooling):  # weights that need not be >= 0 or sum to 1
        def forward(self, queries, keys, values):
            return 1.5 * super().forward(queries, keys, values) - 0.5 * values.mean(dim=1)

    assert not ch03.check_own_pooling(NotAnAverage(4.0))
    assert "range" in capsys.readouterr().out

    # an attention pooling of another design is accepted: scores from a learned 2-layer map
    # of (x - x_i), which is a function of the query and the key, trained past the 2 %
    class DifferenceScores(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, queries, keys, values):
            pair = torch.stack([queries[:, None].expand_as(keys), keys], dim=-1)  # (n, m, 2)
            s = self.g(pair).squeeze(-1) - 6.1 * (queries[:, None] - keys) ** 2
            return (torch.softmax(s, dim=1) * values).sum(dim=1)

    torch.manual_seed(0)
    net = _fit_adam(DifferenceScores(), x_t, keys, values, y_t, lr=0.01)
    assert _loo_mse_of(net, x_t, keys, values, y_t) < 0.98 * best
    assert ch03.check_own_pooling(net)
    assert "Correct" in capsys.readouterr().out
