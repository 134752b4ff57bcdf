"""Chapter 13's comparison over several seeds: test accuracy (mean and spread) and training time of
the MLP, the CNN and the ViT with patches of 2 and 4 pixels (and 1 with --with-p1, about two
minutes a seed), each trained as tools/train_ch13.py trains it, on one CPU thread.

    .venv/bin/python benchmarks/ch13_vit_vs_cnn.py            # seeds 0-4
    .venv/bin/python benchmarks/ch13_vit_vs_cnn.py --seeds 3 --with-p1

Also scores, with no training, the vote of the nearest training digits in raw pixels (chapter 13.7's
soft retrieval at temperature 0.01): a baseline that needs no model at all.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import train_ch13  # noqa: E402

from helpers import vision  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--with-p1", action="store_true", help="also the ViT with 1-pixel patches")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    data = vision.digits_split()
    onehot = torch.nn.functional.one_hot(data.y_train, 10).float()
    _, votes = vision.soft_retrieval(data.x_test.flatten(1), data.x_train.flatten(1), onehot, 0.01)
    pixel_vote = (votes.argmax(-1) == data.y_test).float().mean().item()
    names = ["mlp", "cnn", "vit_p4", "vit_p2"] + (["vit_p1"] if args.with_p1 else [])
    print(f"{args.seeds} seeds; test set of {len(data.y_test)} digits; one thread")
    print("| model | params | test accuracy, mean ± sd | min – max | training s, mean |")
    print("|---|---|---|---|---|")
    for name in names:
        accs, secs = [], []
        for seed in range(args.seeds):
            model, result = train_ch13.train(name, seed=seed)
            accs.append(vision.accuracy(model, data.x_test, data.y_test))
            secs.append(result["seconds"])
        params = sum(p.numel() for p in model.parameters())
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {name} | {params} | {statistics.mean(accs):.3f} ± {sd:.3f} | "
              f"{min(accs):.3f} – {max(accs):.3f} | {statistics.mean(secs):.1f} |", flush=True)
    print(f"| pixel vote, temperature 0.01 (no training) | 0 | {pixel_vote:.3f} | – | 0 |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
