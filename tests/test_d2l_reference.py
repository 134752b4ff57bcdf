"""The helpers keep d2l 1.0's names and signatures: checked against d2l's own code (d2l 1.0.3).

d2l's definitions are loaded from its installed source without importing the package
(tests/d2l_reference.py). Where the book deliberately differs from d2l, the test asserts the
difference: a query with no valid key gets zero weights (d2l: uniform), `masked_softmax` leaves its
input alone (d2l writes the mask into it), and the Epanechnikov kernel is the real one (d2l's
`epanechikov` is the triangular kernel).
"""

from __future__ import annotations

import pytest
import torch
from d2l_reference import load_d2l_or_skip  # tests/ is on sys.path (rootdir-relative test folder)

from helpers import attention, pooling

ATOL = 1e-6


@pytest.fixture(scope="module")
def d2l():
    return load_d2l_or_skip()


def _qkv(seed: int = 0, batch: int = 2, n_q: int = 3, n_k: int = 5, d: int = 8, d_v: int = 6):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, n_q, d, generator=g),
        torch.randn(batch, n_k, d, generator=g),
        torch.randn(batch, n_k, d_v, generator=g),
    )


VALID_LENS = [
    None,
    torch.tensor([2, 5]),  # one length per example
    torch.tensor([[1, 3, 5], [2, 2, 4]]),  # one length per query
]


@pytest.mark.parametrize("valid_lens", VALID_LENS, ids=["none", "per-example", "per-query"])
def test_masked_softmax_matches_d2l_when_every_row_has_a_valid_key(d2l, valid_lens):
    X = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(1))
    ours = attention.masked_softmax(X, valid_lens)
    theirs = d2l.masked_softmax(X.clone(), valid_lens)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_masked_softmax_differs_from_d2l_on_a_row_with_no_valid_key(d2l):
    X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(2))
    lens = torch.tensor([[0, 2, 4], [1, 0, 3]])
    ours = attention.masked_softmax(X, lens)
    theirs = d2l.masked_softmax(X.clone(), lens)
    empty = lens == 0
    assert torch.equal(ours[empty], torch.zeros(2, 4))  # the book: no key, no weight
    torch.testing.assert_close(theirs[empty], torch.full((2, 4), 0.25))  # d2l: uniform
    torch.testing.assert_close(ours[~empty], theirs[~empty], atol=ATOL, rtol=0)


def test_masked_softmax_leaves_its_input_alone_where_d2l_overwrites_it(d2l):
    X = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(3))
    lens = torch.tensor([1, 3])
    ours_in, theirs_in = X.clone(), X.clone()
    attention.masked_softmax(ours_in, lens)
    d2l.masked_softmax(theirs_in, lens)
    assert torch.equal(ours_in, X)
    assert not torch.equal(theirs_in, X) and (theirs_in == -1e6).any()  # d2l's mask, written in


@pytest.mark.parametrize("valid_lens", VALID_LENS, ids=["none", "per-example", "per-query"])
def test_dot_product_attention_matches_d2l(d2l, valid_lens):
    q, k, v = _qkv()
    ours, theirs = attention.DotProductAttention(dropout=0.0), d2l.DotProductAttention(0.0)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(q, k, v, valid_lens), theirs(q, k, v, valid_lens))
    torch.testing.assert_close(ours.attention_weights, theirs.attention_weights)


def _copy_weights(ours: torch.nn.Module, theirs: torch.nn.Module, *inputs) -> None:
    """Run both once (lazy layers take their shapes), check the parameter names agree, copy ours."""
    ours(*inputs), theirs(*inputs)
    assert ours.state_dict().keys() == theirs.state_dict().keys()  # d2l's sub-layer names
    theirs.load_state_dict(ours.state_dict())


@pytest.mark.parametrize("valid_lens", VALID_LENS, ids=["none", "per-example", "per-query"])
def test_additive_attention_matches_d2l_with_copied_weights(d2l, valid_lens):
    q, k, v = _qkv(d=4)
    torch.manual_seed(0)
    ours, theirs = (
        attention.AdditiveAttention(num_hiddens=7, dropout=0.0),
        d2l.AdditiveAttention(7, 0.0),
    )
    ours.eval(), theirs.eval()
    _copy_weights(ours, theirs, q, k, v, valid_lens)
    torch.testing.assert_close(ours(q, k, v, valid_lens), theirs(q, k, v, valid_lens))
    torch.testing.assert_close(ours.attention_weights, theirs.attention_weights)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("valid_lens", VALID_LENS, ids=["none", "per-example", "per-query"])
