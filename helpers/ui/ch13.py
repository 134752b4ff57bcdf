"""Chapter 13, attention beyond text: the importance explorer (a test digit, its [CLS] attention,
rollout and occlusion side by side) and the exercises' self-checks.

The models, rollout, occlusion and the measurements made with them live in `helpers.vision`; this
module only draws them and checks the reader's answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch
from matplotlib.figure import Figure

from helpers.ui.checks import as_number, check, matches, self_check
from helpers.ui.explorer import build_explorer
from helpers.vision import (
    ImportanceMaps,
    importance_maps,
    rank_correlation,
)

__all__ = [
    "EXPLORER_DEMOS",
    "check_quiet_patches",
    "check_quiet_prediction",
    "check_retrieval_weight",
    "check_rollout",
    "check_vit_scores",
    "draw_maps",
    "importance_explorer",
]


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

SHARE_FLOOR = 0.25  # the attention shares' colour scale reaches at least this: uniform over 16
# patches (0.0625) stays pale; a map whose largest share is higher stretches the scale to it


def _share(x: np.ndarray) -> np.ndarray:
    """A non-negative map as shares of its total (a blank map stays zero)."""
    total = x.sum()
    return x / total if total > 0 else x


def share_limit(*maps: np.ndarray) -> float:
    """The top of the shared colour scale of attention shares: the largest share shown, at least
    SHARE_FLOOR."""
    return float(max([SHARE_FLOOR] + [_share(np.asarray(m)).max() for m in maps]))


def draw_maps(axes, image: np.ndarray, grid: tuple[int, int], attention: np.ndarray,
              rollout: np.ndarray, occlusion: np.ndarray, colorbars: bool = True):
    """Image, attention share, rollout share and occlusion on four axes; returns the images.
    Attention and rollout share one colour scale (0 to `share_limit` of both); occlusion has its
    own, signed, -1 to 1. With colorbars, each scale gets a colour bar (on the rollout and the
    occlusion panel)."""
    gh, gw = grid
    hi = share_limit(attention, rollout)
    ims = [axes[0].imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")]
    for ax, m, cmap, lo, top in ((axes[1], _share(attention), "Reds", 0, hi),
                                 (axes[2], _share(rollout), "Reds", 0, hi),
                                 (axes[3], occlusion, "RdBu_r", -1, 1)):
        ims.append(ax.imshow(m.reshape(gh, gw), cmap=cmap, vmin=lo, vmax=top,
                             interpolation="nearest"))
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if colorbars:
        fig = axes[0].figure
        for im, ax in ((ims[2], axes[2]), (ims[3], axes[3])):
            bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            bar.ax.tick_params(labelsize=7)
    return ims


def importance_explorer(maps: ImportanceMaps, images: torch.Tensor, labels: torch.Tensor,
                        predictions: torch.Tensor) -> widgets.VBox:
    """Pick a test digit, a layer and a head: the image, that head's [CLS] attention, the
    rollout of layers 0..layer and occlusion side by side (attention and rollout as shares of the
    patches, on one scale with a colour bar; occlusion on its own signed scale with its own).

    State: `index`, `layer`, `head`, `attention`, `rollout`, `occlusion` (each (P,)),
    `rho_attention`, `rho_rollout` (their rank correlation with occlusion for this digit),
    `share_max` (the top of the attention and rollout colour scale).
    """
    heads = maps["heads"]
    if heads.dim() != 4 or images.dim() != 4 or len(images) != len(heads):
        raise ValueError(f"maps['heads'] must be (N, layers, heads, P) and images (N, 1, H, W), "
                         f"got {tuple(heads.shape)} and {tuple(images.shape)}")
    N, L, H, P = heads.shape
    side = int(round(math.sqrt(P)))
    grid = (side, P // side)
    pics = images[:, 0].numpy()
    heads_np, occ = heads.numpy(), maps["occlusion"].numpy()
    roll = maps["rollout_layers"].numpy()  # (N, L, P)
    if roll.shape != (N, L, P):
        raise ValueError(f"maps['rollout_layers'] must be (N, layers, P) = {(N, L, P)}, got "
                         f"{roll.shape}")
    head_options = [("mean", -1)] + [(str(h), h) for h in range(H)]

    fig = Figure(figsize=(10.4, 2.7), dpi=80)
    fig.subplots_adjust(left=0.01, right=0.95, bottom=0.04, top=0.88, wspace=0.25)
    axes = fig.subplots(1, 4)
    ims = draw_maps(axes, pics[0], grid, heads_np[0, -1].mean(0), roll[0, -1], occ[0])
    titles = [ax.set_title("", fontsize=8.5) for ax in axes]
    titles[3].set_text("occlusion: drop in p(true)")

    def draw(index: int, layer: int, head: int):
        att = heads_np[index, layer].mean(0) if head < 0 else heads_np[index, layer, head]
        ims[0].set_data(pics[index])
        ims[1].set_data(_share(att).reshape(grid))
        ims[2].set_data(_share(roll[index, layer]).reshape(grid))
        hi = share_limit(att, roll[index, layer])
        ims[1].set_clim(0, hi)
        ims[2].set_clim(0, hi)
        ims[3].set_data(occ[index].reshape(grid))
        rho_a = rank_correlation(torch.as_tensor(att), torch.as_tensor(occ[index])).item()
        rho_r = rank_correlation(torch.as_tensor(roll[index, layer]),
                                 torch.as_tensor(occ[index])).item()
        which = "mean" if head < 0 else f"head {head}"
        titles[0].set_text(f"test digit {index}: a {int(labels[index])} "
                           f"(predicted {int(predictions[index])})")
        titles[1].set_text(f"[CLS], layer {layer}, {which}: ρ = {rho_a:+.2f}")
        titles[2].set_text(f"rollout, layers 0-{layer}: ρ = {rho_r:+.2f}")
        state = {"index": index, "layer": layer, "head": head, "attention": att,
                 "rollout": roll[index, layer], "occlusion": occ[index], "rho_attention": rho_a,
                 "rho_rollout": rho_r, "share_max": hi}
        return fig, state

    controls = {
        "index": widgets.IntSlider(value=0, min=0, max=N - 1, description="test digit"),
        "layer": widgets.Dropdown(options=list(range(L)), value=L - 1, description="layer"),
        "head": widgets.Dropdown(options=head_options, value=-1, description="head"),
    }
    return build_explorer(controls, draw, title="Which patches matter? [CLS] attention, rollout "
                          "and occlusion (ρ: rank correlation with occlusion over the patches)")


def _demo_importance() -> widgets.VBox:
    gen = torch.Generator().manual_seed(0)
    N, L, H, P = 6, 2, 2, 16
    heads = torch.softmax(3 * torch.randn(N, L, H, P, generator=gen), -1)
    rollout_layers = torch.softmax(torch.randn(N, L, P, generator=gen), -1)
    maps = ImportanceMaps(heads=heads, rollout_layers=rollout_layers,
                          occlusion=torch.rand(N, P, generator=gen) - 0.2)
    images = torch.rand(N, 1, 8, 8, generator=gen)
    labels = torch.arange(N)
    return importance_explorer(maps, images, labels, labels)


EXPLORER_DEMOS: dict[str, Callable[[], widgets.VBox]] = {"importance": _demo_importance}


# ---------------------------------------------------------------------------------------------
# Self-checks
# ---------------------------------------------------------------------------------------------


QUIET = 1e-3  # an occlusion score smaller than this in size counts as "no change"


def _quiet_share(occlusion_raw: torch.Tensor, ink: torch.Tensor) -> tuple[float, float]:
    """(share of inked patches whose |occlusion| < QUIET, the same share over all patches)."""
    quiet = occlusion_raw.abs() < QUIET
    inked = ink > 0
    return ((quiet & inked).sum() / inked.sum()).item(), quiet.double().mean().item()


def _shares_printed(occlusion_raw: torch.Tensor, ink: torch.Tensor) -> tuple[float, float]:
    """The two shares 13.6 prints: (patch scores that count as 0, patches with no ink)."""
    return ((occlusion_raw.abs() < QUIET).double().mean().item(),
            (ink == 0).double().mean().item())


def _shipped_maps() -> ImportanceMaps:
    """The shipped patch-2 ViT's importance maps of the test digits."""
    from helpers.vision import digits_split, load_checkpoint

    data = digits_split()
    return importance_maps(load_checkpoint("ch13_vit_p2.pt")[0], data.x_test, data.y_test)


