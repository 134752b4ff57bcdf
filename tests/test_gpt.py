"""TinyGPT, its KV cache and `generate`, against independent references: decoding by hand with
full recomputation, the causal property, and sampling rules checked on their definitions."""

from __future__ import annotations

import pytest
import torch

from helpers.transformer import TinyGPT, generate, kv_cache_nbytes, next_token_probs

V = 11


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyGPT(V, num_hiddens=24, num_heads=3, num_layers=2, max_len=40).eval()


def test_logits_shape_and_causality(model):
    tokens = torch.randint(0, V, (2, 9))
    logits = model(tokens)
    assert logits.shape == (2, 9, V)
    for t in range(8):
        changed = tokens.clone()
        changed[:, t + 1 :] = (changed[:, t + 1 :] + 1 + torch.arange(8 - t)) % V
        torch.testing.assert_close(model(changed)[:, : t + 1], logits[:, : t + 1])


def test_cached_forward_equals_full_recomputation(model):
    tokens = torch.randint(0, V, (2, 12))
    full = model(tokens)
    cache = model.new_cache()
    pieces = [model(tokens[:, :5], cache)]  # a prompt of 5, then one token at a time
    for t in range(5, 12):
        pieces.append(model(tokens[:, t : t + 1], cache))
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=1e-5, rtol=1e-5)
    # 2 (keys and values) * layers * batch * heads * T * head width * 4 bytes
    assert kv_cache_nbytes(cache) == 2 * 2 * 2 * 3 * 12 * 8 * 4


def test_greedy_generation_equals_argmax_decoding_by_hand(model):
    prompt = torch.tensor([3, 1, 4, 1, 5])
    seq = prompt.clone()
    for _ in range(10):  # by hand: re-run the whole sequence, take the argmax of the last position
        nxt = model(seq[None])[0, -1].argmax()
        seq = torch.cat([seq, nxt[None]])
    assert torch.equal(generate(model, prompt, 10, use_cache=False), seq)
    assert torch.equal(generate(model, prompt, 10, use_cache=True), seq)


def test_sampled_generation_is_seeded_and_cache_independent(model):
    prompt = torch.tensor([[2, 7, 1], [8, 2, 8]])
    runs = [
        generate(model, prompt, 15, use_cache=c, temperature=1.3, top_k=4,
                 generator=torch.Generator().manual_seed(5))
        for c in (True, False, True)
    ]
    assert runs[0].shape == (2, 18) and torch.equal(runs[0][:, :3], prompt)
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_top_k_never_leaves_the_k_largest_and_temperature_zero_is_greedy():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, V, generator=g)
    probs = next_token_probs(logits, temperature=0.7, top_k=3)
    top3 = torch.topk(logits, 3, dim=-1).indices
    outside = torch.ones_like(probs, dtype=torch.bool).scatter(1, top3, False)
    assert (probs[outside] == 0).all()
    torch.testing.assert_close(probs.sum(-1), torch.ones(50))
    # inside the top k the ratios are those of exp(logit / T)
    i = 0
    a, b = top3[i, 0], top3[i, 1]
    ratio = torch.exp((logits[i, a] - logits[i, b]) / 0.7)
    torch.testing.assert_close(probs[i, a] / probs[i, b], ratio)
    greedy = next_token_probs(logits, temperature=0)
    assert torch.equal(greedy.argmax(-1), logits.argmax(-1)) and (greedy.sum(-1) == 1).all()
    cold = next_token_probs(logits, temperature=1e-4)
    torch.testing.assert_close(cold, greedy, atol=1e-6, rtol=0)


def test_bad_arguments_raise(model):
    with pytest.raises(ValueError, match="max_len=40"):
        generate(model, torch.zeros(35, dtype=torch.long), 6)
    with pytest.raises(ValueError, match="prompt"):
        generate(model, torch.zeros(1, 1, 3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, torch.zeros(3, dtype=torch.long), 2, temperature=1.0, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, torch.zeros(3, dtype=torch.long), 2, temperature=-1.0)
    with pytest.raises(ValueError, match="tokens"):
        model(torch.zeros(5, dtype=torch.long))
