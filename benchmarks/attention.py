"""Time and peak extra memory of attention implementations as the sequence grows (CPU, float32).

    python benchmarks/attention.py           # L = 256 ... 16384
    python benchmarks/attention.py --quick   # L <= 4096

One batch, one head, d = 64, self-attention (n_q = n_k = L), forward pass only. Methods: naive
softmax(Q Kᵀ/√d) V (materialises the L × L matrix), `helpers.scale.flash_attention` (block 512),
PyTorch's `scaled_dot_product_attention` forced to its math backend and to its fused (flash) CPU
kernel, `local_attention` (window 128) and `linear_attention` (elu + 1 features).

Peak extra memory is the rise in the process's resident memory while the call runs
(`helpers.profiling.measure_peak_memory`: the allocator's free memory is handed back first, then the
kernel's high-water mark is read; CPU tensors do not go through a caching allocator, so this is
what the call allocates). A method whose (L, L) matrix would pass --max-gb is skipped and the
table says how much it would need.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpers.profiling import measure_peak_memory  # noqa: E402
from helpers.scale import flash_attention, linear_attention, local_attention  # noqa: E402


def naive(q, k, v):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (1, 1, L, L)
    return torch.softmax(s, dim=-1) @ v


def sdpa_math(q, k, v):
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v)


def sdpa_fused(q, k, v):
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return F.scaled_dot_product_attention(q, k, v)


METHODS = {
    "naive": (naive, True),
    "flash_attention": (lambda q, k, v: flash_attention(q, k, v, block_size=512), False),
    "SDPA math": (sdpa_math, True),
    "SDPA fused": (sdpa_fused, False),
    "local (w=128)": (lambda q, k, v: local_attention(q, k, v, 128), False),
    "linear (elu+1)": (linear_attention, False),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="L up to 4096 only")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per cell (the fastest)")
    ap.add_argument("--max-gb", type=float, default=4.0, help="skip (L, L) matrices beyond this")
    args = ap.parse_args(argv)
    lengths = [256, 1024, 4096] if args.quick else [256, 1024, 4096, 16384]
    d = 64
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, batch 1, "
          f"1 head, d = {d}; time = fastest of {args.repeats} runs after one warm-up")
    print("| L | method | time (ms) | × SDPA fused | peak extra MB | max error vs float64 |")
    print("|---|---|---|---|---|---|")
    for L in lengths:
        q, k, v = (torch.randn(1, 1, L, d) for _ in range(3))
        exact = None
        if L <= 4096:
            exact = F.scaled_dot_product_attention(q.double(), k.double(), v.double())
        rows = {}
        for name, (fn, quadratic) in METHODS.items():
            need_gb = 2 * L * L * 4 / 2**30
            if quadratic and need_gb > args.max_gb:
                rows[name] = None
                print(f"| {L} | {name} | skipped: needs ≥ {need_gb:.0f} GB | | | |")
                continue
            with torch.no_grad():
                out = fn(q, k, v)  # warm-up
                times, mems = [], []
                for _ in range(args.repeats):
                    t, m = measure_peak_memory(lambda fn=fn, q=q, k=k, v=v: fn(q, k, v))
                    times.append(t)
                    mems.append(m)
            err = ""
            if exact is not None and name not in ("local (w=128)", "linear (elu+1)"):
                err = f"{float((out.double() - exact).abs().max()):.1e}"
            elif name.startswith(("local", "linear")):
                err = "(a different model)"
            rows[name] = (min(times), max(mems), err)
        fused = rows["SDPA fused"][0]
        for name, row in rows.items():
            if row is None:
                continue
            t, m, err = row
            print(f"| {L} | {name} | {1000 * t:.1f} | {t / fused:.1f} | {m:.0f} | {err} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
