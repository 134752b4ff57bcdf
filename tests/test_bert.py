"""helpers.bert: BERTEncoder and MaskLM against d2l 1.0.3's own classes with copied weights (both
directions of state-dict loading), the max_len error, and BERT's masking rule's proportions."""

from __future__ import annotations

import pytest
import torch
from d2l_reference import load_d2l_or_skip  # tests/ is on sys.path

from helpers.bert import BERTEncoder, CharBERT, MaskLM, mask_tokens

V, D, FFN, HEADS, BLKS, MAX_LEN = 13, 16, 24, 4, 2, 20


@pytest.fixture(scope="module")
def d2l():
    return load_d2l_or_skip()


def _materialised(enc, mlm, tokens, segments, valid_lens, positions):
    with torch.no_grad():
        X = enc(tokens, segments, valid_lens)
        mlm(X, positions)
    return enc.eval(), mlm.eval()


def _inputs():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, V, (3, 9), generator=g)
    segments = torch.randint(0, 2, (3, 9), generator=g)
    valid_lens = torch.tensor([9, 5, 7])
    positions = torch.tensor([[0, 4, 8], [1, 2, 3], [6, 6, 0]])
    return tokens, segments, valid_lens, positions


@pytest.mark.parametrize("direction", ["d2l -> book", "book -> d2l"])
def test_encoder_and_masklm_match_d2l_with_copied_weights(d2l, direction):
    tokens, segments, valid_lens, positions = _inputs()
    torch.manual_seed(1)
    theirs = _materialised(d2l.BERTEncoder(V, D, FFN, HEADS, BLKS, 0.0, max_len=MAX_LEN),
                           d2l.MaskLM(V, D), tokens, segments, valid_lens, positions)
    torch.manual_seed(2)
    ours = _materialised(BERTEncoder(V, D, FFN, HEADS, BLKS, 0.0, max_len=MAX_LEN),
                         MaskLM(V, D), tokens, segments, valid_lens, positions)
    assert ours[0].state_dict().keys() == theirs[0].state_dict().keys()
    assert ours[1].state_dict().keys() == theirs[1].state_dict().keys()
    src, dst = (theirs, ours) if direction == "d2l -> book" else (ours, theirs)
    for s, d in zip(src, dst):
        d.load_state_dict(s.state_dict())  # strict: same names and shapes
    with torch.no_grad():
        X_ours = ours[0](tokens, segments, valid_lens)
        X_theirs = theirs[0](tokens, segments, valid_lens)
        torch.testing.assert_close(X_ours, X_theirs, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours[1](X_ours, positions), theirs[1](X_theirs, positions),
                                   atol=1e-5, rtol=1e-5)
    assert ours[1](X_ours, positions).shape == (3, 3, V)


def test_a_sequence_longer_than_max_len_is_a_clear_error():
    enc = BERTEncoder(V, D, FFN, HEADS, BLKS, 0.0, max_len=8)
    tokens = torch.zeros(2, 9, dtype=torch.long)
    with pytest.raises(ValueError, match=r"9 tokens.*max_len=8"):
        enc(tokens, torch.zeros_like(tokens), None)
    assert enc(tokens[:, :8], torch.zeros(2, 8, dtype=torch.long), None).shape == (2, 8, D)
    with pytest.raises(ValueError, match="segments"):
        enc(tokens[:, :8], torch.zeros(2, 7, dtype=torch.long), None)
    with pytest.raises(ValueError, match="pred_positions"):
        MaskLM(V, D)(torch.zeros(2, 8, D), torch.zeros(3, 1, dtype=torch.long))


def test_charbert_keeps_d2l_submodule_names_and_per_head_weights():
    torch.manual_seed(0)
    m = CharBERT(V, D, FFN, HEADS, BLKS, max_len=MAX_LEN).eval()
    names = set(m.state_dict())
    assert "encoder.pos_embedding" in names and "encoder.segment_embedding.weight" in names
    assert "encoder.blks.1.attention.W_q.weight" in names and "mlm.mlp.3.weight" in names
    x = torch.randint(0, V, (2, 7))
    assert m(x, torch.tensor([[0, 6], [3, 3]])).shape == (2, 2, V)
    w = m.attention_weights
    assert len(w) == BLKS and w[0].shape == (2, HEADS, 7, 7)
    torch.testing.assert_close(w[0].sum(-1), torch.ones(2, HEADS, 7))


def test_masking_rule_proportions():
    vocab, mask_id, special = 1000, 2, 3
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(special, vocab, (400, 100), generator=g)
    before = tokens.clone()
    inputs, positions, labels = mask_tokens(tokens, vocab, mask_id, special, generator=g)
    assert torch.equal(tokens, before)  # not modified
    assert positions.shape == (400, 15) and labels.shape == (400, 15)  # 15 % of 100 per row
    assert all(len(set(r)) == 15 for r in positions.tolist())  # distinct positions
    assert torch.equal(labels, tokens.gather(1, positions))
    picked = inputs.gather(1, positions)
    n = picked.numel()
    masked = (picked == mask_id).sum().item() / n
    unchanged = (picked == labels).sum().item() / n
    replaced = 1 - masked - unchanged
    # binomial standard error at n = 6000 is about 0.005 for p = 0.8, 0.004 for p = 0.1
    assert abs(masked - 0.8) < 0.02 and abs(unchanged - 0.1) < 0.015
    assert abs(replaced - 0.1) < 0.015
    assert int(picked[picked != mask_id].min()) >= special  # random tokens are ordinary ones
    others = torch.ones_like(tokens, dtype=torch.bool).scatter_(1, positions, False)
    assert torch.equal(inputs[others], tokens[others])  # the rest of the input is untouched
    _, p2, _ = mask_tokens(torch.zeros(2, 3, dtype=torch.long), 10, 2)
    assert p2.shape == (2, 1)  # at least one prediction
    with pytest.raises(ValueError, match="tokens"):
        mask_tokens(torch.zeros(5, dtype=torch.long), 10, 2)
