"""Chapter 13: the importance maps the chapter measures against their definitions, retrieval
precision against a loop, the explorer moves with its controls and draws the right numbers, and the
self-checks accept right answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import vision
from helpers.ui import ch13
from helpers.ui.checks import REPLACE_NONE
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
    maps = vision.importance_maps(vit, images, labels)
    with torch.no_grad():
        vit(images)
    att = [a.double().numpy() for a in vit.attention_maps]  # per layer (5, 2, 17, 17)
    assert maps["heads"].shape == (5, 2, 2, 16)
    np.testing.assert_allclose(maps["cls"].numpy(), att[-1][:, :, 0, 1:].mean(1), atol=1e-6)
    for b in range(5):  # rollout by hand: mix each layer with I, renormalise, multiply
        roll = np.eye(17)
        for layer, a in enumerate(att):
            mixed = 0.5 * a[b].mean(0) + 0.5 * np.eye(17)
            roll = (mixed / mixed.sum(1, keepdims=True)) @ roll
            np.testing.assert_allclose(maps["rollout_layers"][b, layer].numpy(), roll[0, 1:],
                                       atol=1e-6)
        np.testing.assert_allclose(maps["rollout"][b].numpy(), roll[0, 1:], atol=1e-6)
    with torch.no_grad():  # occlusion and ink by a loop over the patches
        for b in range(5):
            p_full = torch.softmax(vit(images[b : b + 1]).double(), -1)[0, labels[b]]
            for p in range(16):
                r, c = divmod(p, 4)
                img = images[b : b + 1].clone()
                ink = float(img[..., 2 * r : 2 * r + 2, 2 * c : 2 * c + 2].sum())
                assert float(maps["ink"][b, p]) == pytest.approx(ink, abs=1e-5)
                img[..., 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 0.0
                drop = float(p_full - torch.softmax(vit(img).double(), -1)[0, labels[b]])
                assert float(maps["occlusion_raw"][b, p]) == pytest.approx(drop, abs=1e-5)
                tied = 0.0 if abs(drop) < 1e-3 - 1e-6 else drop
                if abs(abs(drop) - 1e-3) > 1e-5:  # away from the threshold: tied or kept
                    assert float(maps["occlusion"][b, p]) == pytest.approx(tied, abs=1e-5)
    assert torch.all(maps["ink"][:, 0] == 0) and torch.all(maps["occlusion"][:, 0] == 0)
    assert (maps["occlusion"] == 0).sum() > 5  # patch 0 and at least one round-off tie
    assert (maps["occlusion"] != 0).any()


def test_spelled_positions_end_at_the_first_eos():
    E, a = vision.EOS, 5
    tokens = torch.tensor([[a, a, E, a, E], [a, a, a, a, a], [E, a, a, a, a]])
    want = [[True, True, True, False, False], [True] * 5, [True, False, False, False, False]]
    assert vision.spelled_positions(tokens).tolist() == want


def test_letter_focus_leaves_out_positions_after_eos():
    maps = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
                         [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]],
                         [[0.5, 0.25, 0.25], [0.5, 0.4, 0.1]]])  # (N=3, T=2, P=3)
    ink = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    valid = torch.tensor([[True, True], [True, False], [True, True]])  # image 1 ended at t=0
    f = vision.letter_focus(maps, ink, valid)
    assert f["count"] == [3, 2]
    np.testing.assert_allclose(f["max_weight"], [(0.7 + 0.6 + 0.5) / 3, (0.8 + 0.5) / 2])
    np.testing.assert_allclose(f["same_patch"], [2 / 3, 1 / 2])
    np.testing.assert_allclose(f["ink_at_top"], [(1 + 5 + 7) / 3, (3 + 7) / 2])
    with pytest.raises(ValueError, match="valid"):
        vision.letter_focus(maps, ink, valid.int())


def test_letter_focus_counts_heaviest_patches():
    maps = torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
                         [[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]],
                         [[0.5, 0.25, 0.25], [0.5, 0.4, 0.1]]])  # (N=3, T=2, P=3)
    ink = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    f = vision.letter_focus(maps, ink)
    np.testing.assert_allclose(f["max_weight"], [(0.7 + 0.6 + 0.5) / 3, (0.8 + 0.6 + 0.5) / 3])
    np.testing.assert_allclose(f["same_patch"], [2 / 3, 2 / 3])  # patch 0, then patch 2
    np.testing.assert_allclose(f["ink_at_top"], [(1 + 5 + 7) / 3, (3 + 6 + 7) / 3])
    with pytest.raises(ValueError, match="letter_maps"):
        vision.letter_focus(maps, ink[:, :2])


def test_precision_at_k_is_a_loop():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(6, 9, generator=gen)
    ql, kl = torch.randint(0, 3, (6,), generator=gen), torch.randint(0, 3, (9,), generator=gen)
    want = np.mean([[kl[j] == ql[i] for j in w[i].argsort(descending=True)[:4]]
                    for i in range(6)])
    assert vision.precision_at_k(w, ql, kl, 4) == pytest.approx(float(want))
    sq = torch.rand(5, 5, generator=gen) + 10 * torch.eye(5)
    labels = torch.tensor([0, 0, 1, 1, 2])
    # without excluding itself each query's top item is itself
    assert vision.precision_at_k(sq, labels, labels, 1) == 1.0
    assert vision.precision_at_k(sq, labels, labels, 1, exclude_self=True) < 1.0
    with pytest.raises(ValueError, match="n_q, n_k"):
        vision.precision_at_k(w, ql[:2], kl, 1)


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
        roll_share = rollout[index, layer] / rollout[index, layer].sum()
        np.testing.assert_allclose(fig.axes[2].images[0].get_array(),
                                   roll_share.reshape(4, 4).numpy(), rtol=1e-5)
        top = max(ch13.SHARE_FLOOR, float((att / att.sum()).max()), float(roll_share.max()))
        assert fig.axes[1].images[0].get_clim() == pytest.approx((0, top))
        assert fig.axes[2].images[0].get_clim() == pytest.approx((0, top))
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


def test_importance_explorer_reuses_its_figure_and_artists():
    box = ch13.EXPLORER_DEMOS["importance"]()
    fig = box.figure
    images = [ax.images[0] for ax in fig.axes[:4]]
    n_axes = len(fig.axes)  # four panels and two colour bars
    assert n_axes == 6
    for i in range(1, 6):
        box.controls["index"].value = i
        assert box.figure is fig and len(fig.axes) == n_axes
        assert [ax.images[0] for ax in fig.axes[:4]] == images  # updated, not redrawn
        assert all(len(ax.images) == 1 for ax in fig.axes[:4])


def test_draw_maps_shares_one_scale_between_attention_and_rollout():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4)
    att = np.array([0.9] + [0.1 / 15] * 15)
    roll = np.full(16, 1 / 16)
    ims = ch13.draw_maps(axes, np.zeros((8, 8)), (4, 4), att, roll, np.zeros(16))
    assert ims[1].get_clim() == ims[2].get_clim() == (0, pytest.approx(0.9))
    assert ims[3].get_clim() == (-1, 1)
    assert len(fig.axes) == 6  # a colour bar for the shares and one for occlusion
    # a uniform map alone is pale: the scale reaches at least SHARE_FLOOR
    ims = ch13.draw_maps(axes, np.zeros((8, 8)), (4, 4), roll, roll, np.zeros(16),
                         colorbars=False)
    assert ims[1].get_clim() == (0, ch13.SHARE_FLOOR) and 1 / 16 < ch13.SHARE_FLOOR / 2
    plt.close(fig)


@pytest.mark.parametrize(
    "check,right,wrong",
    [
        (ch13.check_retrieval_weight,
         float(torch.softmax(torch.tensor([0.9, 0.8, 0.3, 0.1], dtype=torch.float64) / 0.05,
                             0)[0]),
         float(torch.softmax(torch.tensor([0.9, 0.8, 0.3, 0.1], dtype=torch.float64), 0)[0])),
        (ch13.check_vit_scores, 3 * 4 * 50**2, 3 * 4 * 49**2),  # forgot [CLS]
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


def test_vit_scores_check_counts_independently(capsys):
    # a different geometry, counted token by token: 32x32 in 8x8 patches, 2 heads, 1 block
    tokens = 1 + sum(1 for _r in range(0, 32, 8) for _c in range(0, 32, 8))
    assert ch13.check_vit_scores(2 * tokens**2, img_size=32, patch_size=8, heads=2, layers=1)
    assert "Correct" in capsys.readouterr().out
    assert not ch13.check_vit_scores(50**2)  # one head of one block
    out = capsys.readouterr().out
    assert "every head" in out and "30000" not in out


def _quiet_maps():
    occ = torch.tensor([[0.0, 5e-4, 0.2, -2e-4], [0.3, 0.0, -0.1, 1e-5]])
    ink = torch.tensor([[0.0, 1.0, 2.0, 3.0], [1.0, 0.0, 1.0, 2.0]])
    return vision.ImportanceMaps(occlusion_raw=occ, ink=ink)


def test_quiet_patches_check(capsys):
    maps = _quiet_maps()
    # inked patches: (0,1) quiet, (0,2), (0,3) quiet, (1,0), (1,2), (1,3) quiet -> 3 of 6
    assert ch13.check_quiet_patches(0.5, maps)
    assert "Correct" in capsys.readouterr().out
    assert not ch13.check_quiet_patches(5 / 8, maps)  # over all patches
    out = capsys.readouterr().out
    assert "only the patches that hold ink" in out and "0.5" not in out
    assert not ch13.check_quiet_patches(0.9, maps)
    assert "hint" in capsys.readouterr().out.lower()
    assert not ch13.check_quiet_patches(None, maps)
    assert "Replace None" in capsys.readouterr().out


def _prediction_maps():
    # 20 images x 16 patches: a fixed pattern of blank patches (score exactly 0, as blanking changes
    # nothing) and inked patches with scores of every size, some below the 1e-3 threshold
    gen = torch.Generator().manual_seed(1)
    ink = torch.rand(20, 16, generator=gen) * (torch.rand(20, 16, generator=gen) > 0.3)
    occ = torch.where(torch.rand(20, 16, generator=gen) < 0.45,
                      (torch.rand(20, 16, generator=gen) - 0.5) * 1.8e-3,
                      (torch.rand(20, 16, generator=gen) - 0.3) * 0.4)
    occ = torch.where(ink == 0, torch.zeros_like(occ), occ)
    return vision.ImportanceMaps(occlusion_raw=occ, ink=ink)


def test_quiet_prediction_check(capsys):
    maps = _prediction_maps()
    occ, ink = maps["occlusion_raw"], maps["ink"]
    inked = [(i, p) for i in range(20) for p in range(16) if ink[i, p] > 0]
    want = sum(abs(float(occ[i, p])) < 1e-3 for i, p in inked) / len(inked)  # counted directly
    zero = sum(abs(float(v)) < 1e-3 for v in occ.flatten()) / occ.numel()  # the printed shares
    blank = sum(float(v) == 0 for v in ink.flatten()) / ink.numel()
    assert 0.2 < want < 0.8 and 0.2 < blank < 0.4  # a pattern where the wrong answers differ
    assert ch13.check_quiet_prediction(want, maps) is True
    assert "Correct" in capsys.readouterr().out
    # what a reader computes from the two shares as printed, to 2 decimals, is accepted
    rounded = (round(zero, 2) - round(blank, 2)) / (1 - round(blank, 2))
    assert ch13.check_quiet_prediction(rounded, maps) is True
    capsys.readouterr()
    wrongs = ((zero, "blank ones too"), (zero - blank, "share of all the patches"),
              (zero / (1 - blank), "still holds the blank"), (0.95, "whatever the model"))
    for wrong, words in wrongs:
        assert abs(wrong - want) > 0.05
        assert ch13.check_quiet_prediction(wrong, maps) is False
        out = capsys.readouterr().out
        assert words in out and "hint" in out.lower()
        assert f"{want:.2f}" not in out and f"{want:.3f}" not in out
    assert ch13.check_quiet_prediction(None, maps) is False
    assert capsys.readouterr().out.strip() == REPLACE_NONE
    # the measuring check agrees with the prediction's answer on the same maps
    assert ch13.check_quiet_patches(want, maps) is True


def _rollout_2x2(r=0.5):
    # by hand: each layer mixed with I (rows of A and I already sum to 1), then A2_hat @ A1_hat
    a1 = np.array(ch13.ROLLOUT_A1)
    a2 = np.array(ch13.ROLLOUT_A2)
    h1, h2 = (1 - r) * a1 + r * np.eye(2), (1 - r) * a2 + r * np.eye(2)
    return h1, h2


def test_rollout_check(capsys):
    h1, h2 = _rollout_2x2()
    np.testing.assert_allclose(h1, [[0.95, 0.05], [0.25, 0.75]])
    right = h2 @ h1
    assert ch13.check_rollout(h1.tolist(), right.tolist()) is True
    assert "Correct" in capsys.readouterr().out
    assert ch13.check_rollout(h1.tolist()) is False  # Â₁ right, rollout missing
    assert "Â₁ is right" in capsys.readouterr().out
    assert ch13.check_rollout(ch13.ROLLOUT_A1, right) is False  # Â₁ without the identity
    out = capsys.readouterr().out
    assert "identity" in out and f"{h1[0, 0]:.2f}" not in out
    assert ch13.check_rollout(h1, h1 @ h2) is False  # the wrong order
    out = capsys.readouterr().out
    assert "order" in out and f"{right[0, 0]:.3f}" not in out
    raw = np.array(ch13.ROLLOUT_A2) @ h1
    assert ch13.check_rollout(h1, raw) is False  # no residual in layer 2
    assert "identity" in capsys.readouterr().out
    assert ch13.check_rollout([1, 2, 3]) is False
    assert "shape" in capsys.readouterr().out
    assert ch13.check_rollout(None) is False
    assert "Replace None" in capsys.readouterr().out
    # the reference agrees with the library's rollout
    lib = vision.attention_rollout([torch.tensor(ch13.ROLLOUT_A1, dtype=torch.float64)[None, None],
                                    torch.tensor(ch13.ROLLOUT_A2, dtype=torch.float64)[None, None]],
                                   0.5)[0]
    np.testing.assert_allclose(lib.numpy(), right, atol=1e-12)
