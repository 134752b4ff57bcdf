"""Train chapter 12's two models on the shipped text and store their checkpoints (seeded).

    python tools/train_ch12.py                 # both models, TRAIN["steps"] steps each
    python tools/train_ch12.py --model gpt     # one of them
    python tools/train_ch12.py --steps 50 --out /tmp/ch12   # a quick try elsewhere

Writes helpers/assets/ch12_gpt.pt and ch12_bert.pt: float16 weights, the config, the vocabulary,
the loss of every step, the training time and the held-out results. Runs on one CPU thread, so
the loss curve is the same on every run of the same PyTorch build; the test
tests/test_ch12.py repeats the first steps and compares them with the stored curve.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import textmodels  # noqa: E402
from helpers.text import load_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("gpt", "bert", "both"), default="both")
    ap.add_argument("--steps", type=int, default=textmodels.TRAIN["steps"])
    ap.add_argument("--out", type=Path, default=ROOT / "helpers" / "assets")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    corpus = load_corpus()
    vocab = corpus.vocab
    train_ids = vocab.encode(corpus.stream("train"))  # (N,)
    held = textmodels.document_ids(corpus.heldout_docs, vocab)
    t = textmodels.TRAIN
    args.out.mkdir(parents=True, exist_ok=True)

    def log(step, loss):
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {loss:.4f}  ({time.perf_counter() - start:.0f} s)",
                  flush=True)

    for kind in ("gpt", "bert") if args.model == "both" else (args.model,):
        start = time.perf_counter()
        if kind == "gpt":
            model = textmodels.build_gpt(len(vocab), seed=t["seed"])
            losses = textmodels.train_gpt(model, train_ids, args.steps, t["batch_size"],
                                          t["gpt_lr"], t["warmup"], t["seed"], log=log)
            seconds = time.perf_counter() - start
            result = textmodels.causal_eval(model, held)
            config, name = textmodels.GPT_CONFIG, textmodels.GPT_ASSET
        else:
            model = textmodels.build_bert(len(vocab), seed=t["seed"])
            losses = textmodels.train_bert(model, train_ids, vocab, args.steps, t["batch_size"],
                                           t["bert_lr"], t["warmup"], t["seed"], log=log)
            seconds = time.perf_counter() - start
            result = textmodels.bert_masked_eval(model, held, vocab)
            config, name = textmodels.BERT_CONFIG, textmodels.BERT_ASSET
        print(f"{kind}: {args.steps} steps in {seconds:.0f} s; held-out {result}", flush=True)
        textmodels.save_checkpoint(args.out / name, model, kind, config, vocab, losses,
                             steps=args.steps, train=dict(t), train_seconds=seconds,
                             heldout=result, torch_version=str(torch.__version__))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
