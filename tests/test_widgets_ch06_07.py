"""The chapter 6-7 explorers, driven headlessly: move a control, check what was drawn."""

import numpy as np
import pytest
import torch

from helpers.widgets import alignment_explorer, head_explorer


def _weights():
    g = torch.Generator().manual_seed(0)
    return torch.softmax(torch.randn(2, 3, 4, generator=g), dim=-1)  # (heads, n_q, n_k)


def test_head_explorer_follows_its_controls():
    w = _weights()
    box = head_explorer(w, query_labels="xyz", key_labels="abcd", head_names=["pos", "content"])
    np.testing.assert_allclose(box.state["weights"], w[0, 0].numpy())
    box.controls["query"].value = 2
    assert box.state["query"] == 2
    np.testing.assert_allclose(box.state["weights"], w[0, 2].numpy())
    box.controls["head"].value = 1
    np.testing.assert_allclose(box.state["weights"], w[1, 2].numpy())
    # the bar chart shows exactly that row, and the heatmap the whole head
    ax_map, ax_bar = box.figure.axes[:2]
    np.testing.assert_allclose([b.get_height() for b in ax_bar.patches], w[1, 2].numpy())
    np.testing.assert_allclose(ax_map.images[0].get_array(), w[1].numpy())
    assert ax_map.get_title() == "content" and "z" in ax_bar.get_title()


def test_head_explorer_rejects_bad_shapes():
    with pytest.raises(ValueError, match="num_heads"):
        head_explorer(torch.ones(3, 4))
    with pytest.raises(ValueError, match="query labels"):
        head_explorer(_weights(), query_labels="xy")


def test_alignment_explorer_shows_the_chosen_example():
    w = torch.rand(3, 4, 5)  # (N, steps, T_src)
    box = alignment_explorer(["abc", "abcde", "ab"], ["cba", "edcb", "ba"], w)
    np.testing.assert_allclose(box.state["weights"], w[0, :4, :3].numpy())
    box.controls["example"].value = 2
    assert box.state["source"] == "ab" and box.state["prediction"] == "ba"
    np.testing.assert_allclose(box.state["weights"], w[2, :3, :2].numpy())
    ax = box.figure.axes[0]
    np.testing.assert_allclose(ax.images[0].get_array(), w[2, :3, :2].numpy())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a", "EOS"]
    box.controls["example"].value = 1  # 4 predicted tokens + EOS > 4 steps: clipped to the steps
    assert box.state["weights"].shape == (4, 5)
    with pytest.raises(ValueError, match="sources"):
        alignment_explorer(["ab"], ["ba", "x"], w)
