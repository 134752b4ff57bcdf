"""Chapter 9's embedding ablation: is it the token/position ratio or the input scale?

    python benchmarks/ch09_embedding_scale.py                 # the full table (several minutes)
    python benchmarks/ch09_embedding_scale.py --epochs 2 --seeds 0 --lrs 0.01   # a quick look

Chapter 9 trains its encoder-decoder Transformer (d = 32, 4 heads, 2 post-norm blocks, embedding
x sqrt(d) + sinusoidal positions) on the reversal task twice: as built (PyTorch's default
`nn.Embedding` init, entries of std 1) and with both embedding tables re-initialised with std
1/sqrt(d). That one change moves two things at once:

* the ratio of a token vector's norm to a position vector's (7.8 as built, 1.4 with small
  embeddings: the ratio falls by exactly sqrt(d));
* the scale of the block's input (std about 5.7 per entry as built, about 1.2 small), which in a
  post-norm block with default `nn.Linear` init sets how peaked the untrained attention is.

Five variants separate them: the two above; as built with the positions x sqrt(d) (the small
variant's ratio at the large scale); small embeddings with the positions / sqrt(d) (the as-built
ratio at the small scale); and no sqrt(d) factor with the default init (std 1 entries plus
positions). For each: the untrained model's attention entropy (mean over every attention layer,
head, example and query of -sum w log w, in nats, beside the mean ln n of uniform weights over the
same valid keys), the untrained logit spread (max - min score over a query's valid keys, mean),
and held-out exact-sequence accuracy after the chapter's budget (Adam, batches of 32, cosine
decay to 0.0005, 2000 training pairs) for a few peak learning rates and seeds. Part 2 repeats the
question on chapter 8's attention-only `PositionQueryReverser` with both embedding inits.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from torch import nn  # noqa: E402

from helpers import positions  # noqa: E402
from helpers import seq2seq as s2s  # noqa: E402
from helpers import transformer as tfm  # noqa: E402

NUM_SYMBOLS, MIN_LEN, MAX_LEN = 10, 3, 10
D = 32
VARIANTS = {
    "as built": dict(small=False, pos=1.0, sqrt_d=True),
    "small embeddings": dict(small=True, pos=1.0, sqrt_d=True),
    "as built, positions x sqrt(d)": dict(small=False, pos=math.sqrt(D), sqrt_d=True),
    "small, positions / sqrt(d)": dict(small=True, pos=1 / math.sqrt(D), sqrt_d=True),
    "no sqrt(d), default init": dict(small=False, pos=1.0, sqrt_d=False),
}


def build(variant: str, seed: int) -> nn.Module:
    """The chapter's Transformer with one variant's embedding, positions and sqrt(d) factor."""
    cfg = VARIANTS[variant]
    torch.manual_seed(seed)
    model = tfm.make_transformer_seq2seq(s2s.NUM_SPECIAL + NUM_SYMBOLS, num_hiddens=D)
    for part in (model.encoder, model.decoder):
        with torch.no_grad():
            if cfg["small"]:
                nn.init.normal_(part.embedding.weight, std=D**-0.5)
            part.pos_encoding.P.mul_(cfg["pos"])
        if not cfg["sqrt_d"]:  # undo the forward pass's x sqrt(d) before the positions are added
            part.pos_encoding.register_forward_pre_hook(
                lambda m, args: (args[0] / math.sqrt(D), *args[1:])
            )
    return model


def initial_attention(model: nn.Module, data: s2s.SeqTask) -> dict:
    """Untrained model, teacher forcing on `data`: attention entropy, ln n and logit spread."""
    records = []

    def hook(module, args, output):
        q, k, _, valid = (*args, None)[:4]
        scores = module.scores(q, k)  # (B*h, n_q, n_k)
        w = module.attention_weights
        n_k = k.shape[1]
        if valid is None:
            valid_mask = torch.ones_like(scores, dtype=torch.bool)
        else:
            vl = valid if valid.dim() == 2 else valid[:, None].expand(-1, q.shape[1])
            vl = vl.repeat_interleave(q.shape[0] // vl.shape[0], dim=0)  # (B*h, n_q)
            valid_mask = torch.arange(n_k)[None, None, :] < vl[..., None]
        ent = -(w * torch.log(w.clamp_min(1e-30))).sum(-1)  # (B*h, n_q)
        ln_n = torch.log(valid_mask.sum(-1).float())
        spread = (scores.masked_fill(~valid_mask, -math.inf).amax(-1)
                  - scores.masked_fill(~valid_mask, math.inf).amin(-1))
        records.append((ent.flatten(), ln_n.flatten(), spread.flatten()))

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, tfm.MultiHeadAttention)
               for m in [m.attention]]
    model.eval()
    with torch.no_grad():
        dec_in = torch.cat([torch.full((len(data), 1), s2s.BOS), data.tgt[:, :-1]], dim=1)
        model(data.src, data.src_len, dec_in)
    for h in handles:
        h.remove()
    ent, ln_n, spread = (torch.cat(x) for x in zip(*records, strict=True))
    return dict(entropy=ent.mean().item(), ln_n=ln_n.mean().item(), spread=spread.mean().item())


def accuracy(variant: str, seed: int, lr: float, epochs: int, train, test) -> float:
    model = build(variant, seed)
    s2s.train_seq2seq(model, train, num_epochs=epochs, lr=lr, batch_size=32, lr_min=0.0005,
                      seed=seed)
    preds, _ = s2s.predict_greedy(model, test.src, test.src_len)
    return s2s.sequence_accuracy(preds, test).float().mean().item()


def chapter8(seeds: list[int]) -> None:
    """Chapter 8's attention-only reverser (8 letters) with both embedding inits."""
    length = 8
    train = s2s.make_seq_task(2000, length, length, NUM_SYMBOLS, task="reverse", seed=1)
    test = s2s.make_seq_task(500, length, length, NUM_SYMBOLS, task="reverse", seed=2,
                             exclude=train)
    vocab = s2s.NUM_SPECIAL + NUM_SYMBOLS
    train_y, test_y = train.tgt[:, :length], test.tgt[:, :length]
    print("\nchapter 8's PositionQueryReverser (sinusoidal positions, 500 steps, lr 0.01)")
    print("| embedding init | ratio token/position | held-out accuracy per seed |")
    print("|---|---|---|")
    for init in ("default (std 1)", "std 1/sqrt(d) (the chapter's)"):
        accs = []
        for seed in seeds:
            torch.manual_seed(seed)
            model = positions.PositionQueryReverser(vocab, num_hiddens=D, positions="sinusoidal")
            if init.startswith("default"):
                with torch.no_grad():
                    nn.init.normal_(model.embedding.weight, std=1.0)
            ratio = (model.embedding.weight.norm(dim=-1).mean() * math.sqrt(D)
                     / math.sqrt(D / 2)).item()
            positions.fit(model, train.src, train_y, steps=500, lr=0.01, batch_size=128, seed=seed)
            with torch.no_grad():
                accs.append((model(test.src).argmax(-1) == test_y).all(1).float().mean().item())
        print(f"| {init} | {ratio:.1f} | " + ", ".join(f"{a:.3f}" for a in accs) + " |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lrs", type=float, nargs="*", default=[0.001, 0.003, 0.01, 0.03])
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--skip-ch08", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train = s2s.make_seq_task(2000, MIN_LEN, MAX_LEN, NUM_SYMBOLS, task="reverse", seed=1)
    test = s2s.make_seq_task(1000, MIN_LEN, MAX_LEN, NUM_SYMBOLS, task="reverse", seed=2,
                             exclude=train)
    print(f"torch {torch.__version__}, 1 thread; {args.epochs} epochs, peak learning rates "
          f"{args.lrs}, seeds {args.seeds}")
    print("accuracy: held-out exact-sequence accuracy, one entry per seed; best: the peak rate "
          "with the highest mean")
    print("| variant | input std | ratio | entropy (ln n) | logit spread | "
          + " | ".join(f"lr {lr:g}" for lr in args.lrs) + " | best mean |")
    print("|---" * (6 + len(args.lrs)) + "|")
    start = time.perf_counter()
    for variant in VARIANTS:
        model = build(variant, 0)
        with torch.no_grad():
            enc = model.encoder
            tok = enc.embedding.weight * (math.sqrt(D) if VARIANTS[variant]["sqrt_d"] else 1.0)
            pos = enc.pos_encoding.P[0, :MAX_LEN]
            ratio = (tok.norm(dim=-1).mean() / pos.norm(dim=-1).mean()).item()
            x = tok[train.src[:256]] + pos[: train.src.shape[1]]  # (256, T, d)
            input_std = x.std().item()
        att = initial_attention(model, s2s.SeqTask(*(t[:256] for t in (train.src, train.src_len,
                                                                train.tgt, train.tgt_len))))
        cells, means = [], []
        for lr in args.lrs:
            accs = [accuracy(variant, s, lr, args.epochs, train, test) for s in args.seeds]
            means.append(sum(accs) / len(accs))
            cells.append(" ".join(f"{a:.2f}" for a in accs))
        best = max(range(len(means)), key=means.__getitem__)
        print(f"| {variant} | {input_std:.1f} | {ratio:.1f} | {att['entropy']:.2f} "
              f"({att['ln_n']:.2f}) | {att['spread']:.1f} | " + " | ".join(cells)
              + f" | {means[best]:.2f} (lr {args.lrs[best]:g}) |", flush=True)
    print(f"({time.perf_counter() - start:.0f} s)")
    if not args.skip_ch08:
        chapter8(args.seeds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
