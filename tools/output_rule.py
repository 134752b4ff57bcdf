"""Check the book's output rule: no compared output may depend on training or timing.

    python tools/output_rule.py                       # every notebook in notebooks/
    python tools/output_rule.py notebooks/09_*.ipynb  # some of them

The rule (DESIGN.md §2b, README "How outputs are checked"): exact computations are compared to the
digit; numbers from training or timing are printed in a cell marked `# NBVAL_IGNORE_OUTPUT` and the
prose's claims about them are checked by `helpers.claims.claim`, whose line has no digits.

This tool runs a notebook once in a fresh kernel with training and clocks *perturbed*, as another
PyTorch version or another machine would perturb them:

- every optimizer step runs with its learning rates scaled by a random factor in [0.7, 1.3]
  (a different trajectory, as a different kernel's round-off gives over many steps);
- every clock a notebook can read (`time.perf_counter`, `time.time`, `time.monotonic`,
  `timeit.default_timer`, ...) runs at a rate that changes at every reading, between half and
  twice real time, and `helpers.profiling.measure_peak_memory` reports 0.8-1.25 times what it
  measured, plus up to 1 MB.

Then every cell that nbval compares (not marked `NBVAL_IGNORE_OUTPUT` or `NBVAL_SKIP`) must print
what it stored, after the sanitizers of tests/nbval_sanitize.cfg. A cell whose output moves is a
trained or timed number printed without a marker, or a claim that is too tight. Conversely a
marked cell must earn its marker: it trains or times in its own source, shows a widget, or its
output moved. Round-off printed at
full precision is found statically (`roundoff_at_full_precision`): an exponent of -5 or below in a
compared output must follow a `<` or `≤` (printed as a bound).
"""

from __future__ import annotations

import argparse
import configparser
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION")

# Runs silently before the notebook's first cell. Its own random generator, so the notebook's
# seeded streams (torch, numpy, random) are untouched.
PERTURB = r'''
def _book_perturb(seed=20261204):
    import random, time, timeit
    import torch
    from torch.optim.optimizer import (
        register_optimizer_step_post_hook,
        register_optimizer_step_pre_hook,
    )

    rng = random.Random(seed)

    def lr_pre_hook(optimizer, args, kwargs):
        optimizer._book_saved_lrs = [g["lr"] for g in optimizer.param_groups]
        for g in optimizer.param_groups:
            g["lr"] = g["lr"] * rng.uniform(0.7, 1.3)

    def lr_post_hook(optimizer, args, kwargs):
        for g, lr in zip(optimizer.param_groups, optimizer._book_saved_lrs):
            g["lr"] = lr

    register_optimizer_step_pre_hook(lr_pre_hook)
    register_optimizer_step_post_hook(lr_post_hook)

    def drifting(clock, as_int=False):
        # a clock whose rate changes at every reading, between half and twice real time: what
        # is timed moves, while a claim about a large ratio (a 10x speed-up) still holds
        last = {"real": clock(), "fake": float(clock())}

        def read():
            real = clock()
            last["fake"] += (real - last["real"]) * rng.uniform(0.5, 2.0)
            last["real"] = real
            return int(last["fake"]) if as_int else last["fake"]
        return read

    for name in ("perf_counter", "time", "monotonic", "process_time", "thread_time"):
        setattr(time, name, drifting(getattr(time, name)))
    for name in ("perf_counter_ns", "time_ns", "monotonic_ns", "process_time_ns"):
        setattr(time, name, drifting(getattr(time, name), as_int=True))
    timeit.default_timer = time.perf_counter

    import helpers.profiling
    measure = helpers.profiling.measure_peak_memory

    def measure_peak_memory(*args, **kwargs):
        seconds, mb = measure(*args, **kwargs)
        return seconds, mb * rng.uniform(0.8, 1.25) + rng.uniform(0.0, 1.0)

    measure_peak_memory.__doc__ = measure.__doc__
    helpers.profiling.measure_peak_memory = measure_peak_memory


_book_perturb()
del _book_perturb
'''


@dataclass
class Moved:
    """A compared cell whose output differs between the stored and the perturbed run."""

    notebook: str
    cell: int  # 1-based index among code cells, as nbval and the tests count them
    source: str
    stored: str
    rerun: str

    def __str__(self) -> str:
        head = self.source.strip().splitlines()[0] if self.source.strip() else ""
        return (f"{self.notebook} cell {self.cell} ({head[:60]!r}): output moved\n"
                f"  stored: {self.stored[:300]!r}\n  rerun:  {self.rerun[:300]!r}")


