"""Write each notebook's Colab badge and set-up cell from pyproject.toml's [tool.attention-book].

    python tools/sync_notebooks.py          # rewrite notebooks that disagree
    python tools/sync_notebooks.py --check  # only report; exit 1 if any disagrees

The badge is the line of the first markdown cell that shows the Colab badge image; the set-up
cell is the first code cell. Outputs are left alone (the set-up cell prints nothing off Colab).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

sys.path.insert(0, str(Path(__file__).resolve().parent))
from booksettings import BADGE_IMAGE, NOTEBOOKS, badge_line, setup_cell_source  # noqa: E402


def expected_changes(path: Path) -> tuple[nbformat.NotebookNode, list[str]]:
    """The notebook with badge and set-up cell synced, and a list of what differed."""
    nb = nbformat.read(path, as_version=4)
    problems: list[str] = []
    md = next((c for c in nb.cells if c.cell_type == "markdown"), None)
    if md is None:
        problems.append("no markdown title cell")
    else:
        lines = md.source.split("\n")
        want = badge_line(path)
        idx = [i for i, line in enumerate(lines) if BADGE_IMAGE in line]
        if not idx:
            problems.append("title cell has no Colab badge")
            lines.insert(1, want)
        elif lines[idx[0]] != want:
            problems.append(f"badge is {lines[idx[0]]!r}, expected {want!r}")
            lines[idx[0]] = want
        md.source = "\n".join(lines)
    code = next((c for c in nb.cells if c.cell_type == "code"), None)
    if code is None:
        problems.append("no code cell")
    elif code.source != setup_cell_source():
        problems.append("first code cell is not the generated set-up cell")
        code.source = setup_cell_source()
    return nb, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report only; exit 1 on disagreement")
    ap.add_argument("notebooks", nargs="*", type=Path)
    args = ap.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    bad = 0
    for path in paths:
        nb, problems = expected_changes(path)
        if problems:
            bad += 1
            print(f"{path}: " + "; ".join(problems))
            if not args.check:
                nbformat.write(nb, path)
    return 1 if (bad and args.check) else 0


if __name__ == "__main__":
    raise SystemExit(main())
