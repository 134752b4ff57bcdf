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

import pytest

from helpers import ui
from helpers.ui.explorer import control_values

GRID = 16  # values per slider with more values than this: both ends and evenly between


def _chapter_modules() -> list[str]:
    mods = pkgutil.iter_modules(ui.__path__)
    return sorted(m.name for m in mods if m.name[:2] == "ch" and m.name[2:].isdigit())


DEMOS = [
    (mod, name)
    for mod in _chapter_modules()
    for name in getattr(importlib.import_module(f"helpers.ui.{mod}"), "EXPLORER_DEMOS", {})
]


def test_every_chapter_with_explorers_lists_them():
    assert len(DEMOS) >= 12, DEMOS


@pytest.mark.slow
@pytest.mark.parametrize("mod,name", DEMOS, ids=[f"{m}-{n}" for m, n in DEMOS])
def test_every_control_changes_the_picture_over_its_whole_range(mod, name):
    box = importlib.import_module(f"helpers.ui.{mod}").EXPLORER_DEMOS[name]()
    for key, control in box.controls.items():
        start = control.value
        values = control_values(control, GRID)
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