def sanitizers(path: Path = SANITIZE) -> list[tuple[re.Pattern, str]]:
    """The regex replacements nbval applies (tests/nbval_sanitize.cfg)."""
    cfg = configparser.ConfigParser()
    cfg.read(path, encoding="utf-8")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def compared_text(cell: nbformat.NotebookNode, subs) -> str:
    """What nbval compares of a cell's outputs (text, not images or widget views), sanitized.

    Streams are joined per name first: how stdout is split into chunks varies from run to run.
    """
    streams: dict[str, str] = {}
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            streams[out["name"]] = streams.get(out["name"], "") + out["text"]
        elif out["output_type"] in ("execute_result", "display_data"):
            data = out.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                continue
            if any(m.startswith("image/") for m in data):
                continue  # a figure: its text/plain is only "<Figure size ...>"
            for mime in ("text/plain", "text/html", "text/latex", "text/markdown"):
                if mime in data:
                    parts.append(f"[{mime}]{data[mime]}")
        elif out["output_type"] == "error":
            parts.append(f"[error]{out['ename']}: {out['evalue']}")
    parts += [f"[{name}]{text}" for name, text in sorted(streams.items())]
    text = "\n".join(parts)
    for pattern, replace in subs:
        text = pattern.sub(replace, text)
    return text


def is_compared(cell: nbformat.NotebookNode) -> bool:
    return cell.cell_type == "code" and not any(m in cell.source for m in MARKERS)


# A marked cell is volatile when it visibly trains or times (words, not parts of words: `x_train`
# and `timeout` do not count), shows a widget, or its output moved in the perturbed run. A cell
# that only uses a model trained earlier (its outputs may happen not to move in one perturbed run)
# says so in a comment line that starts with "# trained:" (or "# timed:").
VOLATILE_SOURCE = re.compile(
    r"\b(perf_counter|perf_counter_ns|time\.time|timeit|measure_peak_memory|Animator)\b"
    r"|\b(train|fit)\w*\(|\.step\(\)|\.backward\(|^\s*# (trained|timed):",
    re.MULTILINE,
)


@dataclass
class Report:
    """What a perturbed run found in one notebook."""

    moved: list[Moved]  # compared cells whose output moved
    needless_markers: list[str]  # marked cells that neither train, time, show a widget nor moved

    def problems(self) -> list[str]:
        return [str(m) for m in self.moved] + self.needless_markers


def perturbed_run(path: Path, timeout: int = 600) -> list[Moved]:
    """Run `path` with training and clocks perturbed; the compared cells whose output moved."""
    return check(path, timeout).moved


def check(path: Path, timeout: int = 600) -> Report:
    """Run `path` with training and clocks perturbed; what moved and which markers are needless."""
    stored = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(stored)
    nb.cells.insert(0, nbformat.v4.new_code_cell(PERTURB))
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", allow_errors=True,
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    errors = [o for o in nb.cells[0].get("outputs", []) if o["output_type"] == "error"]
    if errors:
        raise RuntimeError(f"{path.name}: the perturbation itself failed: {errors[0]['evalue']}")
    subs = sanitizers()
    moved, needless = [], []
    code_index = 0
    for old, new in zip(stored.cells, nb.cells[1:]):
        if old.cell_type != "code":
            continue
        code_index += 1
        a, b = compared_text(old, subs), compared_text(new, subs)
        if is_compared(old):
            if a != b:
                moved.append(Moved(path.name, code_index, old.source, a, b))
        elif "NBVAL_IGNORE_OUTPUT" in old.source and a == b:
            widget = any(
                "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                for o in old.get("outputs", [])
            )
            if not widget and not VOLATILE_SOURCE.search(old.source):
                head = old.source.strip().splitlines()[-1][:60]
                needless.append(
                    f"{path.name} cell {code_index} (ends {head!r}): NBVAL_IGNORE_OUTPUT, but it "
                    "neither trains, times nor shows a widget, and its output did not move (if it "
                    "prints what a model trained earlier computes, say so: '# trained: ...')"
                )
    return Report(moved, needless)


# An exponent of -5 or below, not inside a word or a longer number.
_TINY = re.compile(r"(?<![\w.])(\d(?:\.\d+)?[eE]-(?:0?[5-9]|[1-9]\d))\b")
# What may stand just before it when it is printed as a bound: "< 1e-6", "≤ 1e-6", "to 1e-5".
_BOUND_BEFORE = re.compile(r"(<|≤|<=|\b(to|within|below|under|tolerance|tol|atol|rtol)=?)\s*$")


def roundoff_at_full_precision(path: Path) -> list[str]:
    """Compared outputs that print a round-off-sized number (1e-5 and below) as a value."""
    nb = nbformat.read(path, as_version=4)
    found = []
    code_index = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        if not is_compared(cell):
            continue
        text = compared_text(cell, [])
        for m in _TINY.finditer(text):
            if _BOUND_BEFORE.search(text[max(0, m.start() - 12): m.start()]):
                continue
            start = text.rfind("\n", 0, m.start()) + 1
            end = text.find("\n", m.end())
            line = text[start: end if end >= 0 else len(text)]
            found.append(f"{path.name} cell {code_index}: {m.group(1)} in {line.strip()[:120]!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("*.ipynb"))
    bad = 0
    for path in paths:
        problems = check(path).problems() + roundoff_at_full_precision(path)
        print(f"{path.name}: {'ok' if not problems else f'{len(problems)} problem(s)'}", flush=True)
        for p in problems:
            print("  " + p.replace("\n", "\n  "), flush=True)
        bad += len(problems)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
