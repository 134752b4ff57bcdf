"""Attention on images (chapter 13): the shipped handwritten digits, a Vision Transformer with
d2l 1.0's names, two ways to join an image and text, and three importance maps.

Shapes: images (batch, channels, H, W); patch tokens (batch, num_patches, num_hiddens), patches in
row-major order (left to right, then top to bottom); attention maps (batch, heads, n, n), queries on
rows, keys on columns, with the `[CLS]` token at position 0 when there is one.
"""

from __future__ import annotations

import gzip
import importlib.resources
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from helpers.attention import MultiHeadAttention
from helpers.transformer import TransformerDecoder

__all__ = [
    "CaptionModel",
    "DIGIT_NAMES",
    "DigitsSplit",
    "ImportanceMaps",
    "PatchEmbedding",
    "PrefixCaptionModel",
    "SmallCNN",
    "SmallMLP",
    "ViT",
    "ViTBlock",
    "ViTMLP",
    "accuracy",
    "attention_rollout",
    "checkpoint_bytes",
    "cls_attention",
    "decode_names",
    "digits_split",
    "encode_names",
    "importance_maps",
    "letter_focus",
    "load_checkpoint",
    "load_digits",
    "occlusion_importance",
    "patch_ink",
    "precision_at_k",
    "rank_correlation",
    "save_checkpoint",
    "soft_retrieval",
    "spelled_positions",
    "train_classifier",
]

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# ---------------------------------------------------------------------------------------------
# The data
# ---------------------------------------------------------------------------------------------


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1,797 UCI digits shipped with the book: images (1797, 1, 8, 8) float32 in [0, 1]
    (ink 0..16 divided by 16) and labels (1797,) int64, in the file's order."""
    path = importlib.resources.files("helpers") / "assets" / "digits.csv.gz"
    with path.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as f:
        rows = [[int(v) for v in line.split(",")] for line in f if line.strip()]
    data = torch.tensor(rows, dtype=torch.int64)  # (1797, 65)
    images = (data[:, :64].float() / 16).reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    return images, data[:, 64].clone()


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split of the digits: x (n, 1, 8, 8) float32, y (n,) int64, and the rows of
    the file each example came from."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    train_index: torch.Tensor
    test_index: torch.Tensor


def digits_split(test_every: int = 5) -> DigitsSplit:
    """A fixed, stratified split with no randomness: within each digit, in file order, every
    `test_every`-th image (the 5th, 10th, ...) is a test image, the rest are for training."""
    if not isinstance(test_every, int) or isinstance(test_every, bool) or test_every < 2:
        raise ValueError(f"test_every must be an int >= 2, got {test_every!r}")
    images, labels = load_digits()
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        rows = (labels == c).nonzero().flatten()  # this digit's rows, in file order
        is_test[rows[test_every - 1 :: test_every]] = True
    train, test = (~is_test).nonzero().flatten(), is_test.nonzero().flatten()
    return DigitsSplit(images[train], labels[train], images[test], labels[test], train, test)


# ---------------------------------------------------------------------------------------------
# The Vision Transformer (d2l 1.0 names: PatchEmbedding, ViTMLP, ViTBlock, ViT)
# ---------------------------------------------------------------------------------------------


def _pair(x, name: str) -> tuple[int, int]:
    """(x, x) for an int, (a, b) for a pair of ints; a clear error otherwise."""
    pair = (x, x) if not isinstance(x, (tuple, list)) else tuple(x)
    if len(pair) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of them, got {x!r}")
    return pair


