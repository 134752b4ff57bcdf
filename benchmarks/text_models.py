"""Chapter 12's models on the held-out documents of the shipped text, in bits per character.

    python benchmarks/text_models.py           # n-grams, the shipped GPT and BERT
    python benchmarks/text_models.py --quick   # n-grams only up to order 5, no sliding window

Every row predicts the characters of the same held-out documents (whole documents never seen in
training). The n-grams and GPT predict each character from the ones before it (a probability model
of the text, so their bits are comparable); BERT's row is a different quantity: bits at the 15 %
of positions its masking rule picks, seeing both sides. Parameters: stored counts for an n-gram,
weights for a network. Training seconds: counting time for an n-gram, the training script's run
(tools/train_ch12.py, stored in the checkpoint) for a network. One CPU thread.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import textmodels  # noqa: E402
from helpers.text import NGramModel, load_corpus, ngram_bits  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="orders up to 5, no sliding window")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    corpus = load_corpus()
    vocab = corpus.vocab
    held_docs = [vocab.normalize(d) for d in corpus.heldout_docs]
    held = textmodels.document_ids(corpus.heldout_docs, vocab)
    n_chars = sum(len(d) for d in held_docs)
    print(f"training: {len(corpus.train_docs)} documents, {sum(map(len, corpus.train_docs)):,} "
          f"characters; held out: {len(held_docs)} documents, {n_chars:,} characters; "
          f"vocabulary {len(vocab)}")
    rows = [("uniform over the vocabulary", 0, 0.0, math.log2(len(vocab)), "")]
    max_n = 5 if args.quick else 7
    start = time.perf_counter()
    ngram = NGramModel(corpus.stream("train"), max_n, len(vocab))
    count_s = time.perf_counter() - start
    bits = ngram_bits(ngram, ["¶" + d for d in held_docs])
    for k in range(max_n):
        params = sum(len(c) for c in ngram.counts[: k + 1])
        name = {0: "unigram", 1: "bigram"}.get(k, f"{k + 1}-gram")
        rows.append((f"{name} (Witten-Bell)", params, count_s, bits[k], ""))
    best = min(bits[:5])
    gpt, _ = textmodels.load_text_gpt()
    ck = textmodels.load_checkpoint(textmodels.GPT_ASSET)
    n_par = sum(p.numel() for p in gpt.parameters())
    res = textmodels.causal_eval(gpt, held)
    rows.append((f"GPT, context up to {gpt.max_len} (disjoint windows)", n_par,
                 ck["train_seconds"], res["bits"], f"next-char accuracy {res['accuracy']:.3f}"))
    if not args.quick:
        slide = textmodels.causal_eval(gpt, held, stride=gpt.max_len // 4)
        rows.append((f"GPT, sliding window (>= {gpt.max_len * 3 // 4} chars of context)", n_par,
                     ck["train_seconds"], slide["bits"],
                     f"next-char accuracy {slide['accuracy']:.3f}"))
    bert, _ = textmodels.load_text_bert()
    ckb = textmodels.load_checkpoint(textmodels.BERT_ASSET)
    rb = textmodels.bert_masked_eval(bert, held, vocab)
    rows.append(("BERT, masked positions (both sides; not comparable)",
                 sum(p.numel() for p in bert.parameters()), ckb["train_seconds"], rb["bits"],
                 f"masked-char accuracy {rb['accuracy']:.3f}"))
    print()
    print("| model | parameters | training s | held-out bits/char | note |")
    print("|---|---|---|---|---|")
    for name, params, secs, b, note in rows:
        print(f"| {name} | {params:,} | {secs:.0f} | {b:.3f} | {note} |")
    verdict = "beats" if res["bits"] < best else "does not beat"
    print(f"\nThe shipped GPT ({res['bits']:.3f} bits/char) {verdict} the best n-gram with n <= 5 "
          f"({best:.3f}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
