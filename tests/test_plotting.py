"""helpers.plotting: what is drawn equals what was passed in, whatever its shape, device or grad."""

import matplotlib

matplotlib.use("Agg")

import base64  # noqa: E402

import IPython  # noqa: E402
import IPython.display  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.data import make_regression_data  # noqa: E402
from helpers.plotting import Animator, plot, plot_kernel_reg, show_heatmaps, to_numpy  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_heatmap_2d_tensor_with_grad():
    m = torch.rand(3, 4, requires_grad=True)
    fig = show_heatmaps(m * 2, "keys", "queries")
    (ax,) = heatmap_axes(fig)
    np.testing.assert_allclose(ax.images[0].get_array(), (m * 2).detach().numpy())
    assert ax.get_xlabel() == "keys" and ax.get_ylabel() == "queries"


def test_heatmap_3d_is_one_row():
    m = torch.rand(2, 3, 5)
    fig = show_heatmaps(m, "k", "q", titles=["a", "b"])
    axes = heatmap_axes(fig)
    assert len(axes) == 2
    assert [ax.get_title() for ax in axes] == ["a", "b"]
    for ax, expected in zip(axes, m):
        np.testing.assert_allclose(ax.images[0].get_array(), expected.numpy())


def test_heatmap_4d_grid_and_shared_colour_scale():
    m = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    fig = show_heatmaps(m, "k", "q")
    axes = heatmap_axes(fig)
    assert len(axes) == 6
    for ax, expected in zip(axes, m.reshape(6, 2, 2)):
        np.testing.assert_allclose(ax.images[0].get_array(), expected.numpy())
        assert ax.images[0].get_clim() == (0.0, 23.0)


def test_heatmap_half_precision_and_non_contiguous():
    m = torch.rand(4, 3).t().to(torch.bfloat16)
    fig = show_heatmaps(m, "k", "q")
    np.testing.assert_allclose(heatmap_axes(fig)[0].images[0].get_array(), m.float().numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_heatmap_cuda_tensor():
    m = torch.rand(3, 3, device="cuda")
    fig = show_heatmaps(m, "k", "q")
    np.testing.assert_allclose(heatmap_axes(fig)[0].images[0].get_array(), m.cpu().numpy())


@pytest.mark.parametrize("shape", [(5,), (1, 1, 1, 2, 2)])
def test_heatmap_wrong_rank_names_the_argument(shape):
    with pytest.raises(ValueError, match=r"matrices .*got shape"):
        show_heatmaps(torch.zeros(shape), "k", "q")


def test_heatmap_empty_and_title_mismatch():
    with pytest.raises(ValueError, match="empty"):
        show_heatmaps(torch.zeros(0, 3), "k", "q")
    with pytest.raises(ValueError, match="titles"):
        show_heatmaps(torch.zeros(2, 2, 2), "k", "q", titles=["only one"])


def test_plot_draws_each_curve():
    x = torch.linspace(0, 1, 5)
    ax = plot(x, [x**2, 2 * x], "x", "y", legend=["sq", "lin"])
    lines = ax.get_lines()
    assert len(lines) == 2
    np.testing.assert_allclose(lines[0].get_ydata(), (x**2).numpy())
    np.testing.assert_allclose(lines[1].get_xdata(), x.numpy())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["sq", "lin"]


def test_plot_kernel_reg_draws_truth_prediction_and_points():
    d = make_regression_data()
    y_hat = torch.full((50,), 1.5, requires_grad=True) * 1
    ax = plot_kernel_reg(y_hat, d, label="avg")
    truth, pred, points = ax.get_lines()
    np.testing.assert_allclose(truth.get_ydata(), d.y_truth.numpy())
    np.testing.assert_allclose(pred.get_ydata(), np.full(50, 1.5))
    np.testing.assert_allclose(points.get_xdata(), d.x_train.numpy())
    with pytest.raises(ValueError, match="y_hat"):
        plot_kernel_reg(torch.zeros(10), d)


def test_to_numpy_accepts_tensors_with_grad_and_low_precision():
    t = torch.ones(2, requires_grad=True) * 3
    np.testing.assert_array_equal(to_numpy(t), [3.0, 3.0])
    assert to_numpy(torch.ones(2, dtype=torch.float16)).dtype == np.float32
    np.testing.assert_array_equal(to_numpy([1, 2]), [1, 2])


def test_animator_records_and_draws_outside_ipython():
    anim = Animator(xlabel="epoch", legend=["train", "test"], every=0.0)
    for epoch in range(3):
        anim.add(epoch, [1.0 / (epoch + 1), None if epoch == 0 else 2.0])
    assert anim.X == [[0.0, 1.0, 2.0], [1.0, 2.0]]
    assert anim.Y == [[1.0, 0.5, 1 / 3], [2.0, 2.0]]
    lines = anim.axes.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), [1.0, 0.5, 1 / 3])