PREDICTION_TOLERANCE = 0.015  # covers the two shares' rounding to 2 decimals


@self_check
def check_quiet_prediction(answer: Any, maps: ImportanceMaps | None = None) -> bool:
    """Exercise 1(a) (predict): from the two shares 13.6 prints (scores that count as 0, blank
    patches), the share of the inked patches whose |occlusion| < QUIET. A blank patch is unchanged
    by blanking, so every one of them counts as 0: the inked share is (zero - blank) / (1 - blank).
    `maps` defaults to the shipped patch-2 ViT's maps of the test digits."""
    got = as_number(answer)
    if maps is None:
        maps = _shipped_maps()
    zero, blank = _shares_printed(maps["occlusion_raw"], maps["ink"])
    want = (zero - blank) / (1 - blank)

    def close(value: float) -> bool:
        return abs(got - value) <= PREDICTION_TOLERANCE

    hint = ("which patches count as 0 whatever the model has learned? Take them out of the count, "
            "and out of the total.")
    if not close(want):
        if close(zero):
            hint = ("that share counts every patch, the blank ones too. What score does a patch "
                    "with no ink get, and how many of the 0s are theirs?")
        elif close(zero - blank):
            hint = ("that is a share of all the patches; the question asks for a share of the "
                    "inked ones.")
        elif close(zero / (1 - blank)):
            hint = ("you divided by the inked patches' share, but the count you divided still "
                    "holds the blank patches.")
    return check(close(want), hint,
                 "Correct: blanking a patch with no ink writes 0s over 0s, so the model's output "
                 "cannot change and every blank patch counts as 0 by construction. The rest of "
                 "the 0s are inked patches. Now measure it in the next cell.")