class PatchEmbedding(nn.Module):
    """Cut images into patch_size × patch_size patches and map each linearly to num_hiddens
    numbers: (batch, C, H, W) -> (batch, num_patches, num_hiddens), patches in row-major order.

    The linear map is a convolution `conv` whose kernel and stride are the patch size (lazy in
    its input channels, as in d2l). Unlike d2l, an image size that is not a multiple of the patch
    size is an error rather than a silently dropped border.
    """

    def __init__(self, img_size=96, patch_size=16, num_hiddens: int = 512):
        super().__init__()
        self.img_size = _pair(img_size, "img_size")
        self.patch_size = _pair(patch_size, "patch_size")
        (h, w), (ph, pw) = self.img_size, self.patch_size
        if h % ph or w % pw:
            raise ValueError(
                f"img_size {self.img_size} must be a multiple of patch_size {self.patch_size} "
                "in both directions"
            )
        self.grid = (h // ph, w // pw)  # patches per column, per row
        self.num_patches = self.grid[0] * self.grid[1]
        self.conv = nn.LazyConv2d(num_hiddens, kernel_size=self.patch_size, stride=self.patch_size)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (batch, C, H, W) -> (batch, num_patches, num_hiddens)."""
        if not isinstance(X, torch.Tensor) or X.dim() != 4 or tuple(X.shape[-2:]) != self.img_size:
            shape = tuple(X.shape) if isinstance(X, torch.Tensor) else type(X).__name__
            raise ValueError(f"X must be (batch, channels, {self.img_size[0]}, "
                             f"{self.img_size[1]}), got {shape}")
        return self.conv(X).flatten(2).transpose(1, 2)  # (B, d, gh, gw) -> (B, gh*gw, d)


class ViTMLP(nn.Module):
    """The block's feed-forward network: dense1, GELU, dropout, dense2, dropout (d2l 1.0)."""

    def __init__(self, mlp_num_hiddens: int, mlp_num_outputs: int, dropout: float = 0.5):
        super().__init__()
        self.dense1 = nn.LazyLinear(mlp_num_hiddens)
        self.gelu = nn.GELU()
        self.dropout1 = nn.Dropout(dropout)
        self.dense2 = nn.LazyLinear(mlp_num_outputs)
        self.dropout2 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., d) -> (..., mlp_num_outputs)."""
        return self.dropout2(self.dense2(self.dropout1(self.gelu(self.dense1(x)))))


class ViTBlock(nn.Module):
    """A pre-norm encoder block: X + attention(ln1(X)), then + mlp(ln2(X)) (d2l 1.0)."""

    def __init__(
        self,
        num_hiddens: int,
        norm_shape,
        mlp_num_hiddens: int,
        num_heads: int,
        dropout: float,
        use_bias: bool = False,
    ):
        super().__init__()
        self.ln1 = nn.LayerNorm(norm_shape)
        self.attention = MultiHeadAttention(num_hiddens, num_heads, dropout, use_bias)
        self.ln2 = nn.LayerNorm(norm_shape)
        self.mlp = ViTMLP(mlp_num_hiddens, num_hiddens, dropout)

    def forward(self, X: torch.Tensor, valid_lens=None) -> torch.Tensor:
        """X (batch, n, num_hiddens) -> (batch, n, num_hiddens)."""
        H = self.ln1(X)
        X = X + self.attention(H, H, H, valid_lens)  # (B, n, d)
        return X + self.mlp(self.ln2(X))


class ViT(nn.Module):
    """Vision Transformer (d2l 1.0): patch embedding, a learned `[CLS]` token prepended, learned
    positions, num_blks `ViTBlock`s, and a head (LayerNorm, Linear) on the `[CLS]` output.

    `lr` is kept for d2l's signature (its trainer reads it); `in_channels` materialises the lazy
    layers at construction. After a forward call `attention_maps` holds every block's weights.
    """

    def __init__(
        self,
        img_size,
        patch_size,
        num_hiddens: int,
        mlp_num_hiddens: int,
        num_heads: int,
        num_blks: int,
        emb_dropout: float,
        blk_dropout: float,
        lr: float = 0.1,
        use_bias: bool = False,
        num_classes: int = 10,
        in_channels: int = 1,
    ):
        super().__init__()
        self.lr = lr
        self.patch_embedding = PatchEmbedding(img_size, patch_size, num_hiddens)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, num_hiddens))
        num_steps = self.patch_embedding.num_patches + 1  # the patches and [CLS]
        self.pos_embedding = nn.Parameter(torch.randn(1, num_steps, num_hiddens))
        self.dropout = nn.Dropout(emb_dropout)
        self.blks = nn.Sequential()
        for i in range(num_blks):
            self.blks.add_module(
                f"{i}",
                ViTBlock(num_hiddens, num_hiddens, mlp_num_hiddens, num_heads, blk_dropout,
                         use_bias),
            )
        self.head = nn.Sequential(nn.LayerNorm(num_hiddens), nn.Linear(num_hiddens, num_classes))
        h, w = self.patch_embedding.img_size
        with torch.no_grad():  # materialise the lazy layers
            self(torch.zeros(1, in_channels, h, w))

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        """Images (batch, C, H, W) -> every token's output (batch, 1 + num_patches, num_hiddens),
        `[CLS]` first."""
        X = self.patch_embedding(X)  # (B, P, d)
        cls = self.cls_token.expand(X.shape[0], -1, -1)  # (B, 1, d)
        X = self.dropout(torch.cat((cls, X), dim=1) + self.pos_embedding)  # (B, 1+P, d)
        for blk in self.blks:
            X = blk(X)
        return X

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Images (batch, C, H, W) -> class logits (batch, num_classes)."""
        return self.head(self.encode(X)[:, 0])

    @property
    def attention_maps(self) -> list[torch.Tensor]:
        """Per block, the last call's weights (batch, heads, 1 + P, 1 + P), `[CLS]` at 0."""
        return [blk.attention.head_weights for blk in self.blks]


