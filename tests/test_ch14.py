"""Chapter 14: held-out windows and losses against direct loops, the shipped uptrained models,
the explorers move with their controls (cache bytes from the formula, the mask from its
definition), decoding speed runs, and the self-checks accept right answers, hint at wrong ones and
never print the answer."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pytest
import torch

from helpers import llm, textmodels
from helpers.transformer import TinyGPT
from helpers.ui import ch14

V = 13


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyGPT(V, num_hiddens=16, num_heads=4, num_layers=2, max_len=16).eval()


def test_heldout_sequences_are_disjoint_windows_in_order():
    ids = torch.arange(50)
    seqs = llm.heldout_sequences(ids, 7)
    assert seqs.shape == (7, 7) and torch.equal(seqs.flatten(), ids[:49])
    assert llm.heldout_sequences(ids, 7, num=2).shape == (2, 7)
    with pytest.raises(ValueError, match="length=60"):
        llm.heldout_sequences(ids, 60)


def test_next_char_bits_matches_a_loop(tiny):
    seqs = torch.randint(0, V, (3, 11), generator=torch.Generator().manual_seed(1))
    total, count = 0.0, 0
    for t in range(4, 10):  # predict t + 1 from 0..t alone
        with torch.no_grad():
            logp = torch.log_softmax(tiny(seqs[:, : t + 1])[:, -1].double(), -1)  # (3, V)
        total -= float(logp[torch.arange(3), seqs[:, t + 1]].sum())
        count += 3
    want = total / count / math.log(2)
    assert llm.next_char_bits(tiny, seqs, first=4) == pytest.approx(want, rel=1e-5)
    total, count = 0.0, 0
    for t in range(4, 10, 3):
        with torch.no_grad():
            logp = torch.log_softmax(tiny(seqs[:, : t + 1])[:, -1].double(), -1)  # (3, V)
        total -= float(logp[torch.arange(3), seqs[:, t + 1]].sum())
        count += 3
    got = llm.next_char_bits(tiny, seqs, first=4, stride=3)
    assert got == pytest.approx(total / count / math.log(2), rel=1e-5)


def test_recomputed_window_bits_matches_a_loop(tiny):
    seqs = torch.randint(0, V, (2, 13), generator=torch.Generator().manual_seed(2))
    window, total, count = 4, 0.0, 0
    for t in range(window, 12, 2):  # the model on characters t-window+1..t alone
        with torch.no_grad():
            logits = tiny(seqs[:, t - window + 1 : t + 1])[:, -1].double()
        total -= float(torch.log_softmax(logits, -1)[torch.arange(2), seqs[:, t + 1]].sum())
        count += 2
    got = llm.recomputed_window_bits(tiny, seqs, window, stride=2)
    assert got == pytest.approx(total / count / math.log(2), rel=1e-5)


def test_uptrain_lowers_the_loss_and_is_seeded(tiny):
    ids = torch.arange(200) % V  # a periodic text the model can learn quickly
    a = llm.from_tinygpt(tiny, 2)
    b = llm.from_tinygpt(tiny, 2)
    la = llm.uptrain(a, ids, 12, batch_size=4, lr=3e-3)
    lb = llm.uptrain(b, ids, 12, batch_size=4, lr=3e-3)
    assert la == lb and la[-1] < la[0]
    assert not a.training


def test_decode_tokens_per_second_runs(tiny):
    rate = llm.decode_tokens_per_second(tiny, batch=2, prompt_len=4, new_tokens=3, repeats=1)
    assert rate > 0 and math.isfinite(rate)


def test_shipped_uptrained_models_load_and_beat_mean_pooling():
    for name in llm.GQA_ASSETS.values():  # they ship, each under 2 MB
        assert len((resources.files("helpers") / "assets" / name).read_bytes()) < 2 * 2**20

    base, vocab = textmodels.load_text_gpt()
    models, meta = llm.load_gqa_models(base)
    assert sorted(models) == [1, 2]
    for kv, model in models.items():
        assert model.blks[0].attention.W_k.weight.shape[0] == kv * 32
        assert meta["bits_after"][kv] < meta["bits_before"][kv]
    assert set(meta["bits_before"]) == {4, 2, 1}


def test_kv_cache_explorer_draws_the_formula():
    box = ch14.kv_cache_explorer()
    box.controls["model"].value = "Llama-3-8B"
    assert "GQA: 8" not in box.controls["kv_heads"].options  # 8 key/value heads as published
    box.controls["context"].value = 32768
    cfg = llm.PUBLISHED_CONFIGS["Llama-3-8B"]
    assert box.state["bytes_per_token"] == 2 * 32 * 8 * 128 * 2
    assert box.state["cache_bytes"] == 32768 * 2 * 32 * 8 * 128 * 2
    assert box.state["weights_bytes"] == cfg.num_params * 2
    box.controls["kv_heads"].value = "MQA: 1"
    assert box.state["num_kv_heads"] == 1 and box.state["cache_bytes"] == 32768 * 2 * 32 * 128 * 2
    box.controls["window"].value = "4096"
    assert box.state["cache_bytes"] == 4096 * 2 * 32 * 128 * 2
    line = box.figure.axes[0].lines[1]
    np.testing.assert_allclose(line.get_ydata() * 2**30,
                               [min(c, 4096) * 2 * 32 * 128 * 2 for c in ch14.CONTEXTS])
    box.controls["model"].value = "Mistral-7B v0.1"
    box.controls["kv_heads"].value = "as published"
    box.controls["window"].value = "as published"
    assert box.state["window"] == 4096 and box.state["cache_bytes"] == 4096 * 131072
    box.controls["window"].value = "none"
    assert box.state["window"] is None and box.state["cache_bytes"] == 32768 * 131072
    assert "Mistral-7B v0.1" in box.figure.axes[0].get_title()
    assert box.figure.axes[0].lines[2].get_label() == "the weights as published (fp16)"
    box.controls["model"].value = "GPT-2 small"  # 12 heads: no groups of 8 key/value heads
    assert "GQA: 8" not in box.controls["kv_heads"].options
    assert "GQA: 4" in box.controls["kv_heads"].options
    box.controls["kv_heads"].value = "GQA: 4"
    assert box.state["num_kv_heads"] == 4
    box.controls["model"].value = "Llama-2-7B"  # 32 heads, MHA as published: 8 again, 4 kept
    assert "GQA: 8" in box.controls["kv_heads"].options
    assert "MHA: every head" not in box.controls["kv_heads"].options  # draws as published
    assert "none" not in box.controls["window"].options  # no window as published
    assert box.controls["kv_heads"].value == "GQA: 4" and box.state["num_kv_heads"] == 4
    box.controls["kv_heads"].value = "GQA: 8"
    box.controls["model"].value = "GPT-2 small"  # 8 is not offered: back to as published
    assert box.controls["kv_heads"].value == "as published"
    assert box.state["num_kv_heads"] == 12


def test_mask_explorer_draws_the_mask_and_one_querys_keys():
    box = ch14.mask_explorer(n=24)
    box.controls["window"].value = 4
    box.controls["sinks"].value = 2
    box.controls["query"].value = 9
    want = llm.sliding_window_mask(24, 24, 4, 2).numpy()
    np.testing.assert_array_equal(box.state["mask"], want)
    assert box.state["visible"] == [0, 1, 6, 7, 8, 9] and box.state["count"] == 6
    np.testing.assert_array_equal(box.figure.axes[0].images[0].get_array(), want.astype(float))
    assert "query 9 sees 6 keys: 0-1, 6-9" in box.figure.axes[0].get_title()
    assert box.controls["window"].max == 22  # 24 positions, 2 sinks: wider changes nothing
    box.controls["window"].value = box.controls["window"].max  # the widest window: causal
    np.testing.assert_array_equal(box.state["mask"], np.tril(np.ones((24, 24), dtype=bool)))
    box.controls["sinks"].value = 0
    assert box.controls["window"].max == 24
    box.controls["window"].value = 23  # one narrower than the widest: key 0 drops out of row 23
    assert not box.state["mask"][23, 0]
    box.controls["sinks"].value = 2
    box.controls["window"].value = 21  # with 2 sinks: key 2 drops out of row 23
    assert not box.state["mask"][23, 2] and box.state["mask"][23, :2].all()
    box.controls["documents"].value = "three packed documents"  # 0-7, 8-13, 14-23
    box.controls["query"].value = 16
    assert box.state["visible"] == [14, 15, 16]
    box.controls["window"].value = 2
    box.controls["sinks"].value = 1
    box.controls["query"].value = 20  # its document starts at 14: sink 14, window 19-20
    assert box.state["visible"] == [14, 19, 20]
    # written out by hand: window 2, 1 sink, documents 0-7, 8-13, 14-23 (rows 12-16)
    rows = {12: [8, 11, 12], 13: [8, 12, 13], 14: [14], 15: [14, 15], 16: [14, 15, 16]}
    for q, keys in rows.items():
        assert box.state["mask"][q].nonzero()[0].tolist() == keys, q


@pytest.mark.parametrize("name", sorted(ch14.EXPLORER_DEMOS))
def test_demos_build(name):
    box = ch14.EXPLORER_DEMOS[name]()
    assert box.state and box.png


@pytest.mark.parametrize(
    "check,right,wrong",
    [
        (ch14.check_visible_count, 528_992_250, 528_484_352),  # counted in the test below
        (ch14.check_kv_heads_for_budget, 10, 12),  # 0.625 GiB per K/V head; 10 divides 40
        (ch14.check_decode_tokens_per_second, 2e12 / 14e9, 2e12 / 7e9),
    ],
)
def test_checks(check, right, wrong, capsys):
    assert check(right) is True
    assert "Correct" in capsys.readouterr().out
    assert check(wrong) is False
    out = capsys.readouterr().out
    assert "hint" in out.lower() or "Not yet" in out
    assert str(right) not in out and f"{right:.3f}" not in out and f"{right:.0f}" not in out
    assert check(None) is False
    assert "Replace None" in capsys.readouterr().out


def test_prefix_lm_check(capsys):
    def right(prefix):
        return lambda b, h, q, k: (k <= q) | (k < prefix)

    def causal_only(prefix):
        return lambda b, h, q, k: k <= q

    def placeholder(prefix):
        return lambda b, h, q, k: None

    assert ch14.check_prefix_lm_mask_mod(right) is True
    assert "Correct" in capsys.readouterr().out
    assert ch14.check_prefix_lm_mask_mod(causal_only) is False
    assert "disagree" in capsys.readouterr().out
    assert ch14.check_prefix_lm_mask_mod(placeholder) is False
    assert "bool tensor" in capsys.readouterr().out
    assert ch14.check_prefix_lm_mask_mod(right(3)) is False  # the mask_mod, not the factory
    assert "Not yet" in capsys.readouterr().out


def test_kv_heads_budget_check_hints_at_the_grouping(capsys):
    assert ch14.check_kv_heads_for_budget(12) is False  # 12 fit, but 40 heads do not split in 12
    assert "groups" in capsys.readouterr().out
    assert ch14.check_kv_heads_for_budget(13) is False
    assert "not fit" in capsys.readouterr().out


def test_sink_weight_check(capsys):
    torch.manual_seed(0)
    model = llm.GQAGPT(11, 16, 4, 2, 2, 48).eval()
    seqs = torch.randint(0, 11, (3, 41))
    model.window, model.num_sinks = 16, 4
    with torch.no_grad():
        model(seqs[:, :-1])
    want = max(w[:, :, 32:, 0].mean((0, 2)).max().item() for w in model.attention_weights)
    model.window, model.num_sinks = None, 0
    assert ch14.check_sink_weight(round(want, 2), model, seqs) is True
    assert "Correct" in capsys.readouterr().out
    assert (model.window, model.num_sinks) == (None, 0)  # restored
    assert ch14.check_sink_weight(want + 0.05, model, seqs) is False
    out = capsys.readouterr().out
    assert "Not yet" in out and f"{want:.2f}" not in out
    assert ch14.check_sink_weight(None, model, seqs) is False


def test_the_scripts_first_steps_reproduce_the_stored_uptraining_curves():
    """tools/train_ch14.py's first uptraining steps give the stored losses (one thread, seeded)."""
    from helpers.text import load_corpus

    torch.set_num_threads(1)
    base, vocab = textmodels.load_text_gpt()
    _, meta = llm.load_gqa_models(base)
    ids = vocab.encode(load_corpus().stream("train"))
    u, n = llm.UPTRAIN, 3
    for kv in llm.GQA_ASSETS:
        model = llm.from_tinygpt(base, kv)
        losses = llm.uptrain(model, ids, n, u["batch_size"], u["lr"], u["seed"])
        assert losses == pytest.approx(meta["losses"][kv][:n], rel=2e-3)
        assert meta["losses"][kv][-1] < meta["losses"][kv][0]  # and the stored curve fell


def test_visible_count_check_against_masks_and_a_loop(capsys):
    def count(n, window, sinks):  # the definition: j <= p and (p - j < window or j < sinks)
        return sum(1 for p in range(n) for j in range(p + 1) if p - j < window or j < sinks)

    for n, window, sinks in ((12, 4, 2), (30, 7, 3), (9, 9, 0)):
        assert int(llm.sliding_window_mask(n, n, window, sinks).sum()) == count(n, window, sinks)
        assert ch14.check_visible_count(count(n, window, sinks), n, window, sinks) is True
    n, window, sinks = 131_072, 4096, 4
    head = window * (window + 1) // 2  # queries 0..window-1 see every earlier key
    tail = (n - window) * window + sum(min(sinks, p - window + 1) for p in range(window, n))
    assert ch14.check_visible_count(head + tail) is True
    capsys.readouterr()
    wrongs = ((n * (n + 1) // 2, "no window"), (head + (n - window) * window, "alone"),
              (head + (n - window) * (window + sinks), "twice"), (head + tail + 1, "row"))
    for wrong, words in wrongs:
        assert ch14.check_visible_count(wrong) is False
        assert words in capsys.readouterr().out