@self_check
def check_quiet_patches(answer: Any, maps: ImportanceMaps | None = None) -> bool:
    """Exercise 1(b) (run): among the patches that hold ink, the share whose blanking moves the
    probability of the true class by less than QUIET (maps["occlusion_raw"]). `maps` defaults to
    the shipped patch-2 ViT's maps of the test digits."""
    got = as_number(answer)
    if maps is None:
        maps = _shipped_maps()
    want, over_all = _quiet_share(maps["occlusion_raw"], maps["ink"])
    hint = ("among the (image, patch) pairs with maps['ink'] > 0, count those with "
            "|maps['occlusion_raw']| < 1e-3 and divide by the number of inked pairs.")
    if abs(got - over_all) <= 5e-3:
        hint = "that is the share over all patches; count only the patches that hold ink."
    return check(abs(got - want) <= 5e-3, hint,
                 "Correct: many inked patches can be removed one at a time without any effect. "
                 "The evidence is redundant (another patch of the stroke says the same), or the "
                 "model was already certain; occlusion of one patch cannot see either.")


ROLLOUT_A1 = ((0.9, 0.1), (0.5, 0.5))
ROLLOUT_A2 = ((0.2, 0.8), (0.6, 0.4))


@self_check
def check_rollout(answer: Any, rollout: Any = None, a1: tuple = ROLLOUT_A1,
                  a2: tuple = ROLLOUT_A2, residual_weight: float = 0.5) -> bool:
    """Exercise 2: first Â₁ (answer), the first layer's map a1 mixed with the identity, then the
    rollout Â₂ Â₁ of the two one-head 2×2 layers (rollout), each as a 2×2 matrix."""
    r = residual_weight
    eye = np.eye(2)
    h1, h2 = [(1 - r) * np.array(a) + r * eye for a in (a1, a2)]
    h1, h2 = h1 / h1.sum(1, keepdims=True), h2 / h2.sum(1, keepdims=True)
    if matches(answer, np.array(a1), atol=1e-3):
        return check(False, "Â₁ mixes the map with the identity (the residual path): weigh "
                     "each by r and 1 - r.")
    if not matches(answer, h1, atol=1e-3, name="a1_hat"):
        return check(False, "Â₁ = (1 - r)·A₁ + r·I, then divide each row by its sum.")
    if rollout is None:
        return check(False, "Â₁ is right. Now compute the rollout the same way for layer 2 and "
                     "pass it as the second argument.")
    want = h2 @ h1
    if matches(rollout, h1 @ h2, atol=1e-3, name="rollout") and \
            not matches(rollout, want, atol=1e-3):
        return check(False, "the order: the first layer's map acts first, so it stands on the "
                     "right of the product.")
    if any(matches(rollout, np.array(a2) @ m, atol=1e-3) for m in (np.array(a1), h1)):
        return check(False, "mix layer 2's map with the identity too before multiplying.")
    return check(matches(rollout, want, atol=1e-3, name="rollout"),
                 "Â₂ is built like Â₁; then the later layer's matrix times the earlier one's.",
                 "Correct: each row still sums to 1, a distribution over the input tokens.")


