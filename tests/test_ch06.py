"""Chapter 06: the head explorer, the hand-made two-head example and the self-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import ch06
from helpers.explorer import REPLACE_NONE


def _out(check, answer, capsys):
    result = check(answer)
    return result, capsys.readouterr().out


# --- the example and the explorer -----------------------------------------------------------


def test_position_letter_tokens():
    tokens, letters = ch06.position_letter_tokens("abca")
    assert letters == ["a", "b", "c"] and tokens.shape == (1, 4, 7)
    want = torch.tensor([[1, 0, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1, 0],
                         [0, 0, 1, 0, 0, 0, 1], [0, 0, 0, 1, 1, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(tokens[0], want)


def test_two_head_example_attends_to_the_previous_position_and_the_same_letter():
    w = ch06.two_head_example().head_weights[0].detach()  # (2, 8, 8)
    text = ch06.EXAMPLE_TEXT
    # head 0: query j's score is 20/√8 on key j-1, 0 elsewhere (computed by hand)
    big = math.exp(20 / math.sqrt(8))
    for j in range(1, 8):
        assert w[0, j, j - 1].item() == pytest.approx(big / (big + 7), rel=1e-5)
    torch.testing.assert_close(w[0, 0], torch.full((8,), 1 / 8))  # no predecessor: uniform
    for j, c in enumerate(text):  # head 1: the same letter, split evenly
        same = [i for i, d in enumerate(text) if d == c]
        assert set(torch.nonzero(w[1, j] > 0.1).flatten().tolist()) == set(same)


def test_head_explorer_moves_the_row_and_the_head():
    gen = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(3, 4, 5, generator=gen), dim=-1)  # (h, n_q, n_k)
    box = ch06.head_explorer(weights)
    fig = box.figure
    ax_map, ax_bar = fig.axes
    assert [t.get_text() for t in ax_bar.get_xticklabels()] == ["0", "1", "2", "3", "4"]
    assert [t.get_text() for t in ax_map.get_yticklabels()] == ["0", "1", "2", "3"]
    for head in range(3):
        box.controls["head"].value = head
        for query in range(4):
            box.controls["query"].value = query
            assert box.figure is fig
            assert box.state["head"] == head and box.state["query"] == query
            np.testing.assert_allclose(box.state["weights"], weights[head, query].numpy())
            np.testing.assert_allclose([b.get_height() for b in ax_bar.patches],
                                       weights[head, query].numpy())
            np.testing.assert_allclose(ax_map.images[0].get_array(), weights[head].numpy())
            frame = [p for p in ax_map.patches][0]
            assert frame.get_y() == query - 0.5
            assert ax_map.get_title() == f"head {head}"
            assert ax_bar.get_title() == f"query {query}: its row of weights"


def test_head_explorer_labels_name_positions_from_0():
    box = ch06.EXPLORER_DEMOS["heads"]()
    ax_map = box.figure.axes[0]
    assert [t.get_text() for t in ax_map.get_yticklabels()][:2] == ["0 a", "1 b"]
    box.controls["query"].value = 4
    assert box.figure.axes[1].get_title() == "query 4 b: its row of weights"
    assert box.figure.axes[0].get_title() == "head 0: previous position"
    assert int(np.argmax(box.state["weights"])) == 3


def test_head_explorer_rejects_bad_input():
    with pytest.raises(ValueError, match="num_heads, n_q, n_k"):
        ch06.head_explorer(torch.zeros(4, 5))
    with pytest.raises(ValueError, match="query labels"):
        ch06.head_explorer(torch.zeros(1, 2, 3), query_labels=["a"])


# --- the self-checks -------------------------------------------------------------------------


def test_head_width(capsys):
    assert _out(ch06.check_head_width, 20, capsys)[0]
    assert _out(ch06.check_head_width, 20.0, capsys)[0]
    ok, out = _out(ch06.check_head_width, 500, capsys)
    assert not ok and "Hint" in out and "20" not in out


def test_transpose_qkv_shape(capsys):
    assert _out(ch06.check_transpose_qkv_shape, (6, 7, 4), capsys)[0]
    assert _out(ch06.check_transpose_qkv_shape, torch.Size([6, 7, 4]), capsys)[0]
    for wrong in ((2, 3, 7, 4), (6, 4, 7), (2, 7, 12)):
        ok, out = _out(ch06.check_transpose_qkv_shape, wrong, capsys)
        assert not ok and "(6, 7, 4)" not in out


def test_mha_parameters(capsys):
    want = 3 * 64 * 32 + 64 * 64  # W_q, W_k, W_v: (64, 32); W_o: (64, 64); no biases
    assert _out(ch06.check_mha_parameters, want, capsys)[0]
    ok, out = _out(ch06.check_mha_parameters, 4 * 64 * 64, capsys)
    assert not ok and "Hint" in out and str(want) not in out


def test_next_token_head(capsys):
    right = 20 * torch.diag(torch.ones(7), diagonal=-1)  # column j holds e_{j+1}
    assert _out(ch06.check_next_token_head, right, capsys)[0]
    assert _out(ch06.check_next_token_head, right.tolist(), capsys)[0]
    ok, out = _out(ch06.check_next_token_head, 20 * torch.diag(torch.ones(7), 1), capsys)
    assert not ok and "Hint" in out and "diagonal" not in out
    ok, out = _out(ch06.check_next_token_head, torch.diag(torch.ones(7), -1) * 0.1, capsys)
    assert not ok  # the right keys but far too weak to dominate
    ok, out = _out(ch06.check_next_token_head, torch.zeros(7, 7), capsys)
    assert not ok and "(8, 8)" in out


def test_first_token_head(capsys):
    wq, wk = torch.zeros(8, 12), torch.zeros(8, 12)
    wq[0, :8] = 20  # every position asks for feature 0 ...
    wk[0, 0] = 1  # ... which only the token at position 0 has
    assert _out(ch06.check_first_token_head, (wq, wk), capsys)[0]
    ok, out = _out(ch06.check_first_token_head, (wk, wq), capsys)
    assert not ok and "Hint" in out
    wq_weak = wq / 20  # right direction, softmax not sharp enough
    assert not _out(ch06.check_first_token_head, (wq_weak, wk), capsys)[0]
    ok, out = _out(ch06.check_first_token_head, wq, capsys)
    assert not ok and "pair" in out
    assert _out(ch06.check_first_token_head, None, capsys) == (False, REPLACE_NONE + "\n")
