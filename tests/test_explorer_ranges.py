"""Every control of every explorer changes the picture over its whole range.

For each explorer a chapter lists in `EXPLORER_DEMOS`, each control is swept across its range
from the demo's default state (the other controls left at their defaults): every option of a
dropdown, both values of a checkbox, every value of an integer slider with few values, and an even
grid from end to end otherwise. Each value must draw a picture (PNG bytes) different from the
value before it, so a stretch of a slider that draws nothing new (a frequency above the last one
the chosen width has, a block past the last block) fails here.
"""

from __future__ import annotations

import importlib
import pkgutil

import numpy as np
import pytest

from helpers import ui

GRID = 9  # values per slider with more values than this: both ends and evenly between


def _chapter_modules() -> list[str]:
    mods = pkgutil.iter_modules(ui.__path__)
    return sorted(m.name for m in mods if m.name[:2] == "ch" and m.name[2:].isdigit())


DEMOS = [
    (mod, name)
    for mod in _chapter_modules()
    for name in getattr(importlib.import_module(f"helpers.ui.{mod}"), "EXPLORER_DEMOS", {})
]


def sweep_values(control) -> list:
    """The values a control is swept through, in order, covering its whole range."""
    if hasattr(control, "options") and control.options:
        return [o[1] if isinstance(o, tuple) else o for o in control.options]
    if isinstance(control.value, bool):
        return [False, True]
    lo, hi = control.min, control.max
    if isinstance(control.value, int):
        step = getattr(control, "step", 1) or 1
        values = list(range(lo, hi + 1, step))
        if len(values) <= 2 * GRID:
            return values
        return sorted({values[round(i)] for i in np.linspace(0, len(values) - 1, GRID)})
    grid = np.linspace(lo, hi, GRID)
    if hasattr(control, "base"):  # FloatLogSlider: min and max are exponents
        grid = control.base**grid
    step = getattr(control, "step", None)
    if step and not hasattr(control, "base"):  # values a slider can hold
        grid = np.unique(lo + np.round((grid - lo) / step) * step)
    return [float(v) for v in grid]


def test_every_chapter_with_explorers_lists_them():
    assert len(DEMOS) >= 12, DEMOS


@pytest.mark.slow
@pytest.mark.parametrize("mod,name", DEMOS, ids=[f"{m}-{n}" for m, n in DEMOS])
def test_every_control_changes_the_picture_over_its_whole_range(mod, name):
    box = importlib.import_module(f"helpers.ui.{mod}").EXPLORER_DEMOS[name]()
    for key, control in box.controls.items():
        start = control.value
        values = sweep_values(control)
        assert len(values) >= 2, f"{mod} {name}: control {key!r} has a single value"
        control.value = values[0]
        box.refresh()  # draw even when the first value is the current one
        previous = box.png
        for value in values[1:]:
            control.value = value
            assert box.png != previous, (
                f"{mod} {name}: moving {key!r} to {value!r} did not change the picture"
            )
            previous = box.png
        control.value = start


def test_the_sweep_covers_both_ends_of_a_slider():
    import ipywidgets as widgets

    wide = sweep_values(widgets.IntSlider(value=3, min=0, max=100))
    assert wide[0] == 0 and wide[-1] == 100 and len(wide) == GRID
    assert sweep_values(widgets.IntSlider(value=3, min=1, max=6)) == [1, 2, 3, 4, 5, 6]
    floats = sweep_values(widgets.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.1))
    assert floats[0] == pytest.approx(0.1) and floats[-1] == pytest.approx(2.0)
    logs = sweep_values(widgets.FloatLogSlider(value=1, base=10, min=-2, max=2))
    assert logs[0] == pytest.approx(0.01) and logs[-1] == pytest.approx(100)
    assert sweep_values(widgets.Dropdown(options=[("a", 1), ("b", 2)], value=1)) == [1, 2]
    assert sweep_values(widgets.Checkbox(value=True)) == [False, True]
