"""Chapter 06: the head explorer, the hand-made two-head example and the self-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check

from helpers import attention
from helpers.ui import ch06
from helpers.ui.checks import REPLACE_NONE

# --- the example and the explorer -----------------------------------------------------------


def test_position_letter_tokens():
    tokens, letters = attention.position_letter_tokens("abca")
    assert letters == ["a", "b", "c"] and tokens.shape == (1, 4, 7)
    want = torch.tensor([[1, 0, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 1, 0],
                         [0, 0, 1, 0, 0, 0, 1], [0, 0, 0, 1, 1, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(tokens[0], want)


def test_two_head_example_attends_to_the_previous_position_and_the_same_letter():
    w = attention.two_head_example().head_weights[0].detach()  # (2, 8, 8)
    text = attention.EXAMPLE_TEXT
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


def test_folded_index(capsys):
    # reference by hand, independent of transpose_qkv: feature 13 of 4 heads of p = 5 is feature
    # 3 of head 2; example 2's head 2 is row 2 * 4 + 2 of the folded batch; the position stays
    p = 20 // 4
    want = (2 * 4 + 13 // p, 1, 13 % p)
    assert want == (10, 1, 3)
    for right in (want, list(want), torch.tensor(want), (10.0, 1.0, 3.0)):
        assert run_check(ch06.check_folded_index, right, capsys)[0]
    for wrong in ((2, 1, 13), (11, 1, 3), (10, 1, 2), (1, 10, 3), (4 * 2 + 3, 1, 2), (6, 1, 3)):
        ok, out = run_check(ch06.check_folded_index, wrong, capsys)
        assert not ok and "Hint" in out and "10" not in out
    for malformed in ((10, 1), "10, 1, 3", (10, 1, 3.5), (True, 1, 3), 10):
        ok, out = run_check(ch06.check_folded_index, malformed, capsys)
        assert not ok and "whole numbers" in out


def test_weight_counts(capsys):
    # reference: one (n_q, n_k) softmax per head per example, 2 examples, 50 queries, 30 keys
    want = [2 * h * 50 * 30 for h in (1, 4, 16)]
    assert run_check(ch06.check_weight_counts, want, capsys)[0]
    assert run_check(ch06.check_weight_counts, tuple(want), capsys)[0]
    for wrong in ([3000, 3000, 3000], [1500, 6000, 24000], [50 * 30 * h for h in (1, 4, 16)],
                  [2 * 50 * 30 * 64 // h for h in (1, 4, 16)]):
        ok, out = run_check(ch06.check_weight_counts, wrong, capsys)
        assert not ok and "Hint" in out and "3000" not in out
    ok, out = run_check(ch06.check_weight_counts, [3000, 3000, 3000], capsys)
    assert "1 : 4 : 16" in out
    for malformed in ([3000, 12000], "3000", [3000, 12000, "48000"]):
        ok, out = run_check(ch06.check_weight_counts, malformed, capsys)
        assert not ok and "whole numbers" in out


def test_mha_parameters(capsys):
    # by hand: each head has W_q, W_k, W_v of shape (32, 16); W_o reads the h heads' 16 outputs
    # each, side by side, and writes 64; no biases
    def by_hand(h):
        return h * 3 * 32 * 16 + (h * 16) * 64

    want = (by_hand(4), by_hand(8))
    assert want == (10240, 20480)
    for right in (want, list(want), torch.tensor(want), (10240.0, 20480.0)):
        assert run_check(ch06.check_mha_parameters, right, capsys)[0]
    wrong_answers = [
        (10240, 3 * 32 * 128 + 128 * 128),  # MultiHeadAttention(128, 8): W_o as (128, 128)
        (10240, 10240),  # "heads split the same matrices" (true only for p = p_o / h)
        (3 * 32 * 64, 3 * 32 * 128),  # W_o forgotten
        (4 * 3 * 32 * 16 + 16 * 64, 8 * 3 * 32 * 16 + 16 * 64),  # W_o as one head's (16, 64)
        (4 * 64 * 64, 4 * 128 * 128),  # four square matrices
        (3 * 32 * 64 + 64 * 64, 3 * 32 * 64 + 64 * 64 + 8 * 16),
    ]
    for wrong in wrong_answers:
        ok, out = run_check(ch06.check_mha_parameters, wrong, capsys)
        assert not ok and "Hint" in out and "20480" not in out and "10240" not in out
    ok, out = run_check(ch06.check_mha_parameters, wrong_answers[0], capsys)
    assert "4 heads is right" in out
    for malformed in (10240, "10240, 20480", (10240, 20480, 0), (10240.5, 20480)):
        ok, out = run_check(ch06.check_mha_parameters, malformed, capsys)
        assert not ok and "whole numbers" in out
    assert run_check(ch06.check_mha_parameters, None, capsys) == (False, REPLACE_NONE + "\n")


def test_next_token_head(capsys):
    right = 20 * torch.diag(torch.ones(7), diagonal=-1)  # column j holds e_{j+1}
    assert run_check(ch06.check_next_token_head, right, capsys)[0]
    assert run_check(ch06.check_next_token_head, right.tolist(), capsys)[0]
    ok, out = run_check(ch06.check_next_token_head, 20 * torch.diag(torch.ones(7), 1), capsys)
    assert not ok and "Hint" in out and "diagonal" not in out
    ok, out = run_check(ch06.check_next_token_head, torch.diag(torch.ones(7), -1) * 0.1, capsys)
    assert not ok  # the right keys but far too weak to dominate
    ok, out = run_check(ch06.check_next_token_head, torch.zeros(7, 7), capsys)
    assert not ok and "(8, 8)" in out


def test_first_token_head(capsys):
    wq, wk = torch.zeros(8, 12), torch.zeros(8, 12)
    wq[0, :8] = 20  # every position asks for feature 0 ...
    wk[0, 0] = 1  # ... which only the token at position 0 has
    assert run_check(ch06.check_first_token_head, (wq, wk), capsys)[0]
    ok, out = run_check(ch06.check_first_token_head, (wk, wq), capsys)
    assert not ok and "Hint" in out
    wq_weak = wq / 20  # right direction, softmax not sharp enough
    assert not run_check(ch06.check_first_token_head, (wq_weak, wk), capsys)[0]
    ok, out = run_check(ch06.check_first_token_head, wq, capsys)
    assert not ok and "pair" in out
    assert run_check(ch06.check_first_token_head, None, capsys) == (False, REPLACE_NONE + "\n")
