"""Time and memory of Gaussian Nadaraya-Watson regression: helpers (auto = the FFT path for these
sizes, and the fused-attention path), naive softmax, statsmodels.

    PYTHONPATH=. python benchmarks/nadaraya_watson.py            # the full table (a few minutes)
    PYTHONPATH=. python benchmarks/nadaraya_watson.py --quick    # n_k up to 1e5

For n_q queries and n_k keys a dense method evaluates n_q * n_k exponentials, so the floor is
n_q * n_k / (this machine's `torch.exp` rate, float32, measured just before each row), and each
time is reported as a multiple of it. Fast runs are repeated and the best is kept. Peak extra
memory is the rise of the process's resident set while the call runs
(`helpers.profiling.measure_peak_memory`, as in chapter 11), with glibc told to map every
allocation above 128 kB separately so that freed memory really leaves the resident set between
measurements. Max error is against float64 on up to 500 of the queries.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import sys
import time
import warnings

import torch

from helpers.data import target_function
from helpers.pooling import nadaraya_watson
from helpers.profiling import measure_peak_memory

BANDWIDTH = 0.5


def measure(fn, *args, **kwargs):
    """Run fn(*args, **kwargs); return (result, seconds, peak extra resident MB).

    The memory reading is `helpers.profiling.measure_peak_memory`'s, the same as chapter 11's.
    """
    gc.collect()
    box = []
    seconds, extra = measure_peak_memory(lambda: box.append(fn(*args, **kwargs)))
    return box[0], seconds, extra


def exp_rate(reps: int = 10) -> float:
    """Exponentials per second of torch.exp on float32 (median of five short runs)."""
    x = torch.randn(2**22)
    out = torch.empty_like(x)
    torch.exp(x, out=out)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(reps):
            torch.exp(x, out=out)
        times.append(time.perf_counter() - start)
    return reps * x.numel() / sorted(times)[2]


def best_of(fn, *args, budget: float = 3.0, **kwargs):
    """measure() repeated while cheap (up to 3 runs within `budget` seconds); the fastest run."""
    out, seconds, mb = measure(fn, *args, **kwargs)
    for _ in range(2):
        if seconds * 2 > budget:
            break
        out, s2, mb2 = measure(fn, *args, **kwargs)
        seconds, mb = min(seconds, s2), max(mb, mb2)
    return out, seconds, mb


def naive(q, k, v, h):
    """The textbook way: the whole (n_q, n_k) softmax matrix, then a matrix-vector product."""
    w = torch.softmax(-(((q[:, None] - k[None, :]) / h) ** 2) / 2, dim=1)  # (n_q, n_k)
    return w @ v


def statsmodels_fit(q, k, v, h):
    from statsmodels.nonparametric.kernel_regression import KernelReg

    model = KernelReg(v.double().numpy(), k.double().numpy(), var_type="c", reg_type="lc", bw=[h])
    return torch.from_numpy(model.fit(q.double().numpy())[0])


def fmt(x: float, spec: str = ".2f") -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def main(argv=None) -> int:
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None and sys.platform.startswith("linux"):
        # glibc otherwise keeps freed blocks resident and reuses them, hiding later peaks
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n_k up to 1e5 only")
    ap.add_argument("--max-naive-pairs", type=float, default=1e8, help="cap for the naive path")
    ap.add_argument("--max-statsmodels-pairs", type=float, default=1e8, help="cap for statsmodels")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", category=FutureWarning)

    rate = exp_rate()
    print(
        f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; torch.exp: {rate:.3g} exp/s (float32) at the start; "
        f"bandwidth {BANDWIDTH}"
    )
    print()
    print(
        "| n_q | n_k | exp/s | floor (s) | auto (s) | × floor | extra MB | max err "
        "| fused (s) | × floor | extra MB | max err "
        "| naive (s) | × floor | extra MB | statsmodels (s) | × floor | statsmodels / auto |"
    )
    print("|" + "---|" * 18)
    g = torch.Generator().manual_seed(0)
    n_ks = [10**3, 10**4, 10**5] + ([] if args.quick else [10**6])
    for n_q in (10**3, 10**4):
        for n_k in n_ks:
            k = torch.rand(n_k, generator=g) * 5
            v = target_function(k) + 0.5 * torch.randn(n_k, generator=g)
            q = torch.rand(n_q, generator=g) * 5
            pairs = n_q * n_k
            rate = exp_rate()  # measured next to each row: the machine's load varies
            floor = pairs / rate
            sub = torch.linspace(0, n_q - 1, min(n_q, 500)).long()  # queries checked in float64
            ref = nadaraya_watson(
                q[sub].double(), k.double(), v.double(), bandwidth=BANDWIDTH, method="direct"
            )

            out, t_h, mb_h = best_of(nadaraya_watson, q, k, v, bandwidth=BANDWIDTH)
            err = (out[sub].double() - ref).abs().max().item()
            row = [
                f"{n_q:.0e}",
                f"{n_k:.0e}",
                f"{rate:.2g}",
                fmt(floor, ".3f"),
                fmt(t_h),
                fmt(t_h / floor, ".2g"),
            ]
            row += [fmt(mb_h, ".1f"), fmt(err, ".1e")]
            del out
            out, t_f, mb_f = best_of(nadaraya_watson, q, k, v, bandwidth=BANDWIDTH, method="fused")
            err_f = (out[sub].double() - ref).abs().max().item()
            row += [fmt(t_f), fmt(t_f / floor, ".1f"), fmt(mb_f, ".1f"), fmt(err_f, ".1e")]
            del out
            if pairs <= args.max_naive_pairs:
                out, t_n, mb_n = best_of(naive, q, k, v, BANDWIDTH)
                row += [fmt(t_n), fmt(t_n / floor, ".1f"), fmt(mb_n, ".0f")]
                del out
            else:
                row += ["skipped", "", f"needs ≥ {3 * 4 * pairs / 2**30:.0f} GB"]
            if pairs <= args.max_statsmodels_pairs:
                _, t_s, _ = measure(statsmodels_fit, q, k, v, BANDWIDTH)
                row += [fmt(t_s), fmt(t_s / floor, ".0f"), f"{t_s / t_h:.0f}×"]
            else:
                row += ["skipped (too slow)", "", ""]
            print("| " + " | ".join(row) + " |", flush=True)
    print()
    print(
        "floor = n_q·n_k exponentials at the torch.exp rate measured just before the row; "
        "extra MB = peak rise of the resident set; max err = largest |error| against float64 "
        "on ≤ 500 of the queries."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
