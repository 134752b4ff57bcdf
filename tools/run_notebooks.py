"""Execute notebooks top to bottom in a fresh kernel, in place, and normalise their metadata.

    python tools/run_notebooks.py                       # every notebook in notebooks/
    python tools/run_notebooks.py notebooks/02_*.ipynb  # some of them

Stored outputs therefore always come from one clean run: execution counts 1..n, no stale cells.
Badges and set-up cells are synced first (tools/sync_notebooks.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booksettings import NOTEBOOKS  # noqa: E402
from sync_notebooks import expected_changes  # noqa: E402

KEEP_CELL_METADATA = {"tags"}


def normalise(nb: nbformat.NotebookNode) -> None:
    """Keep only metadata that does not change from run to run or machine to machine."""
    nb.metadata = nbformat.NotebookNode(
        kernelspec={"display_name": "Python 3", "language": "python", "name": "python3"},
        language_info={"name": "python"},
        colab=nb.metadata.get("colab", {"provenance": []}),
    )
    for cell in nb.cells:
        cell.metadata = nbformat.NotebookNode(
            {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        )
        for out in cell.get("outputs", []):
            out.pop("transient", None)


def run(path: Path, timeout: int = 300) -> float:
    nb, _ = expected_changes(path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()
    elapsed = time.perf_counter() - start
    normalise(nb)
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--timeout", type=int, default=300, help="seconds per cell")
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    for path in paths:
        print(f"{path}: ran in {run(path, args.timeout):.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
