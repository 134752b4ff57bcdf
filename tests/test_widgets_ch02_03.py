"""Chapters 02-03 explorers (driven headlessly) and self-checks."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

from helpers import exercises, widgets  # noqa: E402
from helpers.data import make_regression_data  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return make_regression_data()


def gaussian_nw_numpy(x, keys, values, sigma):
    """Float64 NumPy reference: (n,) queries -> (n,) predictions."""
    x, keys, values = (np.asarray(t, dtype=np.float64) for t in (x, keys, values))
    logw = -(((x[:, None] - keys[None, :]) / sigma) ** 2) / 2
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    return (w / w.sum(axis=1, keepdims=True)) @ values


def test_nw_explorer_follows_its_controls(data):
    box = widgets.nw_explorer(data)
    x, y = data.x_train.numpy(), data.y_train.numpy()
    assert box.state["kernel"] == "gaussian" and box.state["bandwidth"] == pytest.approx(1.0)
    np.testing.assert_allclose(
        box.state["y_hat"], gaussian_nw_numpy(data.x_test, x, y, 1.0), rtol=1e-5
    )

    box.controls["bandwidth"].value = 0.2
    sigma = box.controls["bandwidth"].value  # the log slider snaps to its grid
    assert box.state["bandwidth"] == pytest.approx(sigma)
    np.testing.assert_allclose(
        box.state["y_hat"], gaussian_nw_numpy(data.x_test, x, y, sigma), rtol=1e-5
    )

    box.controls["query"].value = 1.25
    logw = -(((1.25 - x) / sigma) ** 2) / 2
    w = np.exp(logw - logw.max())
    w /= w.sum()
    np.testing.assert_allclose(box.state["weights"], w, rtol=1e-5, atol=1e-8)
    assert box.state["prediction"] == pytest.approx(float(w @ y), rel=1e-5)
    assert box.state["heatmap_row"] in (12, 13)  # test grid 0, 0.1, ...: 1.2 or 1.3

    # what is drawn is what the state says: the bars' heights are the query's weights
    bars = box.figure.axes[1].patches
    np.testing.assert_allclose([b.get_height() for b in bars], w, rtol=1e-5, atol=1e-8)

    box.controls["kernel"].value = "constant"
    np.testing.assert_allclose(box.state["y_hat"], np.full(50, y.mean()), rtol=1e-5)
    assert box.state["test_mse"] == pytest.approx(
        float(((y.mean() - data.y_truth.numpy()) ** 2).mean()), rel=1e-5
    )

    box.controls["kernel"].value = "boxcar"
    box.controls["bandwidth"].value = 0.5
    sigma = box.controls["bandwidth"].value
    inside = np.abs(1.25 - x) / sigma < 1
    np.testing.assert_allclose(box.state["weights"], inside / inside.sum(), atol=1e-7)


def test_w_explorer_follows_its_slider(data):
    box = widgets.w_explorer(data, w_trained=3.3, n_grid=20)
    assert box.state["w"] == pytest.approx(3.3)
    box.controls["w"].value = 6.0
    x, y = data.x_train.numpy(), data.y_train.numpy()
    np.testing.assert_allclose(
        box.state["y_hat"], gaussian_nw_numpy(data.x_test, x, y, 1 / 6.0), rtol=1e-5
    )
    # leave-one-out loss at w = 6, each point predicted from the others
    loo = [
        gaussian_nw_numpy(x[i : i + 1], np.delete(x, i), np.delete(y, i), 1 / 6.0)[0]
        for i in range(len(x))
    ]
    assert box.state["loss"] == pytest.approx(float(np.mean((np.array(loo) - y) ** 2)), rel=1e-5)
    assert box.state["weights"].shape == (50, len(x))
    # the red dot on the loss curve is at (w, loss)
    dot = [ln for ln in box.figure.axes[0].lines if ln.get_marker() == "o"][0]
    assert dot.get_xdata()[0] == pytest.approx(6.0)
    assert dot.get_ydata()[0] == pytest.approx(box.state["loss"])


def test_explorers_close_old_figures(data):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    box = widgets.nw_explorer(data)
    for s in (0.3, 0.5, 0.7):
        box.controls["bandwidth"].value = s
    assert len(plt.get_fignums()) == before  # Figure objects, not pyplot figures


def test_self_checks(capsys):
    e = [math.exp(-2.0), math.exp(-0.5), math.exp(-0.5)]
    right = (e[0] * 1 + e[1] * 2 + e[2] * 4) / sum(e)
    assert exercises.check_nw_by_hand(right)
    assert not exercises.check_nw_by_hand(right + 0.01)
    assert "Hint" in capsys.readouterr().out

    def lift(q, k, sigma):
        return torch.stack([q / sigma, torch.ones_like(q)], 1), torch.stack(
            [k / sigma, -((k / sigma) ** 2) / 2], 1
        )

    assert exercises.check_lifted_features(lift)
    assert not exercises.check_lifted_features(lambda q, k, s: (q[:, None], k[:, None]))
    assert not exercises.check_lifted_features(lambda q, k, s: 1 / 0)

    assert exercises.check_batched_pooling(
        lambda w, v: torch.bmm(w.unsqueeze(1), v.unsqueeze(-1)).reshape(-1)
    )
    assert not exercises.check_batched_pooling(lambda w, v: (w * v).sum(0))
    assert exercises.check_sigma_from_w(0.25, 4.0) and exercises.check_sigma_from_w(0.25, -4.0)
    assert not exercises.check_sigma_from_w(4.0, 4.0)


def test_grid_search_self_checks(data):
    # independent grid searches (float64 NumPy) for the answers
    x, y = data.x_train.numpy().astype(np.float64), data.y_train.numpy().astype(np.float64)

    def loo_w(w):
        preds = [
            gaussian_nw_numpy(x[i : i + 1], np.delete(x, i), np.delete(y, i), 1 / w)[0]
            for i in range(len(x))
        ]
        return np.mean((np.array(preds) - y) ** 2)

    grid = np.arange(0.5, 15.0001, 0.05)
    best_w = grid[np.argmin([loo_w(w) for w in grid])]
    assert exercises.check_best_w(best_w, data)
    assert not exercises.check_best_w(12.0, data)

    def loo_box(s):
        preds = []
        for i in range(len(x)):
            k, v = np.delete(x, i), np.delete(y, i)
            d = np.abs(x[i] - k)
            inside = d / s < 1
            if not inside.any():
                inside = d == d.min()
            preds.append(v[inside].mean())
        return np.mean((np.array(preds) - y) ** 2)

    grid = np.arange(0.05, 2.0001, 0.0125)
    best_s = grid[np.argmin([loo_box(s) for s in grid])]
    assert exercises.check_loo_bandwidth(best_s, data, "boxcar")
    assert not exercises.check_loo_bandwidth(2.0, data, "boxcar")
