"""The training loop the real-data chapters share: AdamW with a learning-rate schedule (linear
warm-up, then cosine decay), gradient clipping and a seeded, logged run."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

__all__ = ["lr_at", "train_adamw"]


def lr_at(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to peak / 10."""
    if step < warmup:
        return peak * (step + 1) / warmup
    frac = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))



def train_adamw(model: nn.Module, loss_fn: Callable, steps: int, schedule: Callable[[int], float],
                seed: int = 0, log: Callable[[int, float], None] | None = None) -> list[float]:
    """AdamW (weight decay 0.01) at the rate `schedule(step)`, gradients clipped at 1;
    `loss_fn(generator)` draws a batch and returns its loss. Returns the loss per step."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=schedule(0), weight_decay=0.01)
    losses = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = schedule(step)
        loss = loss_fn(gen)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if log is not None:
            log(step, losses[-1])
    model.eval()
    return losses
