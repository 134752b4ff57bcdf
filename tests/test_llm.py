"""helpers.llm: grouped-query attention against a float64 loop over heads, PyTorch's SDPA and the
book's MultiHeadAttention; the KV-cache formula against real caches; masks against their
definition in prefill and decode shapes; the rolling-buffer cache against recomputation;
FlexAttention's mask_mods and score_mods against SDPA; the cost model; every bad argument."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from references import gqa_loop_float64
from references import sliding_window_mask_by_definition as mask_by_definition

from helpers import llm
from helpers.attention import MultiHeadAttention
from helpers.transformer import TinyGPT, kv_cache_nbytes


@pytest.mark.parametrize("num_kv_heads", [8, 4, 2, 1])
def test_grouped_attention_equals_a_loop_and_sdpa(num_kv_heads):
    torch.manual_seed(0)
    att = llm.GroupedQueryAttention(32, 8, num_kv_heads).eval()
    X = torch.randn(3, 7, 32)
    q, k, v = att.project(X)
    assert q.shape == (3, 8, 7, 4) and k.shape == v.shape == (3, num_kv_heads, 7, 4)
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    loop = gqa_loop_float64(q, k, v, causal)
    out, weights = llm.grouped_attention(q, k, v, causal)
    torch.testing.assert_close(out.double(), loop, atol=1e-6, rtol=1e-5)
    assert weights.shape == (3, 8, 7, 7)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 8, 7))
    sdpa = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    torch.testing.assert_close(out, sdpa, atol=1e-6, rtol=1e-5)
    want = att.W_o(sdpa.transpose(1, 2).reshape(3, 7, 32))
    torch.testing.assert_close(att(X), want, atol=1e-6, rtol=1e-5)
    # an explicit mask replaces the causal one; is_causal=False sees everything
    full = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    torch.testing.assert_close(att(X, is_causal=False),
                               att.W_o(full.transpose(1, 2).reshape(3, 7, 32)),
                               atol=1e-6, rtol=1e-5)
    window = llm.sliding_window_mask(7, 7, 3)
    masked = F.scaled_dot_product_attention(q, k, v, attn_mask=window, enable_gqa=True)
    torch.testing.assert_close(att(X, mask=window),
                               att.W_o(masked.transpose(1, 2).reshape(3, 7, 32)),
                               atol=1e-6, rtol=1e-5)


def test_multi_query_reads_one_key_value_head_for_every_query_head():
    torch.manual_seed(1)
    att = llm.GroupedQueryAttention(12, 3, 1)
    q, k, v = att.project(torch.randn(2, 5, 12))
    out, _ = llm.grouped_attention(q, k, v)
    for i in range(3):  # each head alone is plain attention on the single key/value head
        want = F.scaled_dot_product_attention(q[:, i : i + 1], k, v)
        torch.testing.assert_close(out[:, i : i + 1], want, atol=1e-6, rtol=1e-5)


def test_with_as_many_kv_heads_it_is_the_books_multi_head_attention():
    torch.manual_seed(2)
    X = torch.randn(2, 6, 16)
    mha = MultiHeadAttention(16, 4)
    lens = torch.arange(1, 7).repeat(2, 1)
    want = mha(X, X, X, lens)
    gqa = llm.GroupedQueryAttention(16, 4, 4)
    gqa.load_state_dict(mha.state_dict())
    torch.testing.assert_close(gqa(X), want, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(gqa.attention_weights, mha.head_weights, atol=1e-6, rtol=1e-5)


def test_grouped_query_attention_bad_arguments():
    with pytest.raises(ValueError, match="num_heads .4. must be a multiple of num_kv_heads .3."):
        llm.GroupedQueryAttention(16, 4, 3)
    with pytest.raises(ValueError, match="num_hiddens"):
        llm.GroupedQueryAttention(18, 4, 2)
    with pytest.raises(ValueError, match="num_kv_heads"):
        llm.GroupedQueryAttention(16, 4, 0)
    with pytest.raises(TypeError, match="num_heads"):
        llm.GroupedQueryAttention(16, 4.0, 2)
    att = llm.GroupedQueryAttention(16, 4, 2)
    with pytest.raises(ValueError, match=r"X must be \(batch, n, 16\)"):
        att(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match="multiple of the key/value heads"):
        llm.grouped_attention(torch.randn(1, 3, 2, 4), torch.randn(1, 2, 2, 4),
                              torch.randn(1, 2, 2, 4))
    with pytest.raises(ValueError, match="4-D"):
        llm.grouped_attention(torch.randn(3, 2, 4), torch.randn(1, 2, 2, 4),
                              torch.randn(1, 2, 2, 4))
    with pytest.raises(ValueError, match="k and v"):
        llm.grouped_attention(torch.randn(1, 2, 2, 4), torch.randn(1, 2, 2, 4),
                              torch.randn(1, 2, 3, 4))


@pytest.mark.parametrize("num_queries,num_keys,window,num_sinks",
                         [(9, 9, 3, 0), (9, 9, 3, 2), (1, 12, 4, 1), (3, 12, 5, 0),
                          (6, 6, 10, 0), (4, 10, 1, 3), (5, 5, 2, 5)])
def test_sliding_window_mask_follows_its_definition(num_queries, num_keys, window, num_sinks):
    got = llm.sliding_window_mask(num_queries, num_keys, window, num_sinks)
    assert got.dtype == torch.bool and got.shape == (num_queries, num_keys)
    assert torch.equal(got, mask_by_definition(num_queries, num_keys, window, num_sinks))
    if num_queries == num_keys:  # every query sees itself, so no row is empty
        assert bool(got.diagonal().all())


def test_a_window_as_long_as_the_text_is_the_causal_mask():
    causal = torch.ones(7, 7, dtype=torch.bool).tril()
    assert torch.equal(llm.sliding_window_mask(7, 7, 7), causal)
    assert torch.equal(llm.sliding_window_mask(3, 7, 7), causal[4:])


def test_mask_bad_arguments():
    with pytest.raises(ValueError, match="num_queries .5. must be <= num_keys .4."):
        llm.sliding_window_mask(5, 4, 2)
    with pytest.raises(ValueError, match="window"):
        llm.sliding_window_mask(4, 4, 0)
    with pytest.raises(ValueError, match="num_sinks"):
        llm.sliding_window_mask(4, 4, 2, -1)
    with pytest.raises(TypeError, match="window"):
        llm.sliding_window_mask(4, 4, 2.5)
    with pytest.raises(ValueError, match="doc_ids"):
        llm.document_mask(torch.zeros(2, 3))


def test_document_mask_is_causal_within_each_document():
    docs = torch.tensor([0, 0, 0, 1, 1, 2])
    got = llm.document_mask(docs)
    want = torch.tensor([[j <= i and docs[i] == docs[j] for j in range(6)] for i in range(6)])
    assert torch.equal(got, want)


def test_kv_cache_formula_equals_the_bytes_of_real_caches():
    assert llm.kv_cache_bytes_per_token(32, 8, 128) == 131072  # Llama-3-8B: 128 KiB
    assert llm.kv_cache_bytes_per_token(12, 12, 64, 4) == 2 * 12 * 12 * 64 * 4
    torch.manual_seed(0)
    tiny = TinyGPT(30, 48, 6, 2, 40).eval()
    tokens = torch.randint(0, 30, (3, 25))
    for kv in (6, 3, 2, 1):
        model = llm.from_tinygpt(tiny, kv) if kv != 6 else tiny
        cache = model.new_cache()
        with torch.no_grad():
            model(tokens, cache)
        per_token = llm.kv_cache_bytes_per_token(2, kv, 8, bytes_per_element=4)
        assert kv_cache_nbytes(cache) == per_token * 3 * 25  # what the cache holds
        # what it allocates: TinyGPT grows with torch.cat (exactly what it holds); GQAGPT
        # writes into a buffer allocated once for max_len = 40 positions
        allocated = per_token * 3 * (25 if kv == 6 else 40)
        assert llm.kv_cache_allocated_bytes(cache) == allocated
    # a cache appended with torch.cat by hand, independent of both models: 2 layers, 3 K/V
    # heads of width 8, batch 3, 5 steps of 5 tokens, float32
    appended = [{"k": None, "v": None} for _ in range(2)]
    for _ in range(5):
        for c in appended:
            for name in ("k", "v"):
                new_kv = torch.zeros(3, 3, 5, 8)
                c[name] = new_kv if c[name] is None else torch.cat((c[name], new_kv), dim=2)
    per_token = llm.kv_cache_bytes_per_token(2, 3, 8, bytes_per_element=4)
    assert llm.kv_cache_allocated_bytes(appended) == per_token * 3 * 25
    assert per_token * 3 * 25 == 2 * 2 * 3 * 25 * 3 * 8 * 4  # (k, v) x layers x batch x ...
    with pytest.raises(ValueError, match="head_dim"):
        llm.kv_cache_bytes_per_token(2, 2, 0)
    with pytest.raises(TypeError, match="bytes_per_element"):
        llm.kv_cache_bytes_per_token(2, 2, 2, 2.0)


def test_published_configurations_and_windowed_cache_bytes():
    c = llm.PUBLISHED_CONFIGS
    assert c["Llama-2-7B"].bytes_per_token() == 512 * 1024
    assert c["Llama-2-70B"].bytes_per_token() == 320 * 1024
    assert c["Llama-3-8B"].bytes_per_token() == c["Mistral-7B v0.1"].bytes_per_token() == 128 * 1024
    assert c["GPT-2 small"].bytes_per_token() == 36 * 1024
    mistral = c["Mistral-7B v0.1"]
    assert llm.kv_cache_bytes(mistral, 100_000) == 4096 * 128 * 1024  # the window caps it
    assert llm.kv_cache_bytes(mistral, 1000, batch=3) == 3 * 1000 * 128 * 1024
    assert llm.kv_cache_bytes(c["Llama-2-7B"], 10, num_kv_heads=1) == 10 * 16 * 1024
    for cfg in c.values():
        assert cfg.source and cfg.num_heads % cfg.num_kv_heads == 0
    with pytest.raises(ValueError, match="context"):
        llm.kv_cache_bytes(mistral, 0)


def test_from_tinygpt_keeps_the_function_with_every_head_and_mean_pools_otherwise():
    torch.manual_seed(3)
    tiny = TinyGPT(20, 32, 4, 2, 24).eval()
    tokens = torch.randint(0, 20, (2, 24))
    same = llm.from_tinygpt(tiny, 4)
    with torch.no_grad():
        torch.testing.assert_close(same(tokens), tiny(tokens), atol=1e-5, rtol=1e-5)
    pooled = llm.from_tinygpt(tiny, 2)
    for blk, ref in zip(pooled.blks, tiny.blks, strict=True):
        Wk = ref.attention.W_k.weight  # (4 * 8, 32)
        want = torch.cat([(Wk[0:8] + Wk[8:16]) / 2, (Wk[16:24] + Wk[24:32]) / 2])
        torch.testing.assert_close(blk.attention.W_k.weight, want)
        torch.testing.assert_close(blk.attention.W_q.weight, ref.attention.W_q.weight)
    with pytest.raises(ValueError, match="multiple of num_kv_heads"):
        llm.from_tinygpt(tiny, 3)
    with pytest.raises(TypeError, match="TinyGPT"):
        llm.from_tinygpt(pooled, 2)


@pytest.mark.parametrize("window,num_sinks,prompt,chunk", [(5, 0, 7, 1), (5, 2, 3, 1),
                                                            (4, 1, 9, 3), (6, 3, 1, 2)])
def test_rolling_buffer_decoding_equals_recomputation_with_the_mask(window, num_sinks, prompt,
                                                                   chunk):
    torch.manual_seed(4)
    tiny = TinyGPT(20, 32, 4, 2, 30).eval()
    model = llm.from_tinygpt(tiny, 2).eval()
    model.window, model.num_sinks = window, num_sinks
    tokens = torch.randint(0, 20, (2, 30))
    with torch.no_grad():
        full = model(tokens)
        # the mask the model used is sliding_window_mask: check through one block by hand
        cache = model.new_cache(rolling=True)
        outs = [model(tokens[:, :prompt], cache)]
        for t in range(prompt, 30, chunk):
            outs.append(model(tokens[:, t : t + chunk], cache))
            assert cache[0]["k"].shape[2] == window + num_sinks  # fixed size
    torch.testing.assert_close(torch.cat(outs, 1), full, atol=1e-5, rtol=1e-5)
    held = sorted(cache[0]["pos"].tolist())
    want = sorted(set(range(min(num_sinks, 30))) | set(range(30 - window, 30)))
    assert held[-len(want):] == want


def test_the_model_mask_is_sliding_window_mask():
    torch.manual_seed(5)
    model = llm.from_tinygpt(TinyGPT(20, 16, 2, 1, 12).eval(), 1).eval()
    model.window, model.num_sinks = 3, 1
    with torch.no_grad():
        model(torch.randint(0, 20, (1, 12)))
    w = model.attention_weights[0][0]  # (heads, 12, 12)
    assert torch.equal(w[0] > 0, llm.sliding_window_mask(12, 12, 3, 1))


def test_model_and_cache_bad_arguments():
    model = llm.from_tinygpt(TinyGPT(20, 16, 2, 1, 12).eval(), 1)
    with pytest.raises(ValueError, match="rolling cache needs a window"):
        model.new_cache(rolling=True)
    model.window = 0
    with pytest.raises(ValueError, match="window"):
        model(torch.zeros(1, 3, dtype=torch.long))
    model.window = 3
    with pytest.raises(ValueError, match="tokens must be a"):
        model(torch.zeros(3, dtype=torch.long))


def _qkv(n_q=24, n_k=24, h=4, g=2, p=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(2, h, n_q, p, generator=gen), torch.randn(2, g, n_k, p, generator=gen),
            torch.randn(2, g, n_k, p, generator=gen))


@pytest.mark.parametrize("name", ["causal", "window", "window_sinks", "documents"])
def test_flex_mask_mods_equal_sdpa_with_the_dense_mask(name):
    q, k, v = _qkv()
    n = 24
    docs = torch.tensor([0] * 7 + [1] * 5 + [2] * 12)
    mod, dense = {
        "causal": (llm.causal_mask_mod, torch.ones(n, n, dtype=torch.bool).tril()),
        "window": (llm.sliding_window_mask_mod(5), mask_by_definition(n, n, 5, 0)),
        "window_sinks": (llm.sliding_window_mask_mod(5, 3), mask_by_definition(n, n, 5, 3)),
        "documents": (llm.document_mask_mod(docs), llm.document_mask(docs)),
    }[name]
    assert torch.equal(llm.mask_from_mod(mod, n, n), dense)
    got = llm.flex_attention_eager(q, k, v, mod, enable_gqa=True)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_flex_decode_shapes_with_an_offset():
    q, k, v = _qkv(n_q=3, n_k=20)
    mod = llm.sliding_window_mask_mod(6, 2, offset=17)
    dense = mask_by_definition(3, 20, 6, 2)
    assert torch.equal(llm.mask_from_mod(mod, 3, 20), dense)
    got = llm.flex_attention_eager(q, k, v, mod, enable_gqa=True)
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=dense, enable_gqa=True)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_flex_score_mods_alibi_and_softcap():
    q, k, v = _qkv(h=4, g=4)
    n = 24
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    slopes = [2 ** (-8 * i / 4) for i in range(1, 5)]
    bias = torch.tensor([[[-s * (i - j) for j in range(n)] for i in range(n)] for s in slopes])
    torch.testing.assert_close(llm.alibi_bias(4, n, n), bias.float())
    got = llm.flex_attention_eager(q, k, v, llm.causal_mask_mod, llm.alibi_score_mod(4))
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.float().masked_fill(
        ~causal, -math.inf))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    got = llm.flex_attention_eager(q, k, v, llm.causal_mask_mod, llm.softcap_score_mod(1.5))
    s = 1.5 * torch.tanh(q.double() @ k.double().transpose(-2, -1) / math.sqrt(8) / 1.5)
    want = torch.softmax(s.masked_fill(~causal, -math.inf), -1) @ v.double()
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="cap"):
        llm.softcap_score_mod(0)
    with pytest.raises(ValueError, match="power of two"):
        llm.alibi_slopes(6)
    with pytest.raises(TypeError, match="mask_mod must return a bool tensor"):
        llm.mask_from_mod(lambda b, h, q, k: None, 3, 3)


def test_cost_model_counts_flops_and_bytes():
    c = llm.PUBLISHED_CONFIGS["Llama-2-7B"]
    one = llm.decode_cost(c, 4096, 1)
    attn = 4 * 32 * 32 * 128 * 4096
    assert one["flops"] == pytest.approx(2 * 6.7e9 + attn)
    assert one["bytes"] == pytest.approx(2 * 6.7e9 + 4096 * 512 * 1024)
    assert one["intensity"] == pytest.approx(one["flops"] / one["bytes"])
    # from first principles (Touvron et al. 2023): 32 layers of width 4096, feed-forward 11008
    # (three matrices), vocabulary 32000 in and out; 2 FLOPs per weight of a matrix-vector
    # product, plus scores and weighted sum (2 + 2 FLOPs per key, layer and hidden unit) over
    # 4096 cached tokens; fp16 bytes: every weight, plus keys and values of 4096 tokens
    weights = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 2 * 32000 * 4096  # about 6.74e9
    flops = 2 * weights + 32 * 4096 * (2 + 2) * 4096  # about 15.6 GFLOP
    nbytes = 2 * weights + 4096 * 32 * 2 * 4096 * 2  # about 15.6 GB
    assert one["flops"] == pytest.approx(flops, rel=0.01)
    assert one["bytes"] == pytest.approx(nbytes, rel=0.01)
    many = llm.decode_cost(c, 4096, 64)
    assert many["bytes"] == pytest.approx(2 * 6.7e9 / 64 + 4096 * 512 * 1024)
    gqa = llm.decode_cost(c, 4096, 64, num_kv_heads=8)
    assert gqa["intensity"] > 3 * many["intensity"]
    pre = llm.prefill_cost(c, 4096)
    assert pre["intensity"] > 100 * one["intensity"]
    with pytest.raises(ValueError, match="batch"):
        llm.decode_cost(c, 10, 0)
    with pytest.raises(ValueError, match="prompt"):
        llm.prefill_cost(c, 0)
