"""helpers.transformer against independent references: PyTorch's own Transformer layers with
copied weights, the sinusoid formula in float64, and the properties that define causal masking and
rotary embeddings."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers.seq2seq import BOS, NUM_SPECIAL, predict_greedy
from helpers.transformer import (
    AddNorm,
    LearnedPositionalEmbedding,
    PositionalEncoding,
    PositionWiseFFN,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
    apply_rotary,
    make_transformer_seq2seq,
)

D, FFN, HEADS = 12, 20, 3


def _copy_from_torch(block: TransformerEncoderBlock, layer: nn.TransformerEncoderLayer) -> None:
    """Copy torch's layer weights into the book's block (both with biases)."""
    with torch.no_grad():
        block(torch.zeros(1, 1, D))  # materialise the lazy layers
        W_q, W_k, W_v = layer.self_attn.in_proj_weight.chunk(3)
        b_q, b_k, b_v = layer.self_attn.in_proj_bias.chunk(3)
        att = block.attention
        for lin, w, b in ((att.W_q, W_q, b_q), (att.W_k, W_k, b_k), (att.W_v, W_v, b_v)):
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        att.W_o.weight.copy_(layer.self_attn.out_proj.weight)
        att.W_o.bias.copy_(layer.self_attn.out_proj.bias)
        block.ffn.dense1.weight.copy_(layer.linear1.weight)
        block.ffn.dense1.bias.copy_(layer.linear1.bias)
        block.ffn.dense2.weight.copy_(layer.linear2.weight)
        block.ffn.dense2.bias.copy_(layer.linear2.bias)
        for addnorm, norm in ((block.addnorm1, layer.norm1), (block.addnorm2, layer.norm2)):
            addnorm.ln.weight.copy_(norm.weight)
            addnorm.ln.bias.copy_(norm.bias)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
@pytest.mark.parametrize("padded", [False, True], ids=["no-mask", "padding-mask"])
def test_encoder_block_matches_torch_encoder_layer(norm_first, padded):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(
        D, HEADS, FFN, dropout=0.0, activation="relu", batch_first=True, norm_first=norm_first
    )
    layer.train()  # keeps torch on its reference (non-fused) path; dropout is 0 anyway
    block = TransformerEncoderBlock(D, FFN, HEADS, 0.0, use_bias=True, norm_first=norm_first)
    _copy_from_torch(block, layer)
    X = torch.randn(2, 5, D)
    lens = torch.tensor([5, 3])
    mask = torch.arange(5)[None, :] >= lens[:, None]  # True = padding, ignored as a key
    want = layer(X, src_key_padding_mask=mask if padded else None)
    got = block(X, lens if padded else None)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-5)


def test_positional_encoding_matches_the_formula_in_float64():
    pe = PositionalEncoding(8, dropout=0.0, max_len=50)
    want = torch.zeros(50, 8, dtype=torch.float64)
    for t in range(50):
        for i in range(4):
            angle = t / 10000 ** (2 * i / 8)
            want[t, 2 * i] = math.sin(angle)
            want[t, 2 * i + 1] = math.cos(angle)
    assert pe.P.shape == (1, 50, 8)
    torch.testing.assert_close(pe.P[0].double(), want, atol=1e-6, rtol=0)
    X = torch.randn(2, 7, 8)
    torch.testing.assert_close(pe(X, offset=3), X + want[3:10].float())


def test_positions_past_max_len_raise():
    with pytest.raises(ValueError, match="max_len=10"):
        PositionalEncoding(8, 0.0, max_len=10)(torch.zeros(1, 11, 8))
    with pytest.raises(ValueError, match="max_len=10"):
        LearnedPositionalEmbedding(8, 0.0, max_len=10)(torch.zeros(1, 5, 8), offset=6)
    with pytest.raises(ValueError, match="even"):
        PositionalEncoding(7, 0.0)


def test_position_modules_refuse_bad_sizes():
    with pytest.raises(ValueError, match="num_hiddens must be a positive int, got 0"):
        LearnedPositionalEmbedding(0, 0.0)
    with pytest.raises(ValueError, match="max_len must be a positive int, got 0"):
        PositionalEncoding(8, 0.0, max_len=0)  # the same check for the sinusoidal table
    with pytest.raises(ValueError, match="max_len must be a positive int, got 10.0"):
        LearnedPositionalEmbedding(8, 0.0, max_len=10.0)
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):  # nn.Dropout's message
        LearnedPositionalEmbedding(8, 1.5)
    pe = LearnedPositionalEmbedding(8, 0.0, max_len=10)
    with pytest.raises(ValueError, match=r"\(1, 5, 7\)"):
        pe(torch.zeros(1, 5, 7))  # the wrong width, named with the shape


def test_bad_widths_and_ranks_raise():
    with pytest.raises(ValueError, match="multiple of num_heads"):
        TransformerEncoderBlock(10, 16, 3, 0.0)
    block = TransformerEncoderBlock(D, FFN, HEADS, 0.0)
    with pytest.raises(ValueError, match=r"3-D.*\(5, 12\)"):
        block(torch.zeros(5, D))
    with pytest.raises(ValueError, match="12 features"):
        block(torch.zeros(1, 5, 8))
    with pytest.raises(TypeError, match="torch.Tensor"):
        block([[0.0] * D])
    with pytest.raises(ValueError, match="same shape"):
        AddNorm(D, 0.0)(torch.zeros(1, 2, D), torch.zeros(1, 3, D))


def test_position_wise_ffn_acts_on_each_position_alone():
    torch.manual_seed(0)
    ffn = PositionWiseFFN(16, 4)
    X = torch.randn(2, 5, 6)
    Y = ffn(X)
    assert Y.shape == (2, 5, 4)
    X2 = X.clone()
    X2[:, 3] = torch.randn(2, 6)  # change one position
    Y2 = ffn(X2)
    torch.testing.assert_close(Y2[:, [0, 1, 2, 4]], Y[:, [0, 1, 2, 4]])
    by_hand = torch.relu(X @ ffn.dense1.weight.T + ffn.dense1.bias) @ ffn.dense2.weight.T
    torch.testing.assert_close(Y, by_hand + ffn.dense2.bias)


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_decoder_self_attention_is_causal(norm_first):
    torch.manual_seed(0)
    block = TransformerDecoderBlock(D, FFN, HEADS, 0.0, i=0, norm_first=norm_first).eval()
    enc = torch.randn(2, 4, D)
    X = torch.randn(2, 6, D)
    out, _ = block(X, [enc, None, [None]])
    for t in range(5):
        X2 = X.clone()
        X2[:, t + 1 :] = torch.randn(2, 5 - t, D) * 3  # change every later position
        out2, _ = block(X2, [enc, None, [None]])
        torch.testing.assert_close(out2[:, : t + 1], out[:, : t + 1])
        assert not torch.allclose(out2[:, t + 1 :], out[:, t + 1 :])


@pytest.mark.parametrize("norm_first", [False, True], ids=["post-norm", "pre-norm"])
def test_decoding_one_token_at_a_time_equals_the_whole_sequence(norm_first):
    torch.manual_seed(0)
    vocab = NUM_SPECIAL + 6
    model = make_transformer_seq2seq(vocab, num_hiddens=16, ffn_num_hiddens=32, num_heads=2,
                                     norm_first=norm_first).eval()
    src = torch.randint(NUM_SPECIAL, vocab, (3, 5))
    src_len = torch.tensor([5, 4, 2])
    tgt_in = torch.cat([torch.full((3, 1), BOS), torch.randint(NUM_SPECIAL, vocab, (3, 4))], 1)
    with torch.no_grad():
        whole = model(src, src_len, tgt_in)  # (3, 5, vocab)
        enc, enc_state = model.encoder(src, src_len)
        state = model.decoder.init_state(enc, enc_state, src_len)
        steps = []
        for t in range(tgt_in.shape[1]):
            logits, state = model.decoder(tgt_in[:, t : t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), whole, atol=1e-5, rtol=1e-5)


def test_predict_greedy_runs_the_transformer_and_masks_padded_sources():
    torch.manual_seed(0)
    vocab = NUM_SPECIAL + 6
    model = make_transformer_seq2seq(vocab, num_hiddens=16, ffn_num_hiddens=32, num_heads=2)
    src = torch.randint(NUM_SPECIAL, vocab, (2, 5))
    src_len = torch.tensor([5, 3])
    seqs, weights = predict_greedy(model, src, src_len, max_steps=4)
    assert len(seqs) == 2 and weights.shape[0] == 2 and weights.shape[2] == 5
    assert torch.all(weights[1, :, 3:] == 0)  # keys past the source length get no weight
    rows = weights.sum(-1)
    assert torch.allclose(rows[rows > 0], torch.ones_like(rows[rows > 0]), atol=1e-5)


def test_rotary_scores_depend_only_on_the_offset():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(16, generator=g, dtype=torch.float64)
    k = torch.randn(16, generator=g, dtype=torch.float64)

    def score(m: int, n: int) -> float:
        T = max(m, n) + 1
        qs = q.expand(T, 16).clone()
        ks = k.expand(T, 16).clone()
        return float(apply_rotary(qs)[m] @ apply_rotary(ks)[n])

    for offset in (-7, -2, 0, 3, 11):
        scores = [score(m, m - offset) for m in range(max(offset, 0), max(offset, 0) + 20, 3)]
        assert max(scores) - min(scores) < 1e-9, (offset, scores)
    assert abs(score(5, 2) - score(5, 9)) > 1e-3  # different offsets, different scores


def test_rotary_preserves_norms_and_rotates_pairs():
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    y = apply_rotary(x)
    torch.testing.assert_close(y.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(y[:, 0], x[:, 0])  # position 0 is not rotated
    # position 1, first pair: angle 1 (frequency 1)
    c, s = math.cos(1.0), math.sin(1.0)
    want = torch.stack([x[:, 1, 0] * c - x[:, 1, 1] * s, x[:, 1, 0] * s + x[:, 1, 1] * c], -1)
    torch.testing.assert_close(y[:, 1, :2], want)
    with pytest.raises(ValueError, match="even"):
        apply_rotary(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="positions"):
        apply_rotary(torch.zeros(3, 4), positions=torch.arange(4))


def test_sampling_and_generation_name_the_bad_argument():
    from helpers.transformer import TinyGPT, generate, next_token_probs

    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        next_token_probs([1.0, 2.0])
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        next_token_probs(torch.tensor([1, 2]))
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            next_token_probs(torch.zeros(3), temperature=bad)
    model = TinyGPT(5, num_hiddens=8, num_heads=2, num_layers=1, max_len=8)
    with pytest.raises(TypeError, match="prompt must hold integer token ids, got dtype"):
        generate(model, torch.tensor([0.0, 1.0]), 2)
    with pytest.raises(ValueError, match=r"prompt ids must lie in 0..4 .* from 0 to 5"):
        generate(model, torch.tensor([0, 5]), 2)
    with pytest.raises(ValueError, match=r"prompt ids must lie in 0..4 .* from -1 to 1"):
        generate(model, torch.tensor([-1, 1]), 2)
    with pytest.raises(TypeError, match="offset must be an int"):
        model.pos_embedding(torch.zeros(1, 2, 8), offset=1.0)