def test_multi_head_attention_matches_d2l_with_copied_weights(d2l, valid_lens, bias):
    q, k, v = _qkv(d=12, d_v=10)
    ours = attention.MultiHeadAttention(num_hiddens=12, num_heads=3, dropout=0.0, bias=bias)
    theirs = d2l.MultiHeadAttention(12, 3, 0.0, bias=bias)
    ours.eval(), theirs.eval()
    _copy_weights(ours, theirs, q, k, v, valid_lens)
    torch.testing.assert_close(ours(q, k, v, valid_lens), theirs(q, k, v, valid_lens))
    # per-head weights in d2l's layout: (batch * num_heads, n_q, n_k)
    torch.testing.assert_close(ours.attention_weights, theirs.attention.attention_weights)


def test_epanechnikov_is_the_real_kernel_where_d2l_has_the_triangular_one():
    u = torch.linspace(-1.5, 1.5, 31, dtype=torch.float64)
    real = torch.clamp(1 - u**2, min=0)  # Epanechnikov (1 - u^2)_+, up to its 3/4 factor
    # d2l 1.0, section 11.2 (not in d2l/torch.py): def epanechikov(x):
    #     return torch.max(1 - d2l.abs(x), torch.zeros_like(x))
    d2l_epanechikov = torch.max(1 - torch.abs(u), torch.zeros_like(u))
    torch.testing.assert_close(pooling.epanechnikov(u), real)
    half = torch.tensor([0.5], dtype=torch.float64)
    assert pooling.epanechnikov(half).item() == pytest.approx(0.75)
    assert d2l_epanechikov[(u - 0.5).abs() < 1e-12].item() == pytest.approx(0.5)  # 1 - |u|
    assert not torch.allclose(pooling.epanechnikov(u), d2l_epanechikov)


# ---------------------------------------------------------------------------------------------
# The Transformer's pieces (helpers.transformer, d2l 1.0 names and sub-layer names)
# ---------------------------------------------------------------------------------------------


def test_positional_encoding_matches_d2l(d2l):
    from helpers.transformer import PositionalEncoding

    ours, theirs = PositionalEncoding(32, 0.0, max_len=1000), d2l.PositionalEncoding(32, 0.0)
    ours.eval(), theirs.eval()
    assert "P" in dict(ours.named_buffers())  # a buffer: moves with .to(device)
    # d2l computes the angles in float32: at position 999 their spacing is 6e-5, hence atol 1e-4
    torch.testing.assert_close(ours.P, theirs.P, atol=1e-4, rtol=0)
    X = torch.randn(2, 10, 32, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours(X), theirs(X), atol=ATOL, rtol=0)


def test_position_wise_ffn_and_add_norm_match_d2l(d2l):
    from helpers.transformer import AddNorm, PositionWiseFFN

    X = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(5))
    Y = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(6))
    ffn, ffn_d2l = PositionWiseFFN(16, 8), d2l.PositionWiseFFN(16, 8)
    _copy_weights(ffn, ffn_d2l, X)
    torch.testing.assert_close(ffn(X), ffn_d2l(X))
    norm, norm_d2l = AddNorm(8, 0.0), d2l.AddNorm(8, 0.0)
    norm.eval(), norm_d2l.eval()
    _copy_weights(norm, norm_d2l, X, Y)
    torch.testing.assert_close(norm(X, Y), norm_d2l(X, Y))


@pytest.mark.parametrize("valid_lens", [None, torch.tensor([3, 5])], ids=["none", "per-example"])
def test_transformer_encoder_block_matches_d2l_with_copied_weights(d2l, valid_lens):
    from helpers.transformer import TransformerEncoderBlock

    X = torch.randn(2, 5, 24, generator=torch.Generator().manual_seed(7))
    ours = TransformerEncoderBlock(24, 48, 4, 0.0, use_bias=False)
    theirs = d2l.TransformerEncoderBlock(24, 48, 4, 0.0, use_bias=False)
    ours.eval(), theirs.eval()
    _copy_weights(ours, theirs, X, valid_lens)  # also: the same sub-layer names as d2l
    torch.testing.assert_close(ours(X, valid_lens), theirs(X, valid_lens))


def test_a_missing_d2l_skips_with_the_reason_unless_it_is_required(monkeypatch):
    import d2l_reference

    d2l_reference.load_d2l.cache_clear()
    monkeypatch.setattr(d2l_reference.importlib.util, "find_spec", lambda name: None)
    try:
        monkeypatch.delenv("BOOK_REQUIRE_D2L", raising=False)
        with pytest.raises(pytest.skip.Exception, match="pip install --no-deps"):
            d2l_reference.load_d2l_or_skip()
        monkeypatch.setenv("BOOK_REQUIRE_D2L", "1")
        with pytest.raises(ModuleNotFoundError, match="d2l==1.0.3"):
            d2l_reference.load_d2l_or_skip()
    finally:
        d2l_reference.load_d2l.cache_clear()
