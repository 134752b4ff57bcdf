"""Convert chapter 12's TinyGPT to grouped-query (2 key/value heads) and multi-query (1) attention
by mean-pooling its key/value heads, uptrain each briefly on the same text, and store them.

    python tools/train_ch14.py                  # UPTRAIN["steps"] steps per model
    python tools/train_ch14.py --steps 5 --out /tmp/ch14   # a quick try elsewhere

Writes helpers/assets/ch14_gqa_kv2.pt and ch14_gqa_kv1.pt (one per model, each under 2 MB):
float16 weights of the uptrained model and, in both, the metadata of the run: the loss of every
step, and held-out bits per character (chapter 12's `causal_eval`) of every model before and after
uptraining, including the unconverted model uptrained for the same steps (a control: how much of
the recovery is just more training). One CPU thread, seeded.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import llm, textmodels  # noqa: E402
from helpers.llm import from_tinygpt  # noqa: E402
from helpers.text import load_corpus  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=llm.UPTRAIN["steps"])
    ap.add_argument("--out", type=Path, default=ROOT / "helpers" / "assets")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    corpus = load_corpus()
    base, vocab = textmodels.load_text_gpt()
    train_ids = vocab.encode(corpus.stream("train"))  # (N,)
    held = textmodels.document_ids(corpus.heldout_docs, vocab)
    u = llm.UPTRAIN
    states, losses, before, after, seconds = {}, {}, {}, {}, {}
    heads = base.blks[0].attention.num_heads
    for kv in (heads, 2, 1):
        model = from_tinygpt(base, kv)
        before[kv] = textmodels.causal_eval(model, held)["bits"]
        start = time.perf_counter()
        losses[kv] = llm.uptrain(model, train_ids, args.steps, u["batch_size"], u["lr"],
                                  u["seed"])
        seconds[kv] = time.perf_counter() - start
        after[kv] = textmodels.causal_eval(model, held)["bits"]
        print(f"{kv} key/value heads: held-out bits/char {before[kv]:.3f} -> {after[kv]:.3f} "
              f"after {args.steps} steps ({seconds[kv]:.0f} s)", flush=True)
        if kv != heads:
            states[kv] = {k: v.half() for k, v in model.state_dict().items()}
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"losses": losses, "bits_before": before, "bits_after": after, "steps": args.steps,
            "uptrain": dict(u), "train_seconds": seconds, "torch_version": str(torch.__version__)}
    for kv, name in llm.GQA_ASSETS.items():  # one file per model, each under 2 MB
        torch.save({"state": states[kv], **meta}, args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
