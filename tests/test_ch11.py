"""Chapter 11: the online-softmax explorer draws what helpers.scale computes; the self-checks
accept right answers, hint at wrong ones and never print the answer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers.ui import ch11


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


def test_blocks_control_ends_at_the_last_block_of_each_block_size(box):
    for size in (*ch11.BLOCK_SIZES, ch11.BLOCK_SIZES[0]):
        box.controls["block_size"].value = size
        assert box.controls["blocks"].max == math.ceil(23 / size)
        assert box.state["blocks"] == box.controls["blocks"].value <= math.ceil(23 / size)


def _drawn(box):
    return (box.state["stop"], box.state["blocks"], round(box.state["output"], 12), box.png)


def test_every_control_changes_the_picture_over_its_whole_range(box):
    """Each value of each control draws something the previous value did not."""
    blocks = box.controls["blocks"]
    for size in ch11.BLOCK_SIZES:
        box.controls["block_size"].value = size
        seen = []
        for value in range(blocks.min, blocks.max + 1):
            blocks.value = value
            seen.append(_drawn(box))
        assert len(set(seen)) == len(seen) == math.ceil(23 / size)
    blocks.value = 1
    seen = []
    for size in box.controls["block_size"].options:
        box.controls["block_size"].value = size
        seen.append(_drawn(box))
    assert len(set(seen)) == len(seen)


def test_demo_blocks_control_is_bounded_by_the_real_count():
    demo = ch11.EXPLORER_DEMOS["online_softmax"]()  # 50 keys, default block size 10
    assert demo.controls["blocks"].max == 5
    demo.controls["blocks"].value = 5
    assert demo.state["stop"] == 50


def _naive_bytes():  # from the definition: 2 matrices x batch x heads x n x n x bf16 bytes
    return 2 * 8 * 16 * 8192 * 8192 * 2


def _total_rescale():  # a reference through online_softmax_steps: the first block's weights
    from helpers.scale import online_softmax_steps

    scores = torch.tensor([1.0, 0.0, 3.0, 2.0, 2.0, 5.0], dtype=torch.float64)
    steps = online_softmax_steps(scores, torch.ones(6, 1, dtype=torch.float64), 2)
    # the first block's stored terms e^{s - m}: after block 0 (m = 1) and after the end
    first = math.exp(scores[0].item() - steps[0]["max"])
    last = math.exp(scores[0].item() - steps[-1]["max"])
    return last / first


def _layers_to_reach():  # a reference by propagating reachability layer by layer
    n, w = 200, 12
    reach = {199}
    layers = 0
    while 0 not in reach:
        reach = {j for i in reach for j in range(max(0, i - w), min(n, i + w + 1))}
        layers += 1
    return layers


@pytest.mark.parametrize(
    "check,right,wrongs,malformed",
    [
        (ch11.check_naive_attention_bytes, _naive_bytes(),
         [_naive_bytes() / 2, _naive_bytes() * 2, _naive_bytes() / 128, 16384**2 * 4, 0],
         ["big", [1, 2]]),
        (ch11.check_total_rescale, _total_rescale(),
         [math.exp(-2), math.exp(4), 1.0, math.exp(-5)], ["small", [0.1]]),
        (ch11.check_causal_tiles, 8 * 9 // 2, [64, 32, 37], ["many", [36]]),
        (ch11.check_layers_to_reach, _layers_to_reach(), [16, 18, 1, 16.58, 200],
         ["deep", [17]]),
    ],
)
def test_checks_accept_right_and_hint_at_wrong(check, right, wrongs, malformed, capsys):
    assert check(right) is True
    assert capsys.readouterr().out.startswith("Correct")
    assert check(float(right)) is True  # ints and floats alike
    capsys.readouterr()
    for wrong in wrongs:
        assert check(wrong) is False, wrong
        out = capsys.readouterr().out
        assert "Hint" in out and f"{right}" not in out and f"{right:.3f}" not in out
    for bad in malformed:
        assert check(bad) is False
        assert "Not yet" in capsys.readouterr().out
    assert check(None) is False
    assert "Replace None" in capsys.readouterr().out
