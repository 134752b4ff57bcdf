"""Chapter 02: the explorer driven headlessly, and every self-check with right and wrong answers.

References are float64 NumPy formulas from tests/references.py, not the helpers under test.
"""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import pytest
import torch
from references import loo_mse_float64, nw_weights_float64

from helpers.ui import ch02
from helpers.ui.checks import REPLACE_NONE


def test_explorer_follows_every_control(regression_data):
    box = ch02.nw_explorer(regression_data, bandwidth=1.0, query=2.5)
    x, y = regression_data.x_train.numpy(), regression_data.y_train.numpy()
    fig = box.figure
    np.testing.assert_allclose(
        box.state["y_hat"],
        nw_weights_float64(regression_data.x_test, x, "gaussian", 1.0) @ y,
        rtol=1e-5,
    )

    box.controls["bandwidth"].value = 0.2
    sigma = box.controls["bandwidth"].value  # the log slider snaps to its grid
    assert box.figure is fig  # the same figure, updated in place
    assert box.state["bandwidth"] == pytest.approx(sigma)
    want = nw_weights_float64(regression_data.x_test, x, "gaussian", sigma) @ y
    np.testing.assert_allclose(box.state["y_hat"], want, rtol=1e-5)
    np.testing.assert_allclose(ch02_fit_line(box), want, rtol=1e-5)  # what is drawn
    assert box.state["test_mse"] == pytest.approx(
        float(np.mean((want - regression_data.y_truth.numpy()) ** 2)), rel=1e-5
    )

    box.controls["query"].value = 1.25
    w = nw_weights_float64([1.25], x, "gaussian", sigma)[0]
    np.testing.assert_allclose(box.state["weights"], w, rtol=1e-5, atol=1e-8)
    assert box.state["prediction"] == pytest.approx(float(w @ y), rel=1e-5)
    assert box.state["heatmap_row"] in (12, 13)  # test grid 0, 0.1, ...: 1.2 or 1.3
    stems = box.figure.axes[1].collections[0].get_segments()  # one (x, 0)-(x, weight) per key
    np.testing.assert_allclose([seg[0, 0] for seg in stems], x, rtol=1e-6)
    np.testing.assert_allclose([seg[1, 1] for seg in stems], w, rtol=1e-5, atol=1e-8)

    box.controls["kernel"].value = "constant"
    np.testing.assert_allclose(box.state["y_hat"], np.full(50, y.mean()), rtol=1e-5)
    assert box.state["uniform"]
    assert any("1/50" in t.get_text() for t in box.figure.axes[2].texts)

    box.controls["kernel"].value = "boxcar"
    box.controls["bandwidth"].value = 0.5
    sigma = box.controls["bandwidth"].value
    inside = np.abs(1.25 - x) / sigma < 1
    np.testing.assert_allclose(box.state["weights"], inside / inside.sum(), atol=1e-7)
    assert not box.state["uniform"]
    assert len(box.redraw_times) == 6


def ch02_fit_line(box) -> np.ndarray:
    """The y data of the drawn fit (the dashed line of the left panel)."""
    ax = box.figure.axes[0]
    return next(line.get_ydata() for line in ax.get_lines() if line.get_linestyle() == "--")


def test_uniform_heatmap_is_pale_and_says_so(regression_data):
    box = ch02.nw_explorer(regression_data, kernel="constant")
    image = next(a for a in box.figure.axes[2].get_images())
    pixels = np.asarray(image.get_array())  # (n_test, n_train, 4) RGBA on the fixed 0-1 scale
    assert (pixels == pixels[0, 0]).all()  # uniform
    # the colour of 1/50 on a 0-1 square-root scale (Reds), not the darkest colour
    want = np.round(np.array(matplotlib.colormaps["Reds"](np.sqrt(1 / 50))) * 255)
    np.testing.assert_allclose(pixels[0, 0], want, atol=1)
    darkest = np.round(np.array(matplotlib.colormaps["Reds"](1.0)) * 255)
    assert np.abs(pixels[0, 0].astype(int) - darkest).sum() > 200
    texts = [t.get_text() for t in box.figure.axes[2].texts]
    assert any("1/50 = 0.020" in t for t in texts)


def test_explorer_demos_build():
    box = ch02.EXPLORER_DEMOS["nw_explorer"]()
    assert set(box.controls) == {"kernel", "bandwidth", "query"}
    assert box.png.startswith(b"\x89PNG")


