"""helpers.vision: the shipped digits and their split, PatchEmbedding against unfold-and-multiply
from its own weights, the ViT against a d2l-style forward built from d2l's MultiHeadAttention with
copied weights, rollout against its formula, occlusion against a direct loop, rank correlation
against SciPy, the image-and-text models' masks and caches, soft retrieval, and the shipped
checkpoints (size, and the start of their training curves reproduced)."""

from __future__ import annotations

import importlib.resources

import numpy as np
import pytest
import torch
from d2l_reference import load_d2l_or_skip  # tests/ is on sys.path
from torch.nn import functional as F

from helpers import vision
from helpers.vision import PatchEmbedding, ViT


@pytest.fixture(scope="module")
def data():
    return vision.digits_split()


def small_vit(patch_size=2, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(img_size=8, patch_size=patch_size, num_hiddens=16, mlp_num_hiddens=24,
                num_heads=2, num_blks=2, emb_dropout=0.0, blk_dropout=0.0)
    args.update(kw)
    return ViT(**args).eval()


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def test_digits_are_the_uci_file():
    images, labels = vision.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert float(images.min()) == 0.0 and float(images.max()) == 1.0
    assert torch.equal(images * 16, (images * 16).round())  # ink counts 0..16
    assert torch.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assets = importlib.resources.files("helpers") / "assets"
    licence = (assets / "digits.LICENSE.md").read_text(encoding="utf-8")
    assert "CC BY 4.0" in licence and "Alpaydin" in licence


def test_split_is_stratified_disjoint_and_fixed(data):
    _, labels = vision.load_digits()
    assert len(data.y_train) + len(data.y_test) == 1797
    both = torch.cat((data.train_index, data.test_index))
    assert torch.equal(both.sort().values, torch.arange(1797))
    for c in range(10):
        n = int((labels == c).sum())
        assert int((data.y_test == c).sum()) == n // 5
    again = vision.digits_split()
    assert torch.equal(again.test_index, data.test_index)
    assert torch.equal(data.x_test, vision.load_digits()[0][data.test_index])
    with pytest.raises(ValueError, match="test_every"):
        vision.digits_split(1)


# ---------------------------------------------------------------------------------------------
# PatchEmbedding and the ViT
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("img,patch,channels", [(8, 2, 1), (8, 4, 3), ((6, 12), (2, 3), 2)])
def test_patch_embedding_is_unfold_and_multiply(img, patch, channels):
    torch.manual_seed(0)
    embed = PatchEmbedding(img, patch, num_hiddens=5)
    h, w = (img, img) if isinstance(img, int) else img
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    X = torch.randn(3, channels, h, w)
    got = embed(X)  # materialises the lazy convolution
    cols = F.unfold(X.double(), kernel_size=(ph, pw), stride=(ph, pw))  # (B, C*ph*pw, P)
    W = embed.conv.weight.detach().double().reshape(5, -1)  # (d, C*ph*pw)
    want = cols.transpose(1, 2) @ W.T + embed.conv.bias.detach().double()  # (B, P, d)
    assert got.shape == (3, (h // ph) * (w // pw), 5) == want.shape
    assert embed.num_patches == got.shape[1]
    torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)
    # row-major: token r * (w // pw) + c is the patch in row r, column c
    r, c = h // ph - 1, 0
    alone = X[:, :, r * ph : (r + 1) * ph, c * pw : (c + 1) * pw].reshape(3, -1).double()
    torch.testing.assert_close(got[:, r * (w // pw) + c].double(), alone @ W.T
                               + embed.conv.bias.detach().double(), atol=1e-5, rtol=1e-5)


def test_patch_embedding_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        PatchEmbedding(8, 3, 4)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        PatchEmbedding((8, 12), (2, 5), 4)
    with pytest.raises(ValueError, match="patch_size"):
        PatchEmbedding(8, 0, 4)
    with pytest.raises(ValueError, match="img_size"):
        PatchEmbedding((8, 8, 8), 2, 4)
    embed = PatchEmbedding(8, 2, 4)
    with pytest.raises(ValueError, match=r"\(batch, channels, 8, 8\).*\(2, 1, 6, 6\)"):
        embed(torch.zeros(2, 1, 6, 6))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        ViT(10, 4, 8, 8, 2, 1, 0.0, 0.0)


def test_vit_has_d2l_names_shapes_and_attention_maps():
    vit = small_vit()
    names = set(dict(vit.named_parameters()))
    for name in ("patch_embedding.conv.weight", "cls_token", "pos_embedding",
                 "blks.0.ln1.weight", "blks.0.attention.W_q.weight", "blks.1.mlp.dense1.weight",
                 "blks.1.mlp.dense2.bias", "blks.1.ln2.bias", "head.0.weight", "head.1.bias"):
        assert name in names
    assert vit.pos_embedding.shape == (1, 17, 16) and vit.cls_token.shape == (1, 1, 16)
    X = torch.rand(4, 1, 8, 8)
    assert vit(X).shape == (4, 10)
    assert vit.encode(X).shape == (4, 17, 16)
    maps = vit.attention_maps
    assert len(maps) == 2 and all(m.shape == (4, 2, 17, 17) for m in maps)
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(4, 2, 17))


def _d2l_vit_forward(vit: ViT, X: torch.Tensor, d2l) -> torch.Tensor:
    """d2l 1.0's ViT forward, written out with F.* and d2l's own MultiHeadAttention."""
    conv = vit.patch_embedding.conv
    p = vit.patch_embedding.patch_size
    H = F.conv2d(X, conv.weight, conv.bias, stride=p).flatten(2).transpose(1, 2)
    H = torch.cat((vit.cls_token.expand(len(X), -1, -1), H), 1) + vit.pos_embedding
    d = H.shape[-1]
    for blk in vit.blks:
        mha = d2l.MultiHeadAttention(d, blk.attention.num_heads, 0.0)
        mha(H, H, H, None)  # materialise its lazy layers
        for name in ("W_q", "W_k", "W_v", "W_o"):
            getattr(mha, name).weight.data.copy_(getattr(blk.attention, name).weight)
        mha.eval()
        Z = F.layer_norm(H, (d,), blk.ln1.weight, blk.ln1.bias)
        H = H + mha(Z, Z, Z, None)
        Z = F.layer_norm(H, (d,), blk.ln2.weight, blk.ln2.bias)
        m = blk.mlp
        H = H + F.linear(F.gelu(F.linear(Z, m.dense1.weight, m.dense1.bias)), m.dense2.weight,
                         m.dense2.bias)
    ln, lin = vit.head
    return F.linear(F.layer_norm(H[:, 0], (d,), ln.weight, ln.bias), lin.weight, lin.bias)


def test_vit_matches_d2l_with_copied_weights():
    d2l = load_d2l_or_skip()
    vit = small_vit(num_heads=4)
    X = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(vit(X), _d2l_vit_forward(vit, X, d2l), atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Rollout, occlusion, rank correlation
# ---------------------------------------------------------------------------------------------


def _random_stochastic(gen, *shape):
    a = torch.rand(*shape, generator=gen, dtype=torch.float64) ** 3
    return a / a.sum(-1, keepdim=True)


@pytest.mark.parametrize("r", [0.0, 0.3, 0.5, 1.0])
def test_rollout_is_the_formula(r):
    gen = torch.Generator().manual_seed(1)
    maps = [_random_stochastic(gen, 2, 3, 5, 5) for _ in range(4)]  # 4 layers, 3 heads
    got = vision.attention_rollout(maps, residual_weight=r)
    assert got.shape == (2, 5, 5)
    for b in range(2):
        want = np.eye(5)
        for A in maps:  # first layer first: the later layer multiplies from the left
            A_hat = (1 - r) * A[b].numpy().mean(0) + r * np.eye(5)
            A_hat = A_hat / A_hat.sum(1, keepdims=True)
            want = A_hat @ want
        np.testing.assert_allclose(got[b].numpy(), want, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1).numpy(), 1.0, atol=1e-12)
    if r == 1.0:
        np.testing.assert_allclose(got.numpy(), np.broadcast_to(np.eye(5), (2, 5, 5)))


def test_rollout_rejects_bad_input():
    m = torch.rand(2, 3, 4, 4)
    with pytest.raises(ValueError, match="residual_weight"):
        vision.attention_rollout([m], residual_weight=1.5)
    with pytest.raises(TypeError, match="sequence"):
        vision.attention_rollout(m)
    with pytest.raises(ValueError, match=r"\(batch, heads, n, n\)"):
        vision.attention_rollout([m, torch.rand(2, 3, 5, 5)])
    with pytest.raises(ValueError, match=r"\(batch, heads, n, n\)"):
        vision.attention_rollout([torch.rand(2, 4, 4)])


def test_occlusion_is_a_direct_loop():
    vit = small_vit()
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, 1, 8, 8, generator=gen)
    labels = torch.tensor([2, 7, 0])
    got = vision.occlusion_importance(vit, images, labels, patch_size=2)
    assert got.shape == (3, 16)
    with torch.no_grad():
        for b in range(3):
            p_full = torch.softmax(vit(images[b : b + 1]).double(), -1)[0, labels[b]]
            for r in range(4):
                for c in range(4):
                    img = images[b : b + 1].clone()
                    img[..., 2 * r : 2 * r + 2, 2 * c : 2 * c + 2] = 0.0
                    p = torch.softmax(vit(img).double(), -1)[0, labels[b]]
                    assert float(got[b, 4 * r + c]) == pytest.approx(float(p_full - p), abs=1e-5)
    with pytest.raises(ValueError, match="multiple of patch_size"):
        vision.occlusion_importance(vit, images, labels, patch_size=3)
    with pytest.raises(ValueError, match="labels"):
        vision.occlusion_importance(vit, images, labels[:2], patch_size=2)


def test_patch_ink_sums_each_patch():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    ink = vision.patch_ink(x, 4)
    assert ink.tolist() == [[x[0, 0, :4, :4].sum().item(), x[0, 0, :4, 4:].sum().item(),
                             x[0, 0, 4:, :4].sum().item(), x[0, 0, 4:, 4:].sum().item()]]


def test_rank_correlation_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    gen = torch.Generator().manual_seed(0)
    a = torch.randint(0, 4, (6, 16), generator=gen).double()  # many ties
    b = torch.randn(6, 16, generator=gen, dtype=torch.float64)
    b[:, :5] = 0.0  # ties in b too
    got = vision.rank_correlation(a, b)
    for i in range(6):
        want = stats.spearmanr(a[i].numpy(), b[i].numpy()).statistic
        assert float(got[i]) == pytest.approx(want, abs=1e-12)
    assert float(vision.rank_correlation(b[0], b[0])) == pytest.approx(1.0)
    assert float(vision.rank_correlation(b[0], -b[0])) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="share a shape"):
        vision.rank_correlation(a, b[:, :3])


# ---------------------------------------------------------------------------------------------
# Image and text
# ---------------------------------------------------------------------------------------------


def test_names_round_trip():
    tokens = vision.encode_names(torch.arange(10))
    assert tokens.shape == (10, vision.NAME_LEN)
    assert vision.decode_names(tokens) == list(vision.DIGIT_NAMES)
    assert (tokens == vision.EOS).sum(1).tolist() == [1] * 10
    with pytest.raises(ValueError, match="digits 0-9"):
        vision.encode_names(torch.tensor([3, 10]))
    with pytest.raises(ValueError, match="digits 0-9"):
        vision.encode_names(torch.tensor([[3]]))


def test_caption_model_cached_spelling_equals_recomputation():
    torch.manual_seed(0)
    model = vision.CaptionModel(num_hiddens=16, num_heads=2, enc_blks=1, dec_blks=2).eval()
    images = torch.rand(4, 1, 8, 8)
    tokens, maps = model.spell(images)
    assert tokens.shape == (4, vision.NAME_LEN) and maps.shape == (4, vision.NAME_LEN, 16)
    torch.testing.assert_close(maps.sum(-1), torch.ones(4, vision.NAME_LEN))
    inputs = torch.cat((torch.full((4, 1), vision.BOS), tokens[:, :-1]), 1)
    with torch.no_grad():
        full = model(images, inputs)  # teacher forcing on the generated letters
    assert torch.equal(full.argmax(-1), tokens)
    loss = model.loss(images, torch.tensor([1, 2, 3, 7]))
    assert loss.dim() == 0 and torch.isfinite(loss)


def test_prefix_model_mask_is_a_prefix_mask():
    torch.manual_seed(0)
    model = vision.PrefixCaptionModel(patch_size=4, num_hiddens=16, num_heads=2,
                                      num_blks=2).eval()
    lens = model.valid_lens(2, 3)
    assert lens.tolist() == [[4, 4, 4, 4, 5, 6, 7]] * 2
    images = torch.rand(2, 1, 8, 8)
    tokens = torch.tensor([[vision.BOS, 5, 6], [vision.BOS, 7, 8]])
    changed = tokens.clone()
    changed[:, 2] = 9
    with torch.no_grad():
        a, b = model(images, tokens), model(images, changed)
        torch.testing.assert_close(a[:, :2], b[:, :2])  # a letter never sees later letters
        assert not torch.allclose(a[:, 2], b[:, 2])
        other = model(images.flip(-1), tokens)
        assert not torch.allclose(a[:, 0], other[:, 0])  # the first letter sees the image
    spelled, maps = model.spell(images)
    assert spelled.shape == (2, vision.NAME_LEN) and maps.shape == (2, vision.NAME_LEN, 4)


def test_prefix_spelling_maps_are_the_letters_weights_on_the_patches_renormalised():
    torch.manual_seed(1)
    model = vision.PrefixCaptionModel(patch_size=4, num_hiddens=16, num_heads=2,
                                      num_blks=2).eval()
    images = torch.rand(3, 1, 8, 8)
    spelled, maps = model.spell(images)
    inputs = torch.cat((torch.full((3, 1), vision.BOS), spelled[:, :-1]), 1)
    with torch.no_grad():
        model(images, inputs)  # the final sequence again, by hand
    w = model.attention_maps[-1]  # (3, heads, 4 + T, 4 + T)
    for b in range(3):
        for t in range(vision.NAME_LEN):
            row = w[b, :, 4 + t, :4].double().mean(0)  # heads averaged, patches only
            want = (row / row.sum()).numpy()
            np.testing.assert_allclose(maps[b, t].double().numpy(), want, atol=1e-6)
    np.testing.assert_allclose(maps.sum(-1).numpy(), 1.0, atol=1e-6)
    assert float(w[:, :, 4:, :4].sum(-1).max()) < 1.0  # before renormalising, letters also
    # put weight on the letters


# ---------------------------------------------------------------------------------------------
# Soft retrieval
# ---------------------------------------------------------------------------------------------


def test_soft_retrieval_weights_results_and_low_temperature():
    gen = torch.Generator().manual_seed(0)
    q, k = torch.randn(3, 5, generator=gen), torch.randn(7, 5, generator=gen)
    v = torch.randn(7, 2, generator=gen)
    w, out = vision.soft_retrieval(q, k, v, temperature=0.5)
    cos = F.normalize(q.double(), dim=-1) @ F.normalize(k.double(), dim=-1).T
    torch.testing.assert_close(w.double(), torch.softmax(cos / 0.5, -1), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out.double(), w.double() @ v.double(), atol=1e-6, rtol=1e-6)
    assert torch.equal(w.argsort(-1), cos.argsort(-1))  # ranking by weight = by similarity
    w_cold, out_cold = vision.soft_retrieval(q, k, v, temperature=1e-4)
    best = cos.argmax(-1)
    torch.testing.assert_close(out_cold, v[best], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="temperature"):
        vision.soft_retrieval(q, k, v, temperature=0)
    with pytest.raises(ValueError, match="queries"):
        vision.soft_retrieval(q, k[:, :3], v, temperature=1.0)


# ---------------------------------------------------------------------------------------------
# Shipped checkpoints
# ---------------------------------------------------------------------------------------------

CHECKPOINTS = ("mlp", "cnn", "vit_p1", "vit_p2", "vit_p4", "caption_cross", "caption_prefix")


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_checkpoints_are_small_and_load(name):
    path = importlib.resources.files("helpers") / "assets" / f"ch13_{name}.pt"
    assert path.is_file()
    with path.open("rb") as f:
        assert len(f.read()) <= 2_000_000
    model, meta = vision.load_checkpoint(f"ch13_{name}.pt")
    assert vision.checkpoint_bytes(f"ch13_{name}.pt") == path.stat().st_size
    assert meta["params"] == sum(p.numel() for p in model.parameters())
    assert len(meta["losses"]) == 30 * 23
    data = vision.digits_split()
    with torch.no_grad():
        if name.startswith("caption"):  # the whole name, letter by letter
            tokens, _ = model.spell(data.x_test)
            right = [vision.decode_names(tokens[i : i + 1])[0] == vision.DIGIT_NAMES[int(d)]
                     for i, d in enumerate(data.y_test)]
        else:
            right = [int(model(data.x_test[i : i + 1]).argmax()) == int(d)
                     for i, d in enumerate(data.y_test)]
    measured = sum(right) / len(right)
    assert measured >= 0.95
    # the stored accuracy is what the weights give (one image of 355 may flip on another build)
    assert abs(measured - meta["test_accuracy"]) <= 1.5 / len(right)


@pytest.mark.parametrize("name", ["vit_p2", "cnn", "caption_prefix"])
def test_training_script_reproduces_the_start_of_the_curve(name):
    import train_ch13  # tools/ is on pytest's pythonpath

    torch.set_num_threads(1)
    _, meta = vision.load_checkpoint(f"ch13_{name}.pt")
    _, result = train_ch13.train(name, max_steps=8)
    assert len(result["losses"]) == 8
    np.testing.assert_allclose(result["losses"], meta["losses"][:8], rtol=2e-3, atol=2e-3)


def test_checkpoint_of_an_unknown_kind_is_an_error(tmp_path, monkeypatch):
    torch.save({"config": {"kind": "Nope"}, "state_dict": {}, "meta": {}}, tmp_path / "x.pt")
    monkeypatch.setattr(vision.importlib.resources, "files", lambda _pkg: tmp_path.parent)
    (tmp_path.parent / "assets").mkdir(exist_ok=True)
    (tmp_path.parent / "assets" / "x.pt").write_bytes((tmp_path / "x.pt").read_bytes())
    with pytest.raises(ValueError, match="unknown model kind"):
        vision.load_checkpoint("x.pt")
