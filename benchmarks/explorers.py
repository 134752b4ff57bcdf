"""Redraw time of every explorer, per control: how long one control change takes in the kernel.

    python benchmarks/explorers.py            # every chapter's explorers
    python benchmarks/explorers.py ch02 ch05  # some chapters

Each chapter module `helpers/ui/chNN.py` lists its explorers in `EXPLORER_DEMOS` (name -> a function
that builds the explorer with representative inputs). For every control of every explorer this
moves the control through up to `--moves` values (one at a time, from the default state, as a
dragged slider would) and reports the median and the slowest redraw, PNG encoding included.
Redraw times come from the explorer itself (`box.redraw_times`). The target is a median of at
most 100 ms per control change.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import helpers.ui  # noqa: E402
from helpers.ui import explorer  # noqa: E402

TARGET_MS = 100.0


def control_values(control, moves: int) -> list:
    """Up to `moves` values for a control, other than its current one, spread over its range
    (`helpers.ui.explorer.control_values`); a checkbox toggles and back."""
    current = control.value
    values = [v for v in explorer.control_values(control, moves + 1) if v != current][:moves]
    if len(values) == 1:
        values.append(current)
    # Cycle through the values again if there are fewer than `moves`.
    while values and len(values) < moves:
        values = values + values[: moves - len(values)]
    return values


def measure(box, moves: int) -> list[tuple[str, float, float, int]]:
    """(control, median ms, max ms, changes) for every control of one explorer."""
    rows = []
    for name, control in box.controls.items():
        start_value = control.value
        before = len(box.redraw_times)
        for v in control_values(control, moves):
            control.value = v
        control.value = start_value
        times = [1000 * t for t in box.redraw_times[before:]]
        if times:
            rows.append((name, statistics.median(times), max(times), len(times)))
    return rows


def chapter_modules(names: list[str]) -> list[str]:
    modules = pkgutil.iter_modules(helpers.ui.__path__)
    found = sorted(m.name for m in modules if m.name[:2] == "ch" and m.name[2:].isdigit())
    return [m for m in found if not names or m in names]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chapters", nargs="*", help="chapter modules, e.g. ch02 (default: all)")
    ap.add_argument("--moves", type=int, default=12, help="changes per control (default 12)")
    args = ap.parse_args(argv)

    print(f"| explorer | control | changes | median ms | max ms | ≤ {TARGET_MS:.0f} ms |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for mod_name in chapter_modules(args.chapters):
        mod = importlib.import_module(f"helpers.ui.{mod_name}")
        for ex_name, build in getattr(mod, "EXPLORER_DEMOS", {}).items():
            box = build()
            box.refresh()  # one warm-up redraw (first draws pay for font caches)
            for control, median, slowest, n in measure(box, args.moves):
                worst = max(worst, median)
                ok = "yes" if median <= TARGET_MS else "NO"
                print(
                    f"| {mod_name}.{ex_name} | {control} | {n} | {median:.0f} | {slowest:.0f} "
                    f"| {ok} |"
                )
    print(f"\nworst median: {worst:.0f} ms (target ≤ {TARGET_MS:.0f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
