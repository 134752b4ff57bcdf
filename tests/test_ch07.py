"""Chapter 07: the alignment explorer, the self-checks, and train_seq2seq's epoch hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_for_tests import run_check

from helpers import seq2seq as s2s
from helpers.ui import ch07
from helpers.ui.checks import REPLACE_NONE

# --- the explorer ----------------------------------------------------------------------------


def _explorer_inputs():
    sources = ["abc", "hello", "xy"]
    predictions = ["cba", "olleh", "y"]  # the last one stopped early
    gen = torch.Generator().manual_seed(0)
    weights = torch.softmax(torch.randn(3, 6, 5, generator=gen), dim=-1)  # (N, steps, T_src)
    return sources, predictions, weights


def test_alignment_explorer_shows_each_sequence_with_0_based_ticks():
    sources, predictions, weights = _explorer_inputs()
    box = ch07.alignment_explorer(sources, predictions, weights)
    fig = box.figure
    ax = fig.axes[0]
    for example in (1, 2, 0):
        box.controls["example"].value = example
        assert box.figure is fig
        src, pred = sources[example], predictions[example]
        rows = len(pred) + 1
        want = weights[example, :rows, : len(src)].numpy()
        np.testing.assert_allclose(box.state["weights"], want, rtol=1e-6)
        shown = np.ma.getdata(ax.images[0].get_array())[:rows, : len(src)]
        np.testing.assert_allclose(shown, want, rtol=1e-6)
        assert ax.get_title() == f"{src} -> {pred}"
        assert ax.get_xlim() == (-0.5, len(src) - 0.5)
        assert ax.get_ylim() == (rows - 0.5, -0.5)
        xt = [t.get_text() for t in ax.get_xticklabels()][: len(src)]
        assert xt == [f"{c}\n{i}" for i, c in enumerate(src)]
        yt = [t.get_text() for t in ax.get_yticklabels()][:rows]
        assert yt == [f"{i} {c}" for i, c in enumerate(list(pred) + ["EOS"])]


def test_alignment_explorer_rejects_mismatched_input():
    sources, predictions, weights = _explorer_inputs()
    with pytest.raises(ValueError, match="N sources"):
        ch07.alignment_explorer(sources[:2], predictions, weights)
    with pytest.raises(ValueError, match="steps, T_src"):
        ch07.alignment_explorer(sources, predictions, weights[0])


def test_demo_is_an_anti_diagonal():
    box = ch07.EXPLORER_DEMOS["alignment"]()
    w = torch.as_tensor(box.state["weights"])
    n = len(box.state["source"])
    assert torch.equal(w[:n].argmax(-1), torch.arange(n - 1, -1, -1))


# --- the self-checks -------------------------------------------------------------------------


def test_task_alignments(capsys):
    # reference: build each target from a source of distinct letters and find, for every output
    # step, where its letter sits in the source (independent of the check's formulas)
    def reference(task, t, n):
        src = list(range(n))
        tgt = {"copy": src, "double": [x for x in src for _ in range(2)],
               "rotate": src[1:] + src[:1]}[task]
        return src.index(tgt[t])

    assert run_check(ch07.check_task_alignments, reference, capsys)[0]
    as_tensor = lambda task, t, n: torch.tensor(reference(task, t, n))
    assert run_check(ch07.check_task_alignments, as_tensor, capsys)[0]
    for wrong in (
        lambda task, t, n: t,  # copy only
        lambda task, t, n: n - 1 - t,  # reversal for every task
        lambda task, t, n: t // 2 if task == "double" else t,  # no rotation
        lambda task, t, n: (t - 1) % n if task == "rotate" else reference(task, t, n),
        lambda task, t, n: (t + 1) // 2 if task == "double" else reference(task, t, n),
    ):
        ok, out = run_check(ch07.check_task_alignments, wrong, capsys)
        assert not ok and "Hint" in out
    ok, out = run_check(ch07.check_task_alignments, lambda task, t, n: None, capsys)
    assert not ok and "replace the None" in out
    ok, out = run_check(ch07.check_task_alignments, lambda task, t, n: t + 0.5, capsys)
    assert not ok and "whole number" in out
    ok, out = run_check(ch07.check_task_alignments, lambda t, n: t, capsys)  # the old signature
    assert not ok and "three arguments" in out
    ok, out = run_check(ch07.check_task_alignments, [0, 1, 2], capsys)
    assert not ok and "define a function" in out


def test_attention_parameters(capsys):
    # by hand: W_q (H, H), W_k (H, H), w_v (H, 1), no biases; at H = 128 that is 32,896
    def by_hand(H):
        return H * H + H * H + H

    assert by_hand(128) == 32896
    assert run_check(ch07.check_attention_parameters, by_hand, capsys)[0]
    assert run_check(ch07.check_attention_parameters, lambda H: torch.tensor(by_hand(H)), capsys)[0]
    for wrong in (
        lambda H: 2 * H * H,  # w_v forgotten
        lambda H: 3 * H * H,  # w_v as a square matrix
        lambda H: 2 * H * H + 2 * H,  # w_v counted twice
        lambda H: 2 * H * H + 3 * H + 1,  # with biases
        lambda H: H * H + H,  # one matrix for queries and keys
        lambda H: 2 * H * 2 * H + H,  # encoder outputs of 2H (both directions at full width)
        lambda H: 32896,  # the number at H = 128 only
    ):
        ok, out = run_check(ch07.check_attention_parameters, wrong, capsys)
        assert not ok and "Hint" in out and "32896" not in out and "32,896" not in out
    ok, out = run_check(ch07.check_attention_parameters, lambda H: None, capsys)
    assert not ok and "replace the None" in out
    ok, out = run_check(ch07.check_attention_parameters, 32896, capsys)
    assert not ok and "define a function" in out
    assert run_check(ch07.check_attention_parameters, None, capsys)[0] is False


def test_score_count(capsys):
    def count(n):  # a loop over the decoder's steps and the keys each step scores
        return sum(1 for _step in range(n + 1) for _key in range(n))

    assert run_check(ch07.check_score_count, count, capsys)[0]
    for wrong in (lambda n: n * n, lambda n: n * (n - 1), lambda n: (n + 1) ** 2):
        ok, out = run_check(ch07.check_score_count, wrong, capsys)
        assert not ok and "Hint" in out
    ok, out = run_check(ch07.check_score_count, lambda n: None, capsys)
    assert not ok and "replace the None" in out


def test_greedy_reversal_of_n_letters_calls_the_decoder_n_plus_1_times():
    # a real attention model whose output layer is forced to write the reversal and then EOS:
    # count the decoder's calls and the (query, key) scores its attention computes
    torch.manual_seed(0)
    model = s2s.make_seq2seq(s2s.NUM_SPECIAL + 4, 8, 16, attention=True)
    n, src = 4, torch.tensor([[3, 4, 5, 6, 0]])  # length 4, one padding position
    answer = [6, 5, 4, 3, s2s.EOS]
    real_step = model.decoder.forward
    calls, scores = [], []

    def forced_step(X, state):
        logits, state = real_step(X, state)  # the real step, attention included
        forced = torch.full_like(logits, -1e4)
        forced[..., answer[len(calls)]] = 0.0
        calls.append(X.clone())
        return forced, state

    model.decoder.forward = forced_step
    hook = model.decoder.attention.register_forward_hook(
        lambda module, args, out: scores.append(module.attention_weights.shape[1:].numel())
    )
    try:
        seqs, weights = s2s.predict_greedy(model, src, torch.tensor([n]), max_steps=3 * n)
    finally:
        hook.remove()
    assert seqs == [[6, 5, 4, 3]]
    assert len(calls) == n + 1  # n letters, then the step that writes EOS; not max_steps
    assert sum(scores) == (n + 1) * n  # each step scores the n real keys (padding trimmed)
    assert weights.shape == (1, n + 1, n)
    assert [int(x) for x in torch.cat(calls, dim=1)[0]] == [s2s.BOS, 6, 5, 4, 3]  # fed back
    # a model that never writes EOS runs until max_steps
    calls.clear()
    answer[:] = [6] * 20
    s2s.predict_greedy(model, src, torch.tensor([n]), max_steps=3 * n)
    assert len(calls) == 3 * n


def test_parameter_growth(capsys):
    # independent: the same model built twice never depends on a length, so it gains nothing;
    # scores by hand: 15 steps x 14 keys = 210 for 14 letters, 11 x 10 = 110 for 10
    vocab = s2s.NUM_SPECIAL + 10
    sizes = [
        sum(p.numel() for p in s2s.make_seq2seq(vocab, 32, 64, bidirectional=True).parameters())
        for _ in range(2)
    ]
    want = (sizes[1] - sizes[0], 15 * 14 - 11 * 10)
    assert want == (0, 100)
    for right in (want, list(want), torch.tensor(want), (0.0, 100.0)):
        assert run_check(ch07.check_parameter_growth, right, capsys)[0]
    for wrong in ((0, 14 * 14 - 10 * 10), (0, 14 * 13 - 10 * 9), (0, 15 * 15 - 11 * 11),
                  (0, 4), (0, 210), (0, 15 * 14 - 10 * 10), (4 * 64, 100), (4, 100), (0, 0)):
        ok, out = run_check(ch07.check_parameter_growth, wrong, capsys)
        assert not ok and "Hint" in out and "100" not in out
        assert ("the parameters" in out) == (wrong[0] != 0)
        assert ("the scores" in out) == (wrong[1] != 100)
    for malformed in (0, 100, (0,), "0, 100", (0, "a hundred")):
        ok, out = run_check(ch07.check_parameter_growth, malformed, capsys)
        assert not ok and "Hint" not in out
    assert run_check(ch07.check_parameter_growth, None, capsys) == (False, REPLACE_NONE + "\n")


# --- train_seq2seq: on_epoch and schedule_epochs ---------------------------------------------


def test_on_epoch_is_called_after_every_epoch_in_training_mode(one_thread):
    torch.manual_seed(0)
    data = s2s.make_seq_task(64, 2, 4, num_symbols=4, seed=0)
    model = s2s.make_seq2seq(s2s.NUM_SPECIAL + 4, 8, 16, attention=True)
    calls = []

    def on_epoch(epoch, loss):
        calls.append((epoch, loss))
        model.eval()  # e.g. decoding; training must switch back

    modes = []
    model.register_forward_pre_hook(lambda m, args: modes.append(m.training))
    losses = s2s.train_seq2seq(model, data, num_epochs=3, batch_size=32, on_epoch=on_epoch)
    assert [e for e, _ in calls] == [1, 2, 3]
    assert [loss for _, loss in calls] == losses
    assert all(modes)  # every training forward pass ran in training mode


def test_schedule_epochs_stretches_the_cosine(one_thread):
    data = s2s.make_seq_task(64, 2, 4, num_symbols=4, seed=0)

    def run(**kw):
        torch.manual_seed(0)
        model = s2s.make_seq2seq(s2s.NUM_SPECIAL + 4, 8, 16, attention=False)
        return s2s.train_seq2seq(model, data, batch_size=32, lr=0.01, lr_min=0.001, **kw)

    short = run(num_epochs=2, schedule_epochs=4)
    long = run(num_epochs=4)
    seen = run(num_epochs=2)
    assert short == pytest.approx(long[:2], rel=1e-6)  # same learning rate at every step
    assert seen[1] != pytest.approx(long[1], rel=1e-6)  # a 2-epoch cosine decays sooner