VIT_IMAGE, VIT_PATCH, VIT_HEADS, VIT_LAYERS = 28, 4, 4, 3


@self_check
def check_vit_scores(answer: Any, img_size: int = VIT_IMAGE, patch_size: int = VIT_PATCH,
                     heads: int = VIT_HEADS, layers: int = VIT_LAYERS) -> bool:
    """Exercise 4: attention scores a ViT with a [CLS] token computes for one image, over all its
    heads and layers."""
    got = as_number(answer)
    patches = (img_size // patch_size) ** 2
    n = patches + 1
    want = layers * heads * n * n
    hint = ("count the tokens first (patches in one row, squared, and one more), then the scores "
            "of one head in one layer, then all heads and layers.")
    if got == layers * heads * patches * patches:
        hint = "the sequence holds one token that is not a patch."
    elif got in (n * n, heads * n * n, layers * n * n):
        hint = "that is part of the total: every head of every layer scores its own pairs."
    elif got == layers * heads * n:
        hint = "each of the n queries scores every one of the n keys."
    return check(got == want, hint,
                 "Correct: the scores grow with the square of the number of patches, so halving "
                 "the patch size multiplies them by about 16.")


RETRIEVAL_SIMILARITIES = (0.9, 0.8, 0.3, 0.1)


@self_check
def check_retrieval_weight(answer: Any, similarities: tuple = RETRIEVAL_SIMILARITIES,
                           temperature: float = 0.05) -> bool:
    """Exercise 3: the weight soft retrieval gives the best item, softmax(s / temperature)[0]."""
    got = as_number(answer)
    s = np.array(similarities) / temperature
    want = float(np.exp(s[0] - s.max()) / np.exp(s - s.max()).sum())
    naive = float(np.exp(similarities[0]) / np.exp(np.array(similarities)).sum())
    hint = "divide every similarity by the temperature before the softmax."
    if abs(got - naive) <= 2e-3:
        hint = "that is the softmax at temperature 1; divide by the temperature first."
    return check(abs(got - want) <= 2e-3, hint,
                 "Correct: at this temperature the search is almost a ranking already.")
