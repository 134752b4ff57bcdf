"""A small notebook that exercises everything the browser tests check, built in code.

It is written into the server's temporary folder next to the book's chapters, so the browser
harness is tested on every run even before (or without) any chapter: widgets that must render,
an explorer whose first control is a slider, one whose first control is a dropdown, a plain
inline figure and some math.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

NAME = "zz_harness_selftest.ipynb"

_EXPLORERS = """\
import ipywidgets as widgets
import numpy as np
from matplotlib.figure import Figure

from helpers.ui.explorer import build_explorer


def draw(freq, kind="sin"):
    x = np.linspace(0, 2 * np.pi, 100)
    y = np.sin(freq * x) if kind == "sin" else np.cos(freq * x)
    fig = Figure(figsize=(3, 2))
    fig.add_subplot().plot(x, y)
    return fig, {"freq": freq, "kind": kind}


slider_first = build_explorer(
    {"freq": widgets.FloatSlider(value=1.0, min=0.5, max=3.0, step=0.5, description="freq"),
     "kind": widgets.Dropdown(options=["sin", "cos"], value="sin", description="kind")},
    draw, title="slider first",
)
slider_first"""

_DROPDOWN = """\
dropdown_first = build_explorer(
    {"kind": widgets.Dropdown(options=["sin", "cos"], value="sin", description="kind"),
     "freq": widgets.IntSlider(value=1, min=1, max=3, description="freq")},
    draw, title="dropdown first",
)
dropdown_first"""


def write(folder: Path) -> Path:
    """Write the self-test notebook into `folder` and return its path."""
    nb = new_notebook(
        cells=[
            new_markdown_cell("# Harness self-test\n\nMath: $\\mathrm{softmax}(x)_i$."),
            new_code_cell("import sys\nIN_COLAB = 'google.colab' in sys.modules"),
            new_code_cell(_EXPLORERS),
            new_code_cell(_DROPDOWN),
            new_code_cell(
                "import matplotlib.pyplot as plt\n"
                "plt.figure(figsize=(2, 1.5))\nplt.plot([0, 1], [1, 0])\nplt.show()"
            ),
            new_code_cell("widgets.HTML('<i>a widget without controls</i>')"),
            new_code_cell(""),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    path = folder / NAME
    nbformat.write(nb, path)
    return path


# Notebooks the harness must reject, with the message it must reject each with.
BROKEN = {
    "zz_broken_error.ipynb": (
        ["print('fine')", "raise ValueError('a cell that fails')", "print('never runs')"],
        "cells show errors",
    ),
    "zz_broken_widget.ipynb": (
        [
            "from IPython.display import display\n"
            "view = {'model_id': 'no-such-model', 'version_major': 2, 'version_minor': 0}\n"
            "display({'application/vnd.jupyter.widget-view+json': view}, raw=True)"
        ],
        "widgets did not render",
    ),
    "zz_broken_frozen.ipynb": (
        [
            _EXPLORERS.replace(
                'def draw(freq, kind="sin"):',
                'def draw(freq, kind="sin"):\n    freq, kind = 1.0, "sin"  # ignores the controls',
            )
        ],
        "did not change its output",
    ),
}


def write_broken(folder: Path) -> list[Path]:
    """Write the notebooks the harness must reject into `folder`."""
    paths = []
    for name, (cells, _) in BROKEN.items():
        nb = new_notebook(
            cells=[new_code_cell(c) for c in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}},
        )
        nbformat.write(nb, folder / name)
        paths.append(folder / name)
    return paths
