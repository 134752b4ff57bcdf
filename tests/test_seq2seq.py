"""The chapter-7 encoder-decoder: task generator, shapes, masking, greedy decoding, training."""

import pytest
import torch
from torch import nn

from helpers import seq2seq as s2s
from helpers.seq2seq import BOS, EOS, NUM_SPECIAL, PAD


def test_task_reverse_and_copy_are_right():
    data = s2s.make_seq_task(50, 2, 6, num_symbols=5, task="reverse", seed=3)
    assert data.src.shape == (50, 6) and data.tgt.shape == (50, 7)
    for src, n, tgt, m in zip(data.src, data.src_len, data.tgt, data.tgt_len, strict=True):
        n = int(n)
        assert 2 <= n <= 6 and int(m) == n + 1
        seq = src[:n].tolist()
        assert all(NUM_SPECIAL <= t < NUM_SPECIAL + 5 for t in seq)
        assert (src[n:] == PAD).all() and (tgt[n + 1 :] == PAD).all()
        assert tgt[:n].tolist() == seq[::-1] and int(tgt[n]) == EOS
    copy = s2s.make_seq_task(20, 3, 3, task="copy", seed=0)
    assert torch.equal(copy.tgt[:, :3], copy.src) and (copy.tgt[:, 3] == EOS).all()


def test_task_is_seeded_and_held_out_set_excludes_training_sequences():
    a = s2s.make_seq_task(200, 1, 3, num_symbols=3, seed=1)
    b = s2s.make_seq_task(200, 1, 3, num_symbols=3, seed=1)
    assert torch.equal(a.src, b.src) and torch.equal(a.tgt, b.tgt)
    train = s2s.make_seq_task(30, 1, 3, num_symbols=3, seed=1)
    test = s2s.make_seq_task(10, 1, 3, num_symbols=3, seed=2, exclude=train)
    seen = {tuple(x[:n].tolist()) for x, n in zip(train.src, train.src_len, strict=True)}
    assert all(
        tuple(x[:n].tolist()) not in seen for x, n in zip(test.src, test.src_len, strict=True)
    )