class SmallMLP(nn.Module):
    """A baseline: flatten the image, one hidden ReLU layer, 10 logits."""

    def __init__(self, num_hiddens: int = 128, num_pixels: int = 64, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(num_pixels, num_hiddens), nn.ReLU(),
                                 nn.Linear(num_hiddens, num_classes))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (batch, 1, 8, 8) -> logits (batch, num_classes)."""
        return self.net(X)


class SmallCNN(nn.Module):
    """A baseline: two 3×3 convolutions (padding 1) with ReLU, 2×2 max-pooling, a linear layer."""

    def __init__(self, channels: int = 16, num_classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2 * channels * 16, num_classes),
        )

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """X (batch, 1, 8, 8) -> logits (batch, num_classes)."""
        return self.net(X)


# ---------------------------------------------------------------------------------------------
# Training and checkpoints
# ---------------------------------------------------------------------------------------------


def train_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
    loss_fn: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    max_steps: int | None = None,
) -> dict:
    """AdamW with a cosine learning rate on shuffled mini-batches (a seeded generator).

    loss_fn(model, x_batch, y_batch) defaults to the cross-entropy of model(x_batch). max_steps
    stops early on the same schedule (to replay the start of a run). Returns
    {"losses": loss per step, "seconds": wall time}; the model is left in eval mode.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be an int >= 1, got {epochs!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if loss_fn is None:
        def loss_fn(m, xb, yb):
            return F.cross_entropy(m(xb), yb)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
    )
    losses = []
    model.train()
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            if max_steps is not None and len(losses) >= max_steps:
                break
            idx = order[i : i + batch_size]
            loss = loss_fn(model, x[idx], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
    seconds = time.perf_counter() - start
    model.eval()
    return {"losses": losses, "seconds": seconds}


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the images x (n, C, H, W) whose argmax logit is the label y (n,)."""
    model.eval()
    return (model(x).argmax(-1) == y).float().mean().item()


def save_checkpoint(path, model: nn.Module, config: dict, meta: dict | None = None) -> None:
    """Save float32 weights with the constructor's `config` and any `meta` (curves, timings)."""
    state = {k: v.detach().float().clone() if v.is_floating_point() else v.clone()
             for k, v in model.state_dict().items()}
    torch.save({"config": config, "state_dict": state, "meta": meta or {}}, path)


def checkpoint_bytes(name: str) -> int:
    """The size in bytes of the checkpoint file helpers/assets/`name`."""
    path = importlib.resources.files("helpers") / "assets" / name
    with path.open("rb") as f:
        return len(f.read())


def load_checkpoint(name: str) -> tuple[nn.Module, dict]:
    """The model saved as helpers/assets/`name` (a .pt file) and its metadata, in eval mode."""
    path = importlib.resources.files("helpers") / "assets" / name
    with path.open("rb") as f:
        ckpt = torch.load(f, map_location="cpu", weights_only=True)
    config = dict(ckpt["config"])
    kind = config.pop("kind")
    makers = {"ViT": ViT, "SmallMLP": SmallMLP, "SmallCNN": SmallCNN,
              "CaptionModel": CaptionModel, "PrefixCaptionModel": PrefixCaptionModel}
    if kind not in makers:
        raise ValueError(f"checkpoint {name!r} holds an unknown model kind {kind!r}")
    model = makers[kind](**config)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt["meta"]


# ---------------------------------------------------------------------------------------------
# Importance maps: [CLS] attention, rollout, occlusion
# ---------------------------------------------------------------------------------------------


def _check_maps(attention_maps: Sequence[torch.Tensor]) -> None:
    """Raise a clear error unless attention_maps is a non-empty list of (B, h, n, n) tensors."""
    if isinstance(attention_maps, torch.Tensor) or not attention_maps:
        raise TypeError("attention_maps must be a non-empty sequence of (batch, heads, n, n) "
                        "tensors, one per layer")
    shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in attention_maps]
    first = shapes[0]
    if any(s is None or len(s) != 4 or s[-1] != s[-2] for s in shapes) or \
            any(s[0] != first[0] or s[2:] != first[2:] for s in shapes):
        raise ValueError(f"every layer's map must be (batch, heads, n, n) with one batch and n, "
                         f"got shapes {shapes}")


