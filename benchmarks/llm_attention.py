"""Chapter 14's measurements at a larger size: KV-cache bytes and decode speed of multi-head,
grouped-query and multi-query attention at equal width, and FlexAttention eager vs compiled vs
PyTorch's fused attention.

    python benchmarks/llm_attention.py            # both tables
    python benchmarks/llm_attention.py --quick    # smaller sizes, no torch.compile

Decode: a GQAGPT (llm.py) of width 512, 8 query heads, 4 layers, untrained (speed does not depend
on the weights), float32, a prompt of `--context` tokens, then 32 tokens one at a time with the
growing KV cache; the best of 3 runs. FlexAttention: causal + sliding window (256) + 4 sinks on
(batch 1, 8 heads, n, 64), forward pass; eager materialises the scores, compiled fuses (its first
call, the compile, is reported apart). Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import llm  # noqa: E402
from helpers.transformer import kv_cache_nbytes  # noqa: E402


def best_seconds(fn, repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def decode_table(width: int, heads: int, layers: int, context: int, batches: list[int]) -> None:
    print(f"Decode: width {width}, {heads} query heads, {layers} layers, {context} cached tokens, "
          "float32")
    print(f"{'K/V heads':>9} | {'held MiB/seq':>13} | " + " | ".join(
        f"{f'batch {b} tok/s':>15}" for b in batches))
    for kv in (heads, heads // 4, 1):
        torch.manual_seed(0)
        model = llm.GQAGPT(256, width, heads, kv, layers, max_len=context + 64).eval()
        rates = []
        for b in batches:
            prompt = torch.randint(0, 256, (b, context))
            cache = model.new_cache()
            model(prompt, cache)
            base = [dict(c) for c in cache]

            def run(base=base, b=b, model=model):
                c = [dict(d) for d in base]
                nxt = torch.zeros(b, 1, dtype=torch.long)
                for _ in range(32):
                    nxt = model(nxt, c)[:, -1].argmax(-1, keepdim=True)

            rates.append(b * 32 / best_seconds(run))
            if b == batches[0]:
                mib = kv_cache_nbytes(cache) / b / 2**20  # held; GQAGPT allocates max_len
        name = {heads: "MHA", 1: "MQA"}.get(kv, "GQA")
        print(f"{kv:>5} {name} | {mib:>13.1f} | " + " | ".join(f"{r:>15.0f}" for r in rates))


def flex_table(lengths: list[int], compile_too: bool) -> None:
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    window, sinks, h, p = 256, 4, 8, 64
    print(f"\nFlexAttention, causal + window {window} + {sinks} sinks, (1, {h}, n, {p}), "
          "forward ms")
    compiled = None
    if compile_too and tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 6):
        print(f"  compiling FlexAttention for the CPU needs PyTorch >= 2.6 (this is "
              f"{torch.__version__}): timing the eager version only")
        compile_too = False
    if compile_too:
        try:
            compiled = torch.compile(flex_attention, dynamic=False)
        except Exception as err:  # no compiler on this machine
            print(f"  torch.compile unavailable: {type(err).__name__}: {err}")
    print(f"{'n':>6} | {'SDPA dense mask':>15} | {'flex eager':>10} | {'flex compiled':>13} | "
          f"{'compile s':>9}")
    for n in lengths:
        compiled = flex_row(n, h, p, window, sinks, flex_attention, create_block_mask, compiled)


def flex_row(n, h, p, window, sinks, flex_attention, create_block_mask, compiled):
    """One row of the FlexAttention table; returns `compiled` (None once it has failed)."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, h, n, p, generator=gen) for _ in range(3))
    mod = llm.sliding_window_mask_mod(window, sinks)
    dense = llm.sliding_window_mask(n, n, window, sinks)
    block = create_block_mask(mod, None, None, n, n, device="cpu")
    sdpa = best_seconds(lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=dense))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"flex_attention called without")
        eager = best_seconds(lambda: flex_attention(q, k, v, block_mask=block))
    comp, compile_s = float("nan"), float("nan")
    if compiled is not None:
        try:
            start = time.perf_counter()
            compiled(q, k, v, block_mask=block)
            compile_s = time.perf_counter() - start
            comp = best_seconds(lambda: compiled(q, k, v, block_mask=block))
        except Exception as err:
            print(f"  compiled FlexAttention failed: {type(err).__name__}: "
                  f"{str(err).splitlines()[0][:120]}")
            compiled = None
    comp_ms = "-" if comp != comp else f"{1000 * comp:.2f}"  # comp != comp: NaN, not timed
    comp_s = "-" if compile_s != compile_s else f"{compile_s:.1f}"
    print(f"{n:>6} | {1000 * sdpa:>15.2f} | {1000 * eager:>10.2f} | {comp_ms:>13} | "
          f"{comp_s:>9}")
    return compiled


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--context", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        decode_table(256, 8, 2, args.context or 256, [1, 8])
        flex_table([256, 512], compile_too=False)
    else:
        decode_table(512, 8, 4, args.context or 512, [1, 8, 32])
        flex_table([512, 1024, 2048], compile_too=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