def test_task_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        s2s.make_seq_task(5, task="sort")
    with pytest.raises(ValueError, match="min_len"):
        s2s.make_seq_task(5, min_len=4, max_len=3)
    both = s2s.make_seq_task(20, 1, 1, num_symbols=2, seed=0)  # holds both 1-token sequences
    with pytest.raises(ValueError, match="distinct"):
        s2s.make_seq_task(1, 1, 1, num_symbols=2, exclude=both)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_shapes_and_state_skip_padding(bidirectional):
    torch.manual_seed(0)
    enc = s2s.Seq2SeqEncoder(8, 5, 6, num_layers=2, bidirectional=bidirectional)
    X = torch.randint(NUM_SPECIAL, 8, (3, 7))
    lens = torch.tensor([7, 4, 1])
    X[1, 4:] = PAD
    X[2, 1:] = PAD
    out, state = enc(X, lens)
    assert out.shape == (3, 7, 6) and state.shape == (2, 3, 6)
    for b, n in enumerate(lens.tolist()):
        assert (out[b, n:] == 0).all()
        if bidirectional:  # forward half ends at the last token, backward half at the first
            assert torch.allclose(state[-1, b, :3], out[b, n - 1, :3])
            assert torch.allclose(state[-1, b, 3:], out[b, 0, 3:])
        else:
            assert torch.allclose(state[-1, b], out[b, n - 1])
        # the same sequence alone, without padding, gives the same state
        _, alone = enc(X[b : b + 1, :n], lens[b : b + 1])
        assert torch.allclose(alone[:, 0], state[:, b], atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        s2s.Seq2SeqEncoder(8, 5, 7, bidirectional=True)


def _batch():
    g = torch.Generator().manual_seed(0)
    src = torch.randint(NUM_SPECIAL, 9, (3, 6), generator=g)
    src_len = torch.tensor([6, 3, 2])
    for b, n in enumerate(src_len.tolist()):
        src[b, n:] = PAD
    dec_X = torch.randint(NUM_SPECIAL, 9, (3, 4), generator=g)
    return src, src_len, dec_X


@pytest.mark.parametrize("attention", [True, False])
def test_model_shapes(attention):
    torch.manual_seed(0)
    model = s2s.make_seq2seq(9, 4, 6, attention=attention)
    src, src_len, dec_X = _batch()
    assert model(src, src_len, dec_X).shape == (3, 4, 9)


def test_attention_weights_sum_to_one_and_ignore_padding():
    torch.manual_seed(0)
    model = s2s.make_seq2seq(9, 4, 6, attention=True, bidirectional=True)
    src, src_len, dec_X = _batch()
    src0 = src.clone()
    assert s2s.Seq2SeqAttentionDecoder(9, 4, 6).attention_weights is None
    logits = model(src, src_len, dec_X)
    w = model.decoder.attention_weights
    assert w.shape == (3, 4, 6)
    assert torch.allclose(w.sum(-1), torch.ones(3, 4), atol=1e-6)
    assert (w[1, :, 3:] == 0).all() and (w[2, :, 2:] == 0).all()
    # extra padding columns, or other tokens behind the valid length, change nothing
    wider = torch.cat([src, torch.full((3, 2), PAD)], dim=1)
    wider[2, 2:] = 5
    assert torch.allclose(model(wider, src_len, dec_X), logits, atol=1e-6)
    assert torch.equal(src, src0)


class _ScriptedDecoder(nn.Module):
    """Emits a fixed token per (example, step) and constant attention weights; counts its calls."""

    def __init__(self, script: torch.Tensor, vocab: int):
        super().__init__()
        self.script, self.vocab, self.calls = script, vocab, 0
        self.dummy = nn.Parameter(torch.zeros(1))
        self.attention_weights = None

    def init_state(self, enc_outputs, enc_state, enc_valid_lens):
        return enc_outputs.shape[1]

    def forward(self, X, state):
        logits = torch.full((X.shape[0], 1, self.vocab), -1.0)
        logits[torch.arange(X.shape[0]), 0, self.script[:, self.calls]] = 1.0
        self.attention_weights = torch.full((X.shape[0], 1, state), 1.0 / state)
        self.calls += 1
        return logits, state


def test_greedy_decoding_stops_at_eos():
    torch.manual_seed(0)
    script = torch.tensor([[5, 6, EOS, 7, 7, 7, 7], [4, EOS, 8, 8, 8, 8, 8]])
    model = s2s.EncoderDecoder(s2s.Seq2SeqEncoder(9, 4, 6), _ScriptedDecoder(script, 9))
    src = torch.tensor([[3, 4, 5, 6], [3, 4, PAD, PAD]])
    seqs, weights = s2s.predict_greedy(model, src, torch.tensor([4, 2]), max_steps=7)
    assert seqs == [[5, 6], [4]]
    assert model.decoder.calls == 3  # stops once every sequence has produced EOS
    assert weights.shape == (2, 3, 4)
    assert (weights[1, 2] == 0).all() and torch.allclose(weights[0, 2], torch.full((4,), 0.25))
    # without EOS within max_steps the whole output is returned
    model.decoder.calls = 0
    seqs, _ = s2s.predict_greedy(model, src, torch.tensor([4, 2]), max_steps=1)
    assert seqs == [[5], [4]]


def test_accuracy_helpers_on_hand_made_predictions():
    data = s2s.SeqTask(
        src=torch.tensor([[3, 4, 0], [5, 6, 7], [8, 0, 0]]),
        src_len=torch.tensor([2, 3, 1]),
        tgt=torch.tensor([[4, 3, EOS, 0], [7, 6, 5, EOS], [8, EOS, 0, 0]]),
        tgt_len=torch.tensor([3, 4, 2]),
    )
    preds = [[4, 3], [7, 6], [8]]
    assert s2s.sequence_accuracy(preds, data).tolist() == [True, False, True]
    assert s2s.accuracy_by_length(preds, data) == {1: 1.0, 2: 1.0, 3: 0.0}
    with pytest.raises(ValueError, match="predictions"):
        s2s.sequence_accuracy(preds[:2], data)


def test_decoder_input_is_shifted_targets():
    tgt = torch.tensor([[5, 6, EOS], [7, EOS, PAD]])
    assert s2s.decoder_input(tgt).tolist() == [[BOS, 5, 6], [BOS, 7, EOS]]


def test_short_training_run_learns_a_tiny_reversal(one_thread):
    torch.manual_seed(0)
    train = s2s.make_seq_task(800, 2, 5, num_symbols=5, seed=0)
    test = s2s.make_seq_task(100, 2, 5, num_symbols=5, seed=1, exclude=train)
    model = s2s.make_seq2seq(NUM_SPECIAL + 5, 16, 32, attention=True, bidirectional=True)
    src0 = train.src.clone()
    losses = s2s.train_seq2seq(
        model, train, num_epochs=5, lr=0.02, batch_size=32, seed=0, lr_min=0.001
    )
    assert torch.equal(train.src, src0)
    assert losses[-1] < losses[0] / 4
    preds, weights = s2s.predict_greedy(model, test.src, test.src_len)
    acc = s2s.sequence_accuracy(preds, test).float().mean().item()
    assert acc >= 0.9, acc
    assert weights.shape[0] == len(test)
