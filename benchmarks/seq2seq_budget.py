"""Chapter 07's two models, trained for longer: held-out accuracy against training budget.

    python benchmarks/seq2seq_budget.py                          # the default budgets
    python benchmarks/seq2seq_budget.py --plain 3 6 12 --attention 3 6

Same data, sizes and schedule as the chapter (reversal of 3-10 letters from 10 symbols, 3000
training and 1000 held-out pairs, embeddings 32, hidden 64, bidirectional encoder, Adam with a
cosine decay from 0.005 to 0.0005 over the whole run, batches of 32, seed 0). For every budget
(number of epochs) each model is trained from scratch, with the cosine stretched over that budget,
and evaluated by greedy decoding. The table gives the exact-sequence accuracy on the held-out set,
on its length-10 sequences, the last epoch's training loss and the training time (one CPU thread;
times vary with the machine and with what else it runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from helpers import seq2seq as s2s  # noqa: E402

NUM_SYMBOLS, MIN_LEN, MAX_LEN, EMBED, HIDDEN = 10, 3, 10, 32, 64


def train_and_score(
    model: torch.nn.Module,
    train: s2s.SeqTask,
    test: s2s.SeqTask,
    epochs: int,
    lr: float,
    longest: int,
) -> dict:
    """Train `model` for `epochs` epochs (cosine from `lr` to 0.0005, batches of 32, seed 0), then
    decode the held-out set greedily: parameters, exact-sequence accuracy on all of it and on its
    sources of length `longest`, the last epoch's loss and the training time."""
    start = time.perf_counter()
    losses = s2s.train_seq2seq(
        model, train, num_epochs=epochs, lr=lr, lr_min=0.0005, batch_size=32, seed=0
    )
    seconds = time.perf_counter() - start
    preds, _ = s2s.predict_greedy(model, test.src, test.src_len)
    ok = s2s.sequence_accuracy(preds, test).float()
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "accuracy": ok.mean().item(),
        "accuracy_longest": ok[test.src_len == longest].mean().item(),
        "loss": losses[-1],
        "seconds": seconds,
    }


def run(attention: bool, epochs: int, train: s2s.SeqTask, test: s2s.SeqTask) -> dict:
    """Train one of chapter 7's models from scratch for `epochs` epochs and score it."""
    torch.manual_seed(0)
    vocab_size = s2s.NUM_SPECIAL + NUM_SYMBOLS
    model = s2s.make_seq2seq(vocab_size, EMBED, HIDDEN, attention=attention, bidirectional=True)
    return train_and_score(model, train, test, epochs, lr=0.005, longest=MAX_LEN)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plain", type=int, nargs="*", default=[3, 6, 9, 12, 24, 48])
    ap.add_argument("--attention", type=int, nargs="*", default=[3, 6, 12])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train = s2s.make_seq_task(3000, MIN_LEN, MAX_LEN, NUM_SYMBOLS, task="reverse", seed=1)
    test = s2s.make_seq_task(
        1000, MIN_LEN, MAX_LEN, NUM_SYMBOLS, task="reverse", seed=2, exclude=train
    )
    print("| model | epochs | held-out accuracy | length 10 | last-epoch loss | train s |")
    print("|---|---|---|---|---|---|")
    for name, attention, budgets in (
        ("without attention", False, args.plain),
        ("with attention", True, args.attention),
    ):
        for epochs in budgets:
            r = run(attention, epochs, train, test)
            print(
                f"| {name} | {epochs} | {r['accuracy']:.3f} | {r['accuracy_longest']:.3f} "
                f"| {r['loss']:.4f} | {r['seconds']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
