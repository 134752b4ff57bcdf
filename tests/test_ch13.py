"""Chapter 13: the importance maps the chapter measures against their definitions, retrieval
precision against a loop, the explorer moves with its controls and draws the right numbers, and the
self-checks accept right answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import ch13, vision
from helpers.vision import ViT


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return ViT(8, 2, 16, 24, 2, 2, 0.0, 0.0).eval()


def test_importance_maps_follow_their_definitions(vit):
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 8, 8, generator=gen)
    images[:, :, :2, :2] = 0.0  # patch 0 holds no ink
    labels = torch.tensor([0, 1, 2, 3, 4])
    maps = ch13.importance_maps(vit, images, labels)
    with torch.no_grad():
        vit(images)
    att = vit.attention_maps
    assert maps["heads"].shape == (5, 2, 2, 16)
    torch.testing.assert_close(maps["cls"], att[-1][:, :, 0, 1:].mean(1))
    torch.testing.assert_close(maps["rollout"], vision.attention_rollout(att, 0.5)[:, 0, 1:])
    torch.testing.assert_close(maps["rollout_layers"][:, 0],
                               vision.attention_rollout(att[:1], 0.5)[:, 0, 1:])
    torch.testing.assert_close(maps["rollout_layers"][:, -1], maps["rollout"])
    torch.testing.assert_close(maps["occlusion"],
                               vision.occlusion_importance(vit, images, labels, 2))
    torch.testing.assert_close(maps["ink"], vision.patch_ink(images, 2))
    assert torch.all(maps["ink"][:, 0] == 0) and torch.all(maps["occlusion"][:, 0].abs() < 1e-6)


def test_letter_focus_counts_heaviest_patches():
    maps = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
                         [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]],
                         [[0.5, 0.25, 0.25], [0.5, 0.4, 0.1]]])  # (N=3, T=2, P=3)
    ink = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    f = ch13.letter_focus(maps, ink)
    np.testing.assert_allclose(f["max_weight"], [(0.7 + 0.6 + 0.5) / 3, (0.8 + 0.6 + 0.5) / 3])
    np.testing.assert_allclose(f["same_patch"], [2 / 3, 2 / 3])  # patch 0, then patch 2
    np.testing.assert_allclose(f["ink_at_top"], [(1 + 5 + 7) / 3, (3 + 6 + 7) / 3])
    with pytest.raises(ValueError, match="letter_maps"):
        ch13.letter_focus(maps, ink[:, :2])


def test_precision_at_k_is_a_loop():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(6, 9, generator=gen)
    ql, kl = torch.randint(0, 3, (6,), generator=gen), torch.randint(0, 3, (9,), generator=gen)
    want = np.mean([[kl[j] == ql[i] for j in w[i].argsort(descending=True)[:4]]
                    for i in range(6)])
    assert ch13.precision_at_k(w, ql, kl, 4) == pytest.approx(float(want))
    sq = torch.rand(5, 5, generator=gen) + 10 * torch.eye(5)
    labels = torch.tensor([0, 0, 1, 1, 2])
    # without excluding itself each query's top item is itself
    assert ch13.precision_at_k(sq, labels, labels, 1) == 1.0
    assert ch13.precision_at_k(sq, labels, labels, 1, exclude_self=True) < 1.0
    with pytest.raises(ValueError, match="n_q, n_k"):
        ch13.precision_at_k(w, ql[:2], kl, 1)


def test_importance_explorer_draws_the_chosen_maps():
    box = ch13.EXPLORER_DEMOS["importance"]()
    gen = torch.Generator().manual_seed(0)
    N, L, H, P = 6, 2, 2, 16
    heads = torch.softmax(3 * torch.randn(N, L, H, P, generator=gen), -1)
    rollout = torch.softmax(torch.randn(N, L, P, generator=gen), -1)
    occlusion = torch.rand(N, P, generator=gen) - 0.2
    fig = box.figure
    for index, layer, head in ((3, 0, 1), (5, 1, -1), (0, 1, 0)):
        box.controls["index"].value = index
        box.controls["layer"].value = layer
        box.controls["head"].value = head
        att = heads[index, layer].mean(0) if head < 0 else heads[index, layer, head]
        np.testing.assert_allclose(box.state["attention"], att.numpy(), rtol=1e-6)
        np.testing.assert_allclose(box.state["occlusion"], occlusion[index].numpy(), rtol=1e-6)
        shown = fig.axes[1].images[0].get_array()
        np.testing.assert_allclose(shown, (att / att.sum()).reshape(4, 4).numpy(), rtol=1e-5)
        np.testing.assert_allclose(fig.axes[3].images[0].get_array(),
                                   occlusion[index].reshape(4, 4).numpy(), rtol=1e-6)
        rho = vision.rank_correlation(att.double(), occlusion[index].double()).item()
        assert box.state["rho_attention"] == pytest.approx(rho, abs=1e-6)
        roll = rollout[index, layer].double()
        np.testing.assert_allclose(box.state["rollout"], roll.numpy(), rtol=1e-6)
        rho_r = vision.rank_correlation(roll, occlusion[index].double()).item()
        assert box.state["rho_rollout"] == pytest.approx(rho_r, abs=1e-6)
        assert f"test digit {index}" in fig.axes[0].get_title()
        assert f"layer {layer}" in fig.axes[1].get_title()
    assert box.figure is fig
    with pytest.raises(ValueError, match="layers, heads"):
        ch13.importance_explorer({"heads": heads[0]}, torch.zeros(6, 1, 8, 8), torch.arange(6),
                                 torch.arange(6))


def test_importance_explorer_redraws_fast():
    box = ch13.EXPLORER_DEMOS["importance"]()
    for i in range(1, 6):
        box.controls["index"].value = i
    assert np.median(box.redraw_times[1:]) < 0.25  # 100 ms on a quiet machine; slack for CI


@pytest.mark.parametrize(
    "check,right,wrong",
    [
        (ch13.check_blank_patch, 0.0, 0.1),
        (ch13.check_retrieval_weight,
         float(torch.softmax(torch.tensor([0.9, 0.8, 0.3, 0.1], dtype=torch.float64) / 0.05,
                             0)[0]),
         float(torch.softmax(torch.tensor([0.9, 0.8, 0.3, 0.1], dtype=torch.float64), 0)[0])),
    ],
)
def test_number_checks(check, right, wrong, capsys):
    assert check(right) is True
    assert "Correct" in capsys.readouterr().out
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "hint" in out.lower()
    assert f"{right:.3f}" not in out and f"{right:.2f}" not in out
    assert check(None) is False
    assert "Replace None" in capsys.readouterr().out


def _rollout_2x2(r=0.5):
    a1 = torch.tensor(ch13.ROLLOUT_A1, dtype=torch.float64)[None, None]
    a2 = torch.tensor(ch13.ROLLOUT_A2, dtype=torch.float64)[None, None]
    return vision.attention_rollout([a1, a2], r)[0]


def test_rollout_check(capsys):
    right = _rollout_2x2()
    assert ch13.check_rollout(right.tolist()) is True
    assert "Correct" in capsys.readouterr().out
    eye = torch.eye(2, dtype=torch.float64)
    h1 = 0.5 * torch.tensor(ch13.ROLLOUT_A1, dtype=torch.float64) + 0.5 * eye
    h2 = 0.5 * torch.tensor(ch13.ROLLOUT_A2, dtype=torch.float64) + 0.5 * eye
    assert ch13.check_rollout(h1 @ h2) is False  # the wrong order
    out = capsys.readouterr().out
    assert "order" in out and f"{right[0, 0].item():.3f}" not in out
    raw = torch.tensor(ch13.ROLLOUT_A2) @ torch.tensor(ch13.ROLLOUT_A1)
    assert ch13.check_rollout(raw) is False  # no residual
    assert "identity" in capsys.readouterr().out
    assert ch13.check_rollout([1, 2, 3]) is False
    assert "shape" in capsys.readouterr().out
    assert ch13.check_rollout(None) is False
    assert "Replace None" in capsys.readouterr().out
