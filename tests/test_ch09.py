"""Chapter 09: the attention explorer, the planted-bug blocks and the self-checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check

from helpers import seq2seq as s2s
from helpers import transformer
from helpers.transformer import make_transformer_seq2seq
from helpers.ui import ch09
from helpers.ui.checks import REPLACE_NONE

# --- collecting the weights ------------------------------------------------------------------


def _small_batch():
    data = s2s.make_seq_task(4, 3, 6, 5, seed=3)
    torch.manual_seed(0)
    model = make_transformer_seq2seq(8, num_hiddens=16, ffn_num_hiddens=32, num_heads=2)
    return model, data


def test_collect_attention_shapes_and_rows_sum_to_one():
    model, data = _small_batch()
    dec_in = s2s.decoder_input(data.tgt)
    w = transformer.collect_attention(model, data.src, data.src_len, dec_in)
    B, Ts, To = 4, data.src.shape[1], dec_in.shape[1]
    assert w["encoder self"].shape == (B, 2, 2, Ts, Ts)
    assert w["decoder self"].shape == (B, 2, 2, To, To)
    assert w["cross"].shape == (B, 2, 2, To, Ts)
    for k in ch09.KINDS:
        torch.testing.assert_close(w[k].sum(-1), torch.ones(w[k].shape[:-1]))
    # decoder self-attention is causal: nothing above the diagonal
    assert torch.all(w["decoder self"].triu(1) == 0)
    # padding keys get no weight
    for b, n in enumerate(data.src_len.tolist()):
        assert torch.all(w["cross"][b, ..., n:] == 0)
        assert torch.all(w["encoder self"][b, ..., n:] == 0)


def test_collect_attention_equals_greedy_decoding_weights():
    model, data = _small_batch()
    preds, greedy_w = s2s.predict_greedy(model, data.src, data.src_len)  # (B, steps, T_src)
    steps = greedy_w.shape[1]
    rows = [[s2s.BOS] + p + [s2s.PAD] * (steps - 1 - len(p)) for p in preds]
    dec_in = torch.tensor([r[:steps] for r in rows])
    w = transformer.collect_attention(model, data.src, data.src_len, dec_in)
    last = w["cross"][:, -1].mean(dim=1)  # (B, steps, T_src)
    for b, p in enumerate(preds):
        k = min(len(p) + 1, steps)
        torch.testing.assert_close(last[b, :k], greedy_w[b, :k], atol=1e-5, rtol=1e-5)


def test_collect_attention_rejects_mismatched_batches():
    model, data = _small_batch()
    dec_in = torch.zeros(3, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="same B"):
        transformer.collect_attention(model, data.src, data.src_len, dec_in)


# --- the explorer ----------------------------------------------------------------------------


def _explorer():
    model, data = _small_batch()
    sources = [s2s.to_text(s) for s in data.src]
    predictions = [s[::-1] for s in sources]
    dec_in = s2s.decoder_input(data.tgt)
    w = transformer.collect_attention(model, data.src, data.src_len, dec_in)
    return ch09.attention_explorer(sources, predictions, w), sources, predictions, w


def test_explorer_draws_the_chosen_example_kind_layer_and_head():
    box, sources, predictions, w = _explorer()
    fig = box.figure
    ax = fig.axes[0]
    c = box.controls
    for example, kind, layer, head in [(1, "cross", 1, 0), (2, "encoder self", 0, 1),
                                       (3, "decoder self", 1, 1), (0, "cross", 0, 1)]:
        c["example"].value, c["kind"].value = example, kind
        c["layer"].value, c["head"].value = layer, head
        assert box.figure is fig
        src, pred = sources[example], predictions[example]
        n_rows = len(src) if kind == "encoder self" else len(pred) + 1
        n_cols = len(pred) + 1 if kind == "decoder self" else len(src)
        want = w[kind][example, layer, head, :n_rows, :n_cols].numpy()
        np.testing.assert_allclose(box.state["weights"], want, rtol=1e-6)
        shown = np.ma.getdata(ax.images[0].get_array())[:n_rows, :n_cols]
        np.testing.assert_allclose(shown, want, rtol=1e-6)
        assert ax.get_xlim() == (-0.5, n_cols - 0.5)
        assert ax.get_ylim() == (n_rows - 0.5, -0.5)
        assert ax.get_title().startswith(f"{kind}, layer {layer}, head {head}: {src}")
        yt = [t.get_text() for t in ax.get_yticklabels()][:n_rows]
        if kind == "cross":
            assert yt == [f"{i} {ch}" for i, ch in enumerate([*pred, "EOS"])]
        if kind == "encoder self":
            assert yt == [f"{i} {ch}" for i, ch in enumerate(src)]
        if kind == "decoder self":
            assert yt == [f"{i} {ch}" for i, ch in enumerate(["BOS", *pred])]
    assert box.state["example"] == 0 and box.state["head"] == 1


def test_explorer_rejects_mismatched_input():
    _, sources, predictions, w = _explorer()
    with pytest.raises(ValueError, match="N sources"):
        ch09.attention_explorer(sources[:2], predictions, w)


def test_demo_builds_from_an_untrained_model():
    box = ch09.EXPLORER_DEMOS["attention"]()
    assert box.state["kind"] == "cross"
    w = np.asarray(box.state["weights"])
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)


# --- the planted bugs ------------------------------------------------------------------------


def test_property_tests_leave_two_kinds_of_bug_ambiguous(capsys):
    report = ch09.property_report()
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert report["correct"] == {"is_causal": True, "output_is_normalised": True,
                                 "matches_sdpa": True}
    only_sdpa = {"is_causal": True, "output_is_normalised": True, "matches_sdpa": False}
    # A: width scale; D: a window mask (still causal); F: no scale. The same failures for all
    # three, so the table alone cannot name their bugs.
    assert report["A"] == report["D"] == report["F"] == only_sdpa
    assert report["B"] == {"is_causal": True, "output_is_normalised": False,
                           "matches_sdpa": True}
    assert report["C"] == {"is_causal": False, "output_is_normalised": True,
                           "matches_sdpa": False}
    assert report["E"] == report["correct"]


def test_planted_blocks_do_not_announce_their_bugs():
    docs = {getattr(ch09, f"PlantedBlock{k}").__doc__ for k in "ABCDEF"}
    assert len(docs) == 1


def test_correct_tiny_block_equals_a_float64_formula():
    torch.manual_seed(1)
    blk = ch09.TinyCausalBlock(8, 2).double()
    X = torch.randn(2, 5, 8, dtype=torch.float64)
    out = torch.zeros_like(X)
    for b in range(2):
        heads = []
        for h in range(2):
            sl = slice(4 * h, 4 * h + 4)
            q = X[b] @ blk.W_q.weight.T[:, sl]
            k = X[b] @ blk.W_k.weight.T[:, sl]
            v = X[b] @ blk.W_v.weight.T[:, sl]
            s = q @ k.T / 2.0  # sqrt(head width 4)
            s = s.masked_fill(torch.ones(5, 5).triu(1).bool(), -torch.inf)
            heads.append(torch.softmax(s, -1) @ v)
        y = torch.cat(heads, -1) @ blk.W_o.weight.T
        out[b] = torch.nn.functional.layer_norm(X[b] + y, (8,), blk.ln.weight, blk.ln.bias)
    torch.testing.assert_close(blk(X), out)


# --- the self-checks -------------------------------------------------------------------------


def _count_by_building(d, f, h):
    """An independent reference: build the block, materialise it, count."""
    from helpers.transformer import TransformerEncoderBlock

    blk = TransformerEncoderBlock(d, f, h, 0.0)
    with torch.no_grad():
        blk(torch.zeros(1, 1, d))
    return sum(p.numel() for p in blk.parameters())


def test_encoder_block_parameters(capsys):
    def formula(d, f, h):
        return 4 * d * d + (d * f + f) + (f * d + d) + 2 * (2 * d)

    for d, f, h in ((32, 64, 4), (48, 96, 6), (8, 40, 2)):  # the formula against a real block
        assert formula(d, f, h) == _count_by_building(d, f, h)
    assert formula(32, 64, 4) == 8416
    ok, out = run_check(ch09.check_encoder_block_parameters, formula, capsys)
    assert ok and "half" in out and "two thirds" in out
    # the praise's shares, counted on real blocks: the FFN's share is near 1/2 at f = 2d, 2/3 at 4d
    from helpers.transformer import TransformerEncoderBlock

    for f_over_d, share in ((2, 1 / 2), (4, 2 / 3)):
        blk = TransformerEncoderBlock(256, f_over_d * 256, 4, 0.0)
        with torch.no_grad():
            blk(torch.zeros(1, 1, 256))
        ffn = sum(p.numel() for p in blk.ffn.parameters())
        assert ffn / sum(p.numel() for p in blk.parameters()) == pytest.approx(share, abs=0.01)
    assert run_check(
        ch09.check_encoder_block_parameters, lambda d, f, h: float(formula(d, f, h)), capsys
    )[0]
    # the book's number alone, a formula with biases on the projections, one that counts heads
    for wrong in (lambda d, f, h: 8416,
                  lambda d, f, h: formula(d, f, h) + 4 * d,
                  lambda d, f, h: formula(d, f, h) + h,
                  lambda d, f, h: 4 * d * d + 2 * d * f + 4 * d):
        ok, out = run_check(ch09.check_encoder_block_parameters, wrong, capsys)
        assert not ok and "Hint" in out and "8416" not in out and "8,416" not in out
    # building the block cannot answer the sizes the check asks about
    ok, out = run_check(
        ch09.check_encoder_block_parameters,
        lambda d, f, h: 1 / 0 if d > 10_000 else _count_by_building(d, f, h),
        capsys,
    )
    assert not ok and "Not yet" in out
    ok, out = run_check(ch09.check_encoder_block_parameters, lambda d, f, h: "many", capsys)
    assert not ok and "number" in out
    ok, out = run_check(ch09.check_encoder_block_parameters, 8416, capsys)
    assert not ok and "function" in out
    ok, out = run_check(ch09.check_encoder_block_parameters, None, capsys)
    assert not ok and REPLACE_NONE in out


def _reference_mask(t_new, t_past):
    """Loops, from the definition: new query r sits at absolute position t_past + r."""
    return [[t_past + r >= s for s in range(t_past + t_new)] for r in range(t_new)]


def test_causal_mask(capsys):
    assert run_check(ch09.check_causal_mask, _reference_mask, capsys)[0]
    assert run_check(
        ch09.check_causal_mask, lambda n, p: torch.ones(n, n + p, dtype=torch.bool).tril(p), capsys
    )[0]
    wrong = (
        lambda n, p: torch.ones(n, n + p, dtype=torch.bool).tril(),  # aligned top-left
        lambda n, p: torch.ones(n, n + p, dtype=torch.bool).tril(p - 1),  # cannot see itself
        lambda n, p: torch.ones(n, n + p, dtype=torch.bool).triu(p),
        lambda n, p: torch.ones(n, n + p, dtype=torch.bool),
    )
    for fn in wrong:
        ok, out = run_check(ch09.check_causal_mask, fn, capsys)
        assert not ok and "Hint" in out
    ok, out = run_check(ch09.check_causal_mask, lambda n, p: None, capsys)
    assert not ok and "replace the None" in out
    ok, out = run_check(ch09.check_causal_mask, lambda n, p: torch.ones(n, n).tril(), capsys)
    assert not ok and "shape" in out
    ok, out = run_check(ch09.check_causal_mask, lambda n, p: np.full((n, n + p), 2), capsys)
    assert not ok and "True/False" in out
    ok, out = run_check(ch09.check_causal_mask, lambda T: torch.ones(T, T), capsys)
    assert not ok and "Not yet" in out  # a one-argument function
    ok, out = run_check(ch09.check_causal_mask, None, capsys)
    assert not ok and REPLACE_NONE in out


def _bugs_from_properties_and_weights():
    """Name each block's bug independently of the module's answer key: the property table first
    (residual: output not normalised; mask: not causal), then, for blocks that only disagree with
    SDPA, float64 attention weights recomputed by hand from the block's projections: a mask bug
    leaves the full softmax of correctly scaled scores on the allowed keys and zeros below the
    diagonal; a scale bug gives weights equal to softmax(c · q k^T) over the causal keys for a
    c other than 1/sqrt(head width)."""
    report = ch09.property_report()
    names = {}
    for block_name in "ABCDEF":
        row = report[block_name]
        if not row["output_is_normalised"]:
            names[block_name] = "residual"
        elif not row["is_causal"]:
            names[block_name] = "mask"
        elif row["matches_sdpa"]:
            names[block_name] = "none"
        else:
            torch.manual_seed(0)
            blk = getattr(ch09, f"PlantedBlock{block_name}")().double()
            X = torch.randn(1, 6, 16, dtype=torch.float64)
            with torch.no_grad():
                w = blk.weights(X)[0].numpy()  # (heads, T, T)
                W_q, W_k = blk.W_q.weight.T.detach(), blk.W_k.weight.T.detach()
            lower = np.tril(np.ones((6, 6), dtype=bool))
            hides_past = bool((w[:, lower] == 0).any())
            q = (X[0] @ W_q).reshape(6, 2, 8).transpose(0, 1).numpy()
            k = (X[0] @ W_k).reshape(6, 2, 8).transpose(0, 1).numpy()
            raw = q @ k.transpose(0, 2, 1)  # (heads, T, T), unscaled
            raw = np.where(lower, raw, -np.inf)
            fits = []
            for c in (1 / math.sqrt(16), 1.0):  # the full width, no factor
                e = np.exp(c * raw - (c * raw).max(-1, keepdims=True))
                fits.append(np.allclose(e / e.sum(-1, keepdims=True), w, atol=1e-9))
            assert hides_past != any(fits)  # exactly one explanation holds
            names[block_name] = "mask" if hides_past else "scale"
    return names


def test_find_the_bug(capsys):
    right = _bugs_from_properties_and_weights()
    capsys.readouterr()
    assert right == {"A": "scale", "B": "residual", "C": "mask", "D": "mask", "E": "none",
                     "F": "scale"}
    assert run_check(ch09.check_find_the_bug, right, capsys)[0]
    # the three blocks that fail only the SDPA comparison, named from that failure alone
    for key, bug in (("A", "mask"), ("E", "scale"), ("D", "none"), ("D", "scale"),
                     ("F", "mask")):
        ok, out = run_check(ch09.check_find_the_bug, {**right, key: bug}, capsys)
        assert not ok and "Hint" in out and " of 6" not in out and "5 of" not in out
    ok, out = run_check(ch09.check_find_the_bug, {**right, "A": "typo"}, capsys)
    assert not ok and "one of" in out
    without_f = {k: v for k, v in right.items() if k != "F"}
    ok, out = run_check(ch09.check_find_the_bug, without_f, capsys)
    assert not ok and "keys" in out
    ok, out = run_check(ch09.check_find_the_bug, list(right.values()), capsys)
    assert not ok and "dict" in out
    ok, out = run_check(ch09.check_find_the_bug, None, capsys)
    assert not ok and REPLACE_NONE in out


# --- the untrained attention, measured -------------------------------------------------------


def test_encoder_attention_at_init_against_the_blocks_by_hand():
    model, data = _small_batch()
    got = transformer.encoder_attention_at_init(model, data.src, data.src_len)
    enc = model.encoder
    d, heads = enc.num_hiddens, enc.blks[0].attention.num_heads
    p = d // heads
    with torch.no_grad():
        X = enc.pos_encoding(enc.embedding(data.src) * d**0.5)  # (B, T, d)
        ent, ln_n, spread = [], [], []
        for blk in enc.blks:
            att = blk.attention
            for b, n in enumerate(data.src_len.tolist()):
                x = X[b, :n].double()  # the real positions only
                for h in range(heads):
                    rows = slice(h * p, (h + 1) * p)
                    q = x @ att.W_q.weight[rows].double().T  # (n, p)
                    k = x @ att.W_k.weight[rows].double().T
                    s = q @ k.T / p**0.5  # (n, n)
                    w = torch.softmax(s, dim=-1)
                    ent += (-(w * w.log()).sum(-1)).tolist()
                    ln_n += [np.log(n)] * n
                    spread += (s.max(-1).values - s.min(-1).values).tolist()
            X = blk(X, data.src_len)
    assert got["entropy"] == pytest.approx(np.mean(ent), abs=1e-4)
    assert got["ln_n"] == pytest.approx(np.mean(ln_n), abs=1e-5)
    assert got["spread"] == pytest.approx(np.mean(spread), abs=1e-4)
    assert 0 < got["entropy"] <= got["ln_n"] + 1e-6
