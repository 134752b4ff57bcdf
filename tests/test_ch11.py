"""Chapter 11: the online-softmax explorer draws what helpers.scale computes; the self-checks
accept right answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import ch11


@pytest.fixture
def box():
    g = torch.Generator().manual_seed(0)
    scores = torch.randn(23, generator=g, dtype=torch.float64) * 2
    values = torch.randn(23, generator=g, dtype=torch.float64)
    b = ch11.online_softmax_explorer(scores, values)
    b.scores, b.values = scores, values
    return b


def test_explorer_shows_the_softmax_of_the_keys_seen_so_far(box):
    box.controls["block_size"].value = 5
    box.controls["blocks"].value = 3
    seen = box.scores[:15]
    assert box.state["stop"] == 15 and box.state["max"] == pytest.approx(float(seen.max()))
    w = np.asarray(box.state["weights"])
    np.testing.assert_allclose(w[:15], torch.softmax(seen, 0).numpy(), rtol=1e-12)
    assert (w[15:] == 0).all()
    bars = box.figure.axes[0].patches
    np.testing.assert_allclose([b.get_height() for b in bars], w)
    want = float(torch.softmax(seen, 0) @ box.values[:15])
    assert box.state["output"] == pytest.approx(want)


def test_explorer_ends_at_the_exact_output_for_every_block_size(box):
    exact = float(torch.softmax(box.scores, 0) @ box.values)
    for size in ch11.BLOCK_SIZES:
        box.controls["block_size"].value = size
        box.controls["blocks"].value = box.controls["blocks"].max  # clamped to the last block
        assert box.state["blocks"] == math.ceil(23 / size) == box.state["num_blocks"]
        assert box.state["output"] == pytest.approx(exact)
    assert box.figure is box.figure.axes[0].figure  # one figure, updated in place


def test_explorer_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="same length"):
        ch11.online_softmax_explorer(torch.zeros(5), torch.zeros(4))


def test_demo_builds():
    demo = ch11.EXPLORER_DEMOS["online_softmax"]()
    assert demo.state["stop"] == 10


@pytest.mark.parametrize(
    "check,right,wrong",
    [
        (ch11.check_score_matrix_bytes, 2**30, 16384**2),
        (ch11.check_rescale_factor, math.exp(-3), math.exp(3)),
        (ch11.check_causal_tiles, 8 * 9 // 2, 64),
    ],
)
def test_checks_accept_right_and_hint_at_wrong(check, right, wrong, capsys):
    assert check(right) is True
    assert capsys.readouterr().out.startswith("Correct")
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "Hint" in out and f"{right}" not in out
    assert check(float(right)) is True  # ints and floats alike