def cls_attention(attention_maps: Sequence[torch.Tensor], layer: int = -1) -> torch.Tensor:
    """How much the `[CLS]` query of `layer` attends to each patch, averaged over heads:
    per-layer maps (batch, heads, 1 + P, 1 + P) -> (batch, P)."""
    _check_maps(attention_maps)
    return attention_maps[layer][:, :, 0, 1:].mean(dim=1)  # (B, h, P) -> (B, P)


def attention_rollout(
    attention_maps: Sequence[torch.Tensor], residual_weight: float = 0.5
) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): Â_L ⋯ Â_1 with
    Â_l = (1 - r) · mean over heads of A_l + r · I, each row renormalised to sum to 1.

    attention_maps: per layer (batch, heads, n, n), first layer first -> (batch, n, n). Row i says
    how much of token i's final state can be traced back to each input token through attention and
    the residual connections (weighted r).
    """
    _check_maps(attention_maps)
    if not isinstance(residual_weight, (int, float)) or not 0 <= residual_weight <= 1:
        raise ValueError(f"residual_weight must be a number in [0, 1], got {residual_weight!r}")
    n = attention_maps[0].shape[-1]
    eye = torch.eye(n, dtype=attention_maps[0].dtype, device=attention_maps[0].device)
    rollout = None
    for A in attention_maps:
        A_hat = (1 - residual_weight) * A.mean(dim=1) + residual_weight * eye  # (B, n, n)
        A_hat = A_hat / A_hat.sum(dim=-1, keepdim=True)
        rollout = A_hat if rollout is None else A_hat @ rollout  # (B, n, n) @ (B, n, n)
    return rollout


def patch_ink(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Total ink in each patch: images (batch, C, H, W) -> (batch, P), patches row-major."""
    if images.dim() != 4 or images.shape[-1] % patch_size or images.shape[-2] % patch_size:
        raise ValueError(f"images must be (batch, C, H, W) with H and W multiples of patch_size "
                         f"{patch_size}, got {tuple(images.shape)}")
    summed = F.avg_pool2d(images, patch_size) * patch_size**2  # (B, C, gh, gw)
    return summed.sum(1).flatten(1)  # (B, P)