def test_animator_displays_once_then_updates_in_place(monkeypatch):
    calls = []

    class Handle:
        def update(self, obj, raw=False):
            calls.append(("update", obj, raw))

    def fake_display(obj, raw=False, display_id=False):
        calls.append(("display", obj, raw))
        assert display_id is True  # updated in place, never cleared: earlier prints survive
        return Handle()

    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", fake_display)
    anim = Animator(every=0.0, figsize=(3, 2))
    for i in range(4):
        anim.add(i, i * i)
    assert [c[0] for c in calls] == ["display", "update", "update", "update"]
    for _, bundle, raw in calls:
        # a real PNG is sent, not a Figure object IPython may not know how to draw yet
        assert raw is True
        assert base64.b64decode(bundle["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        assert bundle["text/plain"] == "<Figure size 300x200 with 1 Axes>"
    np.testing.assert_allclose(anim.axes.get_lines()[0].get_ydata(), [0, 1, 4, 9])


def test_heatmap_tick_labels_name_keys_and_queries():
    fig = show_heatmaps(torch.rand(2, 3), "k", "q", xticklabels=["a", "b", "c"], yticklabels="xy")
    ax = heatmap_axes(fig)[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y"]
    with pytest.raises(ValueError, match="xticklabels has 2 entries"):
        show_heatmaps(torch.rand(2, 3), "k", "q", xticklabels=["a", "b"])


def test_heatmap_separate_scales_follow_each_panel():
    narrow = torch.eye(3)  # weights up to 1
    wide = torch.full((3, 3), 1 / 3) + torch.eye(3) * 0.01  # weights near 1/3
    fig = show_heatmaps(torch.stack([narrow, wide]), "k", "q", share_scale=False)
    clims = [ax.images[0].get_clim() for ax in heatmap_axes(fig)]
    assert clims[0] == pytest.approx((0.0, 1.0))
    assert clims[1] == pytest.approx((1 / 3, 1 / 3 + 0.01))
    assert len(fig.axes) == 4  # two panels, each with its own colorbar
    shared = show_heatmaps(torch.stack([narrow, wide]), "k", "q")
    assert [ax.images[0].get_clim() for ax in heatmap_axes(shared)] == [(0.0, 1.0)] * 2


def test_heatmap_flat_panel_with_its_own_scale_starts_at_zero():
    fig = show_heatmaps(torch.full((1, 4, 5), 0.2), "k", "q", share_scale=False)
    assert heatmap_axes(fig)[0].images[0].get_clim() == pytest.approx((0.0, 0.2))


def test_freeze_background_renders_the_same_picture_and_keeps_updating():
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    from helpers.plotting import freeze_background

    def render(fig) -> np.ndarray:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=50, facecolor="white")
        return np.asarray(Image.open(buf).convert("RGB")).astype(int)

    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], label="fixed")
    (line,) = ax.plot([0, 1], [1, 0], "r-")
    title = ax.text(0.5, 1.02, "before", transform=ax.transAxes, ha="center")
    ax.legend()
    full = render(fig)
    freeze_background(fig, [line, title], dpi=50)
    frozen = render(fig)
    assert frozen.shape == full.shape
    assert (np.abs(frozen - full).sum(axis=-1) > 30).mean() < 0.005  # the same picture
    line.set_ydata([0.5, 0.5])
    moved = render(fig)
    assert (np.abs(moved - frozen).sum(axis=-1) > 30).mean() > 0.001  # the line moved
