"""Chapter 9's comparison at two lengths: accuracy against epochs and against training time.

    python benchmarks/transformer_vs_rnn.py                  # lengths 3-10 and 3-20
    python benchmarks/transformer_vs_rnn.py --max-len 20 --epochs 3 9    # some budgets only

Chapter 9 trains chapter 7's GRU + Bahdanau-attention model and an encoder-decoder Transformer
(`helpers.transformer.make_transformer_seq2seq`, d = 32, 4 heads, 2 blocks, post-norm, embeddings
re-initialised with std 1/sqrt(d)) on the reversal task of 3-10 letters, for 3 epochs each. This
script repeats that comparison for several budgets and for longer sequences, where the GRU's
step-by-step loop costs more per epoch. Same recipe as the chapter: 2000 training pairs, 1000
held-out, 10 symbols, Adam with a cosine decay to 0.0005 (peak 0.005 for the GRU model, 0.01 for
the Transformer), batches of 32, seed 0, one CPU thread. Each row is a model trained from scratch;
accuracy is exact-sequence accuracy under greedy decoding, on all held-out pairs and on those of
the longest length. Times vary with the machine and with what else it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import torch  # noqa: E402
from seq2seq_budget import train_and_score  # noqa: E402
from torch import nn  # noqa: E402

from helpers import seq2seq as s2s  # noqa: E402
from helpers import transformer as tfm  # noqa: E402

NUM_SYMBOLS, MIN_LEN = 10, 3
PEAK_LR = {"GRU + attention": 0.005, "Transformer": 0.01}


def build(name: str, vocab_size: int) -> nn.Module:
    torch.manual_seed(0)
    if name == "GRU + attention":
        return s2s.make_seq2seq(vocab_size, 32, 64, attention=True, bidirectional=True)
    model = tfm.make_transformer_seq2seq(vocab_size)
    with torch.no_grad():  # as in chapter 9: token and position parts of comparable size
        for emb in (model.encoder.embedding, model.decoder.embedding):
            nn.init.normal_(emb.weight, std=emb.embedding_dim**-0.5)
    return model


def run(name: str, epochs: int, train: s2s.SeqTask, test: s2s.SeqTask, max_len: int) -> dict:
    model = build(name, s2s.NUM_SPECIAL + NUM_SYMBOLS)
    return train_and_score(model, train, test, epochs, lr=PEAK_LR[name], longest=max_len)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-len", type=int, nargs="*", default=[10, 20])
    ap.add_argument("--epochs", type=int, nargs="*", default=[3, 6, 9])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; 2000 training pairs, 1000 held-out")
    print("| lengths | model | params | epochs | train s | held-out accuracy | at the longest "
          "| last-epoch loss |")
    print("|---|---|---|---|---|---|---|---|")
    for max_len in args.max_len:
        train = s2s.make_seq_task(2000, MIN_LEN, max_len, NUM_SYMBOLS, task="reverse", seed=1)
        test = s2s.make_seq_task(
            1000, MIN_LEN, max_len, NUM_SYMBOLS, task="reverse", seed=2, exclude=train
        )
        for name in PEAK_LR:
            for epochs in args.epochs:
                r = run(name, epochs, train, test, max_len)
                print(
                    f"| {MIN_LEN}-{max_len} | {name} | {r['params']:,} | {epochs} "
                    f"| {r['seconds']:.1f} | {r['accuracy']:.3f} | {r['accuracy_longest']:.2f} "
                    f"| {r['loss']:.4f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