@torch.no_grad()
def occlusion_importance(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    patch_size: int,
    fill: float = 0.0,
    batch_size: int = 4096,
) -> torch.Tensor:
    """For each patch: p(true class | image) - p(true class | image with that patch set to `fill`).

    images (batch, C, H, W), labels (batch,) -> (batch, P), patches in row-major order. Positive
    means the model relies on the patch (blanking it lowers its belief in the right answer).
    """
    if images.dim() != 4 or labels.shape != images.shape[:1]:
        raise ValueError(f"images must be (batch, C, H, W) and labels (batch,), got "
                         f"{tuple(images.shape)} and {tuple(labels.shape)}")
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {(H, W)} must be a multiple of patch_size {patch_size}")
    gh, gw = H // patch_size, W // patch_size
    P = gh * gw
    model.eval()
    masks = torch.ones(P, 1, H, W, dtype=images.dtype)  # mask p blanks patch p
    for p in range(P):
        r, c = divmod(p, gw)  # row-major: patch p sits in patch row r, patch column c
        r0, c0 = r * patch_size, c * patch_size
        masks[p, :, r0 : r0 + patch_size, c0 : c0 + patch_size] = 0
    occluded = images[:, None] * masks + fill * (1 - masks)  # (B, P, C, H, W)
    flat = occluded.reshape(B * P, C, H, W)
    probs = torch.cat([torch.softmax(model(flat[i : i + batch_size]), -1)
                       for i in range(0, len(flat), batch_size)])  # (B*P, classes)
    p_occ = probs.reshape(B, P, -1)[torch.arange(B), :, labels]  # (B, P)
    p_full = torch.softmax(model(images), -1)[torch.arange(B), labels]  # (B,)
    return p_full[:, None] - p_occ


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 0..n-1 along the last axis, ties given their average rank (float64)."""
    x = x.double()
    order = x.argsort(dim=-1)
    sorted_x = x.gather(-1, order)
    n = x.shape[-1]
    pos = torch.arange(n, dtype=torch.float64).expand_as(x)
    # average position of each run of equal values: (first + last) / 2 of its run
    new_run = torch.ones_like(sorted_x, dtype=torch.bool)
    new_run[..., 1:] = sorted_x[..., 1:] != sorted_x[..., :-1]
    run_id = new_run.long().cumsum(-1) - 1  # (..., n)
    first = torch.zeros_like(pos).scatter_reduce(-1, run_id, pos, "amin", include_self=False)
    last = torch.zeros_like(pos).scatter_reduce(-1, run_id, pos, "amax", include_self=False)
    avg = ((first + last) / 2).gather(-1, run_id)  # (..., n) in sorted order
    return torch.empty_like(avg).scatter(-1, order, avg)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of a and b along the last axis (ties share their average rank):
    (..., n), (..., n) -> (...,). A constant row has no ranking: its correlation is NaN."""
    if a.shape != b.shape or a.dim() < 1 or a.shape[-1] < 2:
        raise ValueError(f"a and b must share a shape (..., n) with n >= 2, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    denom = (ra.square().sum(-1) * rb.square().sum(-1)).sqrt()
    return (ra * rb).sum(-1) / denom


# ---------------------------------------------------------------------------------------------
# Image and text: names of digits, cross-attention and one shared sequence
# ---------------------------------------------------------------------------------------------

PAD, BOS, EOS = 0, 1, 2
LETTERS = "".join(sorted(set("".join(DIGIT_NAMES))))
NAME_VOCAB = ("<pad>", "<bos>", "<eos>", *LETTERS)
NAME_LEN = max(len(n) for n in DIGIT_NAMES) + 1  # the longest name and <eos>


def encode_names(labels: torch.Tensor) -> torch.Tensor:
    """Digits (n,) -> their English names as token ids (n, NAME_LEN): letters, <eos>, <pad>s."""
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.is_floating_point() \
            or (len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) <= 9):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a (n,) integer tensor of digits 0-9, got {shape}")
    out = torch.full((len(labels), NAME_LEN), PAD, dtype=torch.long)
    for i, d in enumerate(labels.tolist()):
        ids = [NAME_VOCAB.index(ch) for ch in DIGIT_NAMES[d]] + [EOS]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def decode_names(tokens: torch.Tensor) -> list[str]:
    """Token ids (n, T) -> strings, each cut at its first <eos> (special tokens dropped)."""
    names = []
    for row in tokens.tolist():
        chars = []
        for t in row:
            if t == EOS:
                break
            if t >= 3:
                chars.append(NAME_VOCAB[t])
        names.append("".join(chars))
    return names


