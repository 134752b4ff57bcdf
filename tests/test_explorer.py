"""The shared explorer machinery, and the self-check contract held for every check."""

from __future__ import annotations

import importlib
import pkgutil

import ipywidgets as widgets
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from helpers import ui
from helpers.ui import checks
from helpers.ui.checks import REPLACE_NONE, as_number, matches, self_check
from helpers.ui.explorer import build_explorer, control_values, figure_png

# Import every chapter module so that all their checks are registered in checks.CHECKS.
CHAPTER_MODULES = sorted(
    m.name for m in pkgutil.iter_modules(ui.__path__) if m.name[:2] == "ch" and m.name[2:].isdigit()
)
for _name in CHAPTER_MODULES:
    importlib.import_module(f"helpers.ui.{_name}")


def _line_explorer():
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    (line,) = ax.plot(np.arange(5), np.zeros(5))
    ax.set_ylim(-1, 10)

    def draw(slope: float):
        y = slope * np.arange(5)
        line.set_ydata(y)
        return fig, {"y": y}

    slider = widgets.FloatSlider(value=1.0, min=0, max=2, step=0.5)
    return build_explorer({"slope": slider}, draw, title="a line"), fig


def test_explorer_draws_once_and_again_on_every_change():
    box, fig = _line_explorer()
    assert box.figure is fig and len(box.redraw_times) == 1
    first = box.png
    assert first.startswith(b"\x89PNG") and box.image.value == first
    box.controls["slope"].value = 2.0
    assert box.figure is fig  # the same figure, updated in place
    np.testing.assert_allclose(box.state["y"], [0, 2, 4, 6, 8])
    assert box.png != first and box.image.value == box.png
    assert len(box.redraw_times) == 2


def test_figure_png_has_the_figure_size_at_the_explorer_dpi():
    import io

    from PIL import Image

    fig = Figure(figsize=(4, 3))
    fig.subplots().plot([0, 1], [0, 1])
    img = Image.open(io.BytesIO(figure_png(fig, dpi=50)))
    assert img.size == (200, 150)


def test_control_values_cover_both_ends_of_a_slider():
    GRID = 16
    wide = control_values(widgets.IntSlider(value=3, min=0, max=100), GRID)
    assert wide[0] == 0 and wide[-1] == 100 and len(wide) == GRID
    assert control_values(widgets.IntSlider(value=3, min=1, max=6), GRID) == [1, 2, 3, 4, 5, 6]
    floats = control_values(widgets.FloatSlider(value=0.5, min=0.1, max=2.0, step=0.1), GRID)
    assert floats[0] == pytest.approx(0.1) and floats[-1] == pytest.approx(2.0)
    logs = control_values(widgets.FloatLogSlider(value=1, base=10, min=-2, max=2), GRID)
    assert logs[0] == pytest.approx(0.01) and logs[-1] == pytest.approx(100)
    assert control_values(widgets.Dropdown(options=[("a", 1), ("b", 2)], value=1), GRID) == [1, 2]
    assert control_values(widgets.Checkbox(value=True), GRID) == [False, True]


def test_as_number_and_matches_accept_ints_floats_and_tensors():
    @self_check
    def half(answer):
        return as_number(answer) == 0.5

    assert half(0.5) and half(torch.tensor(0.5)) and not half(1)

    @self_check
    def pair(answer):
        return matches(answer, torch.tensor([1.0, 2.0]))

    assert pair([1, 2]) and pair(torch.tensor([1.0, 2.0])) and not pair([1, 3])


def test_a_wrong_call_from_the_notebook_is_not_swallowed():
    @self_check
    def needs_one(answer):
        return True

    with pytest.raises(TypeError):
        needs_one(1, 2)


def test_a_check_that_crashes_is_not_a_rejection(capsys):
    # a check with a bug of its own: the exception must reach the tests, not print "Not yet"
    import helpers.ui.checks as explorer_module

    source = "def broken(answer):\n    return {}[answer] > 0\n"
    namespace = {}
    exec(compile(source, explorer_module.__file__, "exec"), namespace)  # "inside helpers/"
    broken = explorer_module.self_check(namespace["broken"])
    explorer_module.CHECKS.remove(broken)
    with pytest.raises(KeyError):
        broken(3)
    assert capsys.readouterr().out == ""


def test_the_readers_own_failing_function_is_explained(capsys):
    @self_check
    def calls_it(answer):
        return answer(2) == 4

    def readers_function(x):
        return x / 0  # the reader's bug, in the reader's code

    assert calls_it(readers_function) is False
    assert "ZeroDivisionError" in capsys.readouterr().out


def _check_id(fn) -> str:
    return f"{fn.__module__.removeprefix('helpers.ui.')}.{fn.__name__}"


def test_every_chapter_module_has_checks():
    modules = {fn.__module__ for fn in checks.CHECKS}
    for name in CHAPTER_MODULES:
        assert f"helpers.ui.{name}" in modules, f"helpers/ui/{name}.py has no @self_check"


@pytest.mark.parametrize("check", checks.CHECKS, ids=_check_id)
def test_untouched_placeholder_asks_for_an_answer_and_nothing_else(check, capsys):
    assert check(None) is False
    assert capsys.readouterr().out.strip() == REPLACE_NONE


def _raising(*args, **kwargs):
    raise ZeroDivisionError("the reader's bug")


@pytest.mark.parametrize("check", checks.CHECKS, ids=_check_id)
@pytest.mark.parametrize(
    "answer", ["seven", _raising, object(), [[1, 2], [3]], float("nan")], ids=repr
)
def test_malformed_answers_and_failing_functions_get_an_explanation(check, answer, capsys):
    assert check(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet"), out
    assert "Traceback" not in out
