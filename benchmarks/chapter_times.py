"""How long each chapter takes to run top to bottom in a fresh kernel, as a reader's "Run all".

    python benchmarks/chapter_times.py               # every chapter, once
    python benchmarks/chapter_times.py --repeat 3    # best of 3 runs per chapter
    python benchmarks/chapter_times.py notebooks/07_*.ipynb

Each notebook is executed by a new Jupyter kernel (nbclient, as `tools/run_notebooks.py` does),
and nothing is written back. The table gives the wall time of the run (kernel start included),
the time spent in cells, and the slowest cell (its index and seconds). The target is at most
15 s per chapter on a 2-core CPU; the last line gives the whole book. Times vary with the
machine and with what else it runs: take the best of a few runs on a quiet machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 15.0


def _seconds(cell) -> float:
    """A code cell's execution time from the timestamps nbclient records in its metadata."""
    timing = cell.metadata.get("execution", {})
    stamps = [timing.get(k) for k in ("iopub.execute_input", "shell.execute_reply")]
    if not all(stamps):
        return 0.0
    start, end = (datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
    return (end - start).total_seconds()


def run_once(path: Path) -> tuple[float, float, int, float]:
    """(wall seconds, seconds in cells, index of the slowest cell, its seconds) for one run."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", record_timing=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    wall = time.perf_counter() - start
    times = [_seconds(c) if c.cell_type == "code" else 0.0 for c in nb.cells]
    slowest = max(range(len(times)), key=times.__getitem__)
    return wall, sum(times), slowest, times[slowest]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--repeat", type=int, default=1, help="runs per chapter; the fastest is kept")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    print(f"{os.cpu_count()} CPUs; target: at most {TARGET_S:.0f} s per chapter")
    print("| chapter | run all (s) | in cells (s) | slowest cell (s) | within target |")
    print("|---|---|---|---|---|")
    total = 0.0
    for path in paths:
        wall, cells, idx, worst = min((run_once(path) for _ in range(args.repeat)),
                                      key=lambda r: r[0])
        total += wall
        ok = "yes" if wall <= TARGET_S else "no"
        print(f"| {path.stem} | {wall:.1f} | {cells:.1f} | cell {idx}: {worst:.1f} | {ok} |",
              flush=True)
    print(f"whole book: {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
