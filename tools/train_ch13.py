"""Train and save chapter 13's models: the MLP, the CNN and ViTs with patches of 1, 2 and 4 pixels
on the shipped digits, and the two models that spell a digit's name (cross-attention and one
shared sequence). Seeded; one CPU thread; about two minutes on a 2-core CPU.

    .venv/bin/python tools/train_ch13.py            # writes helpers/assets/ch13_*.pt
    .venv/bin/python tools/train_ch13.py --only vit_p2

Each checkpoint holds float32 weights, the constructor's arguments, and what the run measured:
the loss of every step, the training time and the test accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers import set_seed, vision  # noqa: E402

ASSETS = ROOT / "helpers" / "assets"
EPOCHS = 30
VIT = {"img_size": 8, "num_hiddens": 64, "mlp_num_hiddens": 128, "num_heads": 4, "num_blks": 3,
       "emb_dropout": 0.1, "blk_dropout": 0.1}
CAPTION = {"patch_size": 2, "num_hiddens": 64, "num_heads": 4}

# name -> (kind, constructor arguments, whether it spells names rather than classifies)
RUNS: dict[str, tuple[str, dict, bool]] = {
    "mlp": ("SmallMLP", {"num_hiddens": 128}, False),
    "cnn": ("SmallCNN", {"channels": 16}, False),
    "vit_p1": ("ViT", {**VIT, "patch_size": 1}, False),
    "vit_p2": ("ViT", {**VIT, "patch_size": 2}, False),
    "vit_p4": ("ViT", {**VIT, "patch_size": 4}, False),
    "caption_cross": ("CaptionModel", {**CAPTION, "enc_blks": 2, "dec_blks": 2}, True),
    "caption_prefix": ("PrefixCaptionModel", {**CAPTION, "num_blks": 4}, True),
}

MAKERS = {"ViT": vision.ViT, "SmallMLP": vision.SmallMLP, "SmallCNN": vision.SmallCNN,
          "CaptionModel": vision.CaptionModel, "PrefixCaptionModel": vision.PrefixCaptionModel}


def make(name: str, seed: int = 0) -> torch.nn.Module:
    """The untrained model of run `name`, initialised from `seed`."""
    kind, config, _ = RUNS[name]
    set_seed(seed)
    return MAKERS[kind](**config)


def train(name: str, epochs: int = EPOCHS, seed: int = 0, max_steps: int | None = None):
    """Train run `name` on the digits' training split: (model, train_classifier's result)."""
    _, _, spells = RUNS[name]
    data = vision.digits_split()
    model = make(name, seed)
    loss_fn = (lambda m, xb, yb: m.loss(xb, yb)) if spells else None
    result = vision.train_classifier(model, data.x_train, data.y_train, epochs, seed=seed,
                                     loss_fn=loss_fn, max_steps=max_steps)
    return model, result


def test_accuracy(name: str, model: torch.nn.Module) -> float:
    """Held-out accuracy: the right class, or the whole name spelled right."""
    data = vision.digits_split()
    if RUNS[name][2]:
        tokens, _ = model.spell(data.x_test)
        names = vision.decode_names(tokens)
        return sum(n == vision.DIGIT_NAMES[d] for n, d in zip(names, data.y_test.tolist())) / len(
            names)
    return vision.accuracy(model, data.x_test, data.y_test)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", choices=sorted(RUNS), help="train only these runs")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.only or RUNS:
        model, result = train(name)
        acc = test_accuracy(name, model)
        kind, config, _ = RUNS[name]
        params = sum(p.numel() for p in model.parameters())
        meta = {"epochs": EPOCHS, "seed": 0, "losses": result["losses"],
                "train_seconds": result["seconds"], "test_accuracy": acc, "params": params,
                "torch": str(torch.__version__)}
        path = ASSETS / f"ch13_{name}.pt"
        vision.save_checkpoint(path, model, {"kind": kind, **config}, meta)
        print(f"{name:15s} params {params:7d}  {result['seconds']:6.1f} s  "
              f"last loss {result['losses'][-1]:.4f}  test accuracy {acc:.3f}  "
              f"{path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