def test_check_nw_by_hand(capsys):
    e = [math.exp(-2.0), math.exp(-0.5), math.exp(-0.5)]  # scores -(2 - 0)^2/2, ... by hand
    total = sum(e)
    right = (1 * e[0] + 2 * e[1] + 4 * e[2]) / total
    assert ch02.BY_HAND_KEYS == (0, 1, 3) and ch02.BY_HAND_VALUES == (1, 2, 4)
    assert ch02.BY_HAND_QUERY == 2
    assert ch02.check_nw_by_hand([total, right])
    assert ch02.check_nw_by_hand([round(total, 3), round(right, 3)])  # three decimals
    assert ch02.check_nw_by_hand(torch.tensor([total, right]))
    capsys.readouterr()
    e_no_half = [math.exp(-4.0), math.exp(-1.0), math.exp(-1.0)]  # the 1/2 forgotten
    wrongs = (
        [total, 2.0],
        [sum(e_no_half), (1 * e_no_half[0] + 6 * e_no_half[1]) / sum(e_no_half)],
        [3.0, right],  # three weights' sum, not the exps'
        [total, 7 / 3],  # the plain mean of the values
        [right, total],  # swapped
    )
    for wrong in wrongs:
        assert not ch02.check_nw_by_hand(wrong)
        out = capsys.readouterr().out
        assert "Hint" in out and f"{right:.3f}" not in out and f"{total:.3f}" not in out
    assert not ch02.check_nw_by_hand([total, 2.0])
    assert "your sum is right" in capsys.readouterr().out
    assert not ch02.check_nw_by_hand(right)
    assert "two numbers" in capsys.readouterr().out
    assert not ch02.check_nw_by_hand(None)
    assert capsys.readouterr().out == REPLACE_NONE + "\n"


def test_check_far_query(regression_data, capsys):
    x = regression_data.x_train.double().numpy()
    assert np.all(np.diff(x) > 0)  # sorted: the nearest key to each side is the first or the last

    def scores(q):  # -(q - x_i)^2 / 2, in float64, shifted by the largest
        s = -((q - x) ** 2) / 2
        return s - s.max()

    right = [int(np.argmax(scores(1000.0))), int(np.argmax(scores(-1000.0)))]
    assert right == [49, 0]
    # the praise: near one-hot at 1000, shared between the two smallest keys at -1000
    w_pos, w_neg = np.exp(scores(1000.0)), np.exp(scores(-1000.0))
    assert w_pos.max() / w_pos.sum() > 0.999 and w_neg.max() / w_neg.sum() < 0.95
    assert ch02.check_far_query(right)
    assert ch02.check_far_query([-1, 0])  # Python's last position
    assert ch02.check_far_query(torch.tensor([49.0, 0.0]))
    capsys.readouterr()
    for wrong in ([0, 49], [49, 49], [0, 0], [49, 1], [48, 0], [25, 25]):
        assert not ch02.check_far_query(wrong)
        out = capsys.readouterr().out
        assert "Hint" in out and "49" not in out
    for bad in (49, [49.5, 0], [50, 0], ["a", "b"]):
        assert not ch02.check_far_query(bad)
        assert "Not yet:" in capsys.readouterr().out
    assert not ch02.check_far_query(None)
    assert capsys.readouterr().out == REPLACE_NONE + "\n"


def test_check_lifted_features(capsys):
    def right(q, k, sigma):
        return (
            torch.stack([q / sigma, torch.ones_like(q)], dim=1),
            torch.stack([k / sigma, -((k / sigma) ** 2) / 2], dim=1),
        )

    def only_sigma_one(q, k, sigma):
        return torch.stack([q, torch.ones_like(q)], 1), torch.stack([k, -(k**2) / 2], 1)

    def transposed(q, k, sigma):
        Q, K = right(q, k, sigma)
        return Q.T, K.T

    assert ch02.check_lifted_features(right)
    capsys.readouterr()
    assert not ch02.check_lifted_features(only_sigma_one)
    assert "Hint" in capsys.readouterr().out
    assert not ch02.check_lifted_features(transposed)
    assert "(2, 7) and (2, 11)" in capsys.readouterr().out


def test_check_loo_bandwidth(regression_data, capsys):
    x, y = regression_data.x_train.numpy(), regression_data.y_train.numpy()
    grid = np.arange(0.05, 2.0001, 0.0125)
    errs = [loo_mse_float64(x, y, "boxcar", s) for s in grid]
    best = float(grid[int(np.argmin(errs))])
    assert ch02.check_loo_bandwidth(best)
    capsys.readouterr()
    assert not ch02.check_loo_bandwidth(1.9)
    out = capsys.readouterr().out
    assert "Hint" in out and f"{best:.2f}" not in out
    assert not ch02.check_loo_bandwidth(-0.3)
    assert not ch02.check_loo_bandwidth(0.433)  # printed in section 2.4: must not pass
    assert not ch02.check_loo_bandwidth(0.275 / 0.577)  # a guess from the Gaussian's choice