def _names_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B, T, V) against targets (B, T), padding ignored."""
    return F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD)


class CaptionModel(nn.Module):
    """Two components joined by cross-attention: a ViT encoder reads the image (its patch outputs,
    without `[CLS]`, are the keys and values) and the book's `TransformerDecoder` spells the
    digit's name letter by letter, each letter's query attending to the patches."""

    def __init__(self, patch_size: int = 2, num_hiddens: int = 32, num_heads: int = 2,
                 enc_blks: int = 2, dec_blks: int = 1):
        super().__init__()
        self.encoder = ViT(8, patch_size, num_hiddens, 2 * num_hiddens, num_heads, enc_blks,
                           0.0, 0.0, num_classes=1)
        self.decoder = TransformerDecoder(len(NAME_VOCAB), num_hiddens, 2 * num_hiddens,
                                          num_heads, dec_blks, 0.0, norm_first=True,
                                          max_len=NAME_LEN + 1)
        self.enc_norm = nn.LayerNorm(num_hiddens)
        with torch.no_grad():  # materialise the decoder's lazy layers
            self(torch.zeros(1, 1, 8, 8), torch.full((1, 1), BOS))

    def memory(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 8, 8) -> patch encodings (B, P, d)."""
        return self.enc_norm(self.encoder.encode(images)[:, 1:])

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 8, 8), input tokens (B, T) starting with <bos> -> logits (B, T, V)."""
        state = self.decoder.init_state(self.memory(images))
        return self.decoder(tokens, state)[0]

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of spelling each label's name."""
        target = encode_names(labels)  # (B, T)
        inputs = torch.cat((torch.full_like(target[:, :1], BOS), target[:, :-1]), dim=1)
        return _names_loss(self(images, inputs), target)

    @torch.no_grad()
    def spell(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding: tokens (B, NAME_LEN) and each letter's cross-attention over the
        patches, averaged over heads, (B, NAME_LEN, P), from the last decoder block."""
        self.eval()
        state = self.decoder.init_state(self.memory(images))
        tok = torch.full((len(images), 1), BOS, dtype=torch.long)
        out, maps = [], []
        for _ in range(NAME_LEN):
            logits, state = self.decoder(tok, state)  # one new position, cached keys/values
            tok = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            out.append(tok)
            maps.append(self.decoder.attention_weights[:, -1])  # (B, P)
        return torch.cat(out, 1), torch.stack(maps, 1)


class PrefixCaptionModel(nn.Module):
    """One sequence, self-attention only: the image's patches then the letters. Patches see every
    patch; a letter sees every patch and the letters before it (a prefix mask). Built from the
    book's `ViTBlock`s with a per-query valid length."""

    def __init__(self, patch_size: int = 2, num_hiddens: int = 32, num_heads: int = 2,
                 num_blks: int = 3):
        super().__init__()
        self.patch_embedding = PatchEmbedding(8, patch_size, num_hiddens)
        self.num_patches = self.patch_embedding.num_patches
        self.embedding = nn.Embedding(len(NAME_VOCAB), num_hiddens)
        n = self.num_patches + NAME_LEN
        self.pos_embedding = nn.Parameter(0.02 * torch.randn(1, n, num_hiddens))
        self.blks = nn.Sequential(*(ViTBlock(num_hiddens, num_hiddens, 2 * num_hiddens,
                                             num_heads, 0.0) for _ in range(num_blks)))
        self.ln = nn.LayerNorm(num_hiddens)
        self.out = nn.Linear(num_hiddens, len(NAME_VOCAB))
        with torch.no_grad():
            self(torch.zeros(1, 1, 8, 8), torch.full((1, 1), BOS))

    def valid_lens(self, batch: int, T: int) -> torch.Tensor:
        """(batch, P + T): a patch query sees the P patches, letter t sees P + t + 1 positions."""
        P = self.num_patches
        lens = torch.cat((torch.full((P,), P), torch.arange(P + 1, P + T + 1)))  # (P + T,)
        return lens.repeat(batch, 1)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Images (B, 1, 8, 8), tokens (B, T) starting with <bos> -> letter logits (B, T, V)."""
        P, T = self.num_patches, tokens.shape[1]
        X = torch.cat((self.patch_embedding(images), self.embedding(tokens)), dim=1)  # (B, P+T, d)
        X = X + self.pos_embedding[:, : P + T]
        lens = self.valid_lens(len(images), T)  # (B, P + T)
        for blk in self.blks:
            X = blk(X, lens)
        return self.out(self.ln(X[:, P:]))  # (B, T, V)

    def loss(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Teacher-forced cross-entropy of spelling each label's name."""
        target = encode_names(labels)
        inputs = torch.cat((torch.full_like(target[:, :1], BOS), target[:, :-1]), dim=1)
        return _names_loss(self(images, inputs), target)

    @property
    def attention_maps(self) -> list[torch.Tensor]:
        """Per block, the last call's weights (batch, heads, P + T, P + T)."""
        return [blk.attention.head_weights for blk in self.blks]

    @torch.no_grad()
    def spell(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding (the whole sequence re-run per letter): tokens (B, NAME_LEN) and each
        letter's attention over the patches in the last block, averaged over heads, renormalised
        over the patches, (B, NAME_LEN, P)."""
        self.eval()
        tokens = torch.full((len(images), 1), BOS, dtype=torch.long)
        for _ in range(NAME_LEN):
            nxt = self(images, tokens)[:, -1].argmax(-1, keepdim=True)  # (B, 1)
            tokens = torch.cat((tokens, nxt), dim=1)
        self(images, tokens[:, :-1])  # the maps of the final sequence
        P = self.num_patches
        w = self.attention_maps[-1].mean(1)[:, P:, :P]  # (B, NAME_LEN, P) letters -> patches
        return tokens[:, 1:], w / w.sum(-1, keepdim=True).clamp_min(1e-12)


# ---------------------------------------------------------------------------------------------
# Attention as soft search
# ---------------------------------------------------------------------------------------------


def soft_retrieval(
    queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query attends over a catalogue: weights softmax(cos(q, k) / temperature) over the keys
    and the weighted average of the values. queries (n_q, d), keys (n_k, d), values (n_k, d_v) ->
    (weights (n_q, n_k), results (n_q, d_v)). As the temperature falls to 0 the weights go to the
    best match alone: ranking by weight is ranking by similarity."""
    if queries.dim() != 2 or keys.dim() != 2 or queries.shape[1] != keys.shape[1] or \
            values.dim() != 2 or values.shape[0] != keys.shape[0]:
        raise ValueError(f"need queries (n_q, d), keys (n_k, d), values (n_k, d_v); got "
                         f"{tuple(queries.shape)}, {tuple(keys.shape)}, {tuple(values.shape)}")
    if not isinstance(temperature, (int, float)) or temperature <= 0:
        raise ValueError(f"temperature must be a number > 0, got {temperature!r}")
    q = F.normalize(queries.double(), dim=-1)
    k = F.normalize(keys.double(), dim=-1)
    weights = torch.softmax(q @ k.T / temperature, dim=-1)  # (n_q, d) @ (d, n_k) -> (n_q, n_k)
    return weights.to(queries.dtype), (weights @ values.double()).to(values.dtype)


# ---------------------------------------------------------------------------------------------
# Measurements on the trained models: importance maps of every test digit, spelling, retrieval
# ---------------------------------------------------------------------------------------------


class ImportanceMaps(dict):
    """Per test image, what each method says about each patch (all (N, P) unless stated):
    `cls` (last layer's [CLS] attention, mean of heads), `rollout` ([CLS] row of the rollout),
    `occlusion` (changes smaller than `tie_below` set to 0, so that they tie), `occlusion_raw`,
    `ink`, `heads` (N, layers, heads, P): every layer's and head's [CLS] attention,
    `rollout_layers` (N, layers, P): entry l is the [CLS] row of the rollout of layers 0..l."""



@torch.no_grad()
def importance_maps(model: ViT, images: torch.Tensor, labels: torch.Tensor,
                    residual_weight: float = 0.5, tie_below: float = 1e-3) -> ImportanceMaps:
    """[CLS] attention, rollout, occlusion and ink of every patch of every image (see
    `ImportanceMaps`); images (N, 1, H, W), labels (N,). Occlusion scores smaller than
    `tie_below` in size are set to 0: their order is round-off, not importance."""
    model.eval()
    model(images)
    maps = model.attention_maps  # per layer (N, h, 1 + P, 1 + P)
    heads = torch.stack([m[:, :, 0, 1:] for m in maps], dim=1)  # (N, L, h, P)
    rollout_layers = torch.stack([attention_rollout(maps[: i + 1], residual_weight)[:, 0, 1:]
                                  for i in range(len(maps))], dim=1)  # (N, L, P)
    patch = model.patch_embedding.patch_size[0]
    occlusion = occlusion_importance(model, images, labels, patch)
    return ImportanceMaps(
        cls=heads[:, -1].mean(1),
        rollout=rollout_layers[:, -1],
        rollout_layers=rollout_layers,
        occlusion=torch.where(occlusion.abs() < tie_below, torch.zeros_like(occlusion),
                              occlusion),
        occlusion_raw=occlusion,
        ink=patch_ink(images, patch),
        heads=heads,
    )



def precision_at_k(weights: torch.Tensor, query_labels: torch.Tensor, key_labels: torch.Tensor,
                   k: int, exclude_self: bool = False) -> float:
    """Mean share of each query's k heaviest keys that have the query's label.
    weights (n_q, n_k); with exclude_self, key i is never a match for query i (n_q = n_k)."""
    if weights.dim() != 2 or weights.shape != (len(query_labels), len(key_labels)):
        raise ValueError(f"weights must be (n_q, n_k) = ({len(query_labels)}, "
                         f"{len(key_labels)}), got {tuple(weights.shape)}")
    w = weights.double().clone()
    if exclude_self:
        w.fill_diagonal_(-math.inf)
    top = w.topk(k, dim=-1).indices  # (n_q, k)
    return (key_labels[top] == query_labels[:, None]).double().mean().item()



def spelled_positions(tokens: torch.Tensor) -> torch.Tensor:
    """Which output positions of greedy spelling are real: tokens (N, T) -> bool (N, T), True up to
    and including the first <eos> (later positions continue a name that has already ended)."""
    from helpers.vision import EOS

    ended = (tokens == EOS).int().cumsum(1)  # (N, T): <eos> seen at or before t
    return (ended - (tokens == EOS).int()) == 0



def letter_focus(letter_maps: torch.Tensor, ink: torch.Tensor,
                 valid: torch.Tensor | None = None) -> dict[str, list[float]]:
    """Where each output position looks, over N images: letter_maps (N, T, P) (each row a
    distribution over the patches), ink (N, P), valid (N, T) bool: the positions to count (by
    default all; pass `spelled_positions(tokens)` to leave out positions after <eos>). Per
    position t, lists of T numbers over the images where t is valid: `count`, `max_weight` (mean
    largest weight), `same_patch` (share of images whose heaviest patch is the patch most often
    heaviest at t), `ink_at_top` (mean ink of the heaviest patch)."""
    if letter_maps.dim() != 3 or ink.shape != (letter_maps.shape[0], letter_maps.shape[2]):
        raise ValueError(f"letter_maps must be (N, T, P) and ink (N, P), got "
                         f"{tuple(letter_maps.shape)} and {tuple(ink.shape)}")
    N, T, P = letter_maps.shape
    if valid is None:
        valid = torch.ones(N, T, dtype=torch.bool)
    if valid.shape != (N, T) or valid.dtype != torch.bool:
        raise ValueError(f"valid must be a bool (N, T) = {(N, T)} tensor, got "
                         f"{tuple(valid.shape)} {valid.dtype}")
    out: dict[str, list[float]] = {"count": [], "max_weight": [], "same_patch": [],
                                   "ink_at_top": []}
    for t in range(T):
        rows = valid[:, t]
        n = int(rows.sum())
        m = letter_maps[rows, t]  # (n, P)
        top = m.argmax(-1)  # (n,)
        out["count"].append(float(n))
        if n == 0:
            for key in ("max_weight", "same_patch", "ink_at_top"):
                out[key].append(math.nan)
            continue
        out["max_weight"].append(m.max(-1).values.mean().item())
        out["same_patch"].append(torch.bincount(top, minlength=P).max().item() / n)
        out["ink_at_top"].append(ink[rows].gather(1, top[:, None]).mean().item())
    return out
