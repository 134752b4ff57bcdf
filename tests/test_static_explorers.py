"""Explorer frames for the static site: `helpers.ui.frames.sweep_frames` and tools/static_explorers.

The browser side (the page's controls swap the frames) is checked on the built site in
tests/test_site.py.
"""

from __future__ import annotations

import base64
import io
import json

import ipywidgets as widgets
import matplotlib.image
import nbformat
import numpy as np
import pytest
import static_explorers  # tools/ is on pytest's pythonpath
from matplotlib.figure import Figure

from helpers.ui.explorer import build_explorer, explorer_by_model_id
from helpers.ui.frames import sweep_frames


def _explorer(slider: widgets.Widget | None = None):
    """A line y = sign * slope * x with a title naming the kind: three kinds of control."""
    fig = Figure(figsize=(3, 2))
    ax = fig.subplots()
    (line,) = ax.plot(np.arange(5), np.zeros(5))
    ax.set_ylim(-10, 10)
    drawn = []

    def draw(slope, kind, flip):
        y = (-1 if flip else 1) * slope * np.arange(5)
        line.set_ydata(y)
        ax.set_title(kind)
        drawn.append((slope, kind, flip))
        return fig, {"y": y}

    controls = {
        "slope": slider or widgets.FloatSlider(value=0.7, min=0, max=2, step=0.1),
        "kind": widgets.Dropdown(
            options=[("first", "a"), ("second", "b"), ("third", "c")], value="b"
        ),
        "flip": widgets.Checkbox(value=False, description="flip"),
    }
    return build_explorer(controls, draw, title="A <i>line</i>"), drawn


def _pixels(b64: str) -> np.ndarray:
    return matplotlib.image.imread(io.BytesIO(base64.b64decode(b64)), format="png")


def test_one_control_at_a_time_from_the_current_state():
    box, drawn = _explorer()
    frames = sweep_frames(box, max_values=12)
    slope, kind, flip = frames["controls"]
    assert slope["kind"] == "range" and len(slope["labels"]) == 12
    assert slope["labels"][0] == "0.0" and slope["labels"][-1] == "2.0"
    assert slope["labels"][slope["default"]] == "0.7"  # the chapter's value is a frame
    assert kind["kind"] == "select" and kind["labels"] == ["first", "second", "third"]
    assert kind["default"] == 1
    assert flip == {
        "name": "flip",
        "label": "flip",
        "kind": "checkbox",
        "labels": ["off", "on"],
        "default": 0,
        "fixed": False,
    }
    # the default, then every other value of each control with the others at their defaults
    assert len(frames["frames"]) == 1 + 11 + 2 + 1
    assert "4,1,0" in frames["frames"] and "0,1,0" in frames["frames"]
    assert "0,0,0" not in frames["frames"]  # never two controls moved at once
    assert (0.0, "b", False) in drawn and (0.7, "c", False) in drawn and (0.7, "b", True) in drawn
    assert (0.0, "a", False) not in drawn
    # distinct images are stored once; each frame shows what the live explorer draws
    assert len(frames["images"]) == len(set(frames["images"])) == len(frames["frames"])
    box.controls["kind"].value = "c"
    live = matplotlib.image.imread(io.BytesIO(box.png), format="png")
    np.testing.assert_allclose(_pixels(frames["images"][frames["frames"]["4,2,0"]]), live)
    assert frames["title"] == "<b>A <i>line</i></b>"  # the header as the box shows it
    json.dumps(frames)  # ready for the page


def test_the_box_is_left_as_found():
    box, _ = _explorer()
    box.controls["slope"].value = 1.5
    before = box.png
    sweep_frames(box)
    assert [w.value for w in box.controls.values()] == [1.5, "b", False]
    np.testing.assert_allclose(
        matplotlib.image.imread(io.BytesIO(box.png), format="png"),
        matplotlib.image.imread(io.BytesIO(before), format="png"),
    )


def test_int_slider_short_ranges_keep_every_value_long_ones_are_bounded():
    box, _ = _explorer(widgets.IntSlider(value=3, min=0, max=5))
    assert sweep_frames(box)["controls"][0]["labels"] == ["0", "1", "2", "3", "4", "5"]
    box, _ = _explorer(widgets.IntSlider(value=37, min=0, max=100))
    labels = sweep_frames(box, max_values=6)["controls"][0]["labels"]
    assert len(labels) == 6 and "37" in labels and labels[0] == "0" and labels[-1] == "100"


def test_unknown_controls_stay_fixed():
    box, _ = _explorer(widgets.FloatText(value=1.0))
    spec = sweep_frames(box)["controls"][0]
    assert spec["fixed"] and spec["labels"] == ["1.0"]


def test_bad_arguments():
    with pytest.raises(TypeError, match="build_explorer"):
        sweep_frames(widgets.VBox([]))
    box, _ = _explorer()
    with pytest.raises(ValueError, match="max_values must be at least 2, got 1"):
        sweep_frames(box, max_values=1)


def test_explorer_found_by_its_model_id():
    box, _ = _explorer()
    assert explorer_by_model_id(box.model_id) is box
    assert explorer_by_model_id(widgets.IntSlider().model_id) is None  # not an explorer
    assert explorer_by_model_id("no-such-id") is None


def test_embed_replaces_explorer_views_only(tmp_path):
    """A notebook showing an explorer and a plain slider: only the explorer becomes frames."""
    code = [
        "import ipywidgets as widgets\nimport numpy as np\nfrom matplotlib.figure import Figure\n"
        "from helpers.ui.explorer import build_explorer\nfig = Figure(figsize=(2, 2))\n"
        "ax = fig.subplots()\n(line,) = ax.plot([0, 1], [0, 0])\nax.set_ylim(0, 3)\n"
        "def draw(h):\n    line.set_ydata([h, h])\n    return fig, {}\n"
        "box = build_explorer({'h': widgets.IntSlider(value=1, min=0, max=2)}, draw, title='T')",
        "box",
        "widgets.IntSlider()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    stored, _ = static_explorers.sweep_notebook(path)  # the stored notebook: executed once
    nbformat.write(stored, path)
    assert static_explorers.embed_explorers(path, stored) == 1
    html = stored.cells[1].outputs[0]["data"]["text/html"]
    assert html.startswith('<div class="static-explorer" id="sx-chapter-1-0">')
    payload = html.split('<script type="application/json" class="sx-data">')[1]
    frames = json.loads(payload.split("</script>")[0])
    assert frames["controls"][0]["labels"] == ["0", "1", "2"] and len(frames["frames"]) == 3
    assert static_explorers.WIDGET_VIEW in stored.cells[2].outputs[0]["data"]  # left as stored


def test_a_notebook_that_fails_keeps_its_stored_outputs(tmp_path, capsys):
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    cell = nbformat.v4.new_code_cell("raise RuntimeError('broken chapter')")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={static_explorers.WIDGET_VIEW: view})
    ]
    nb = nbformat.v4.new_notebook(cells=[cell])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    assert static_explorers.embed_explorers(path, nb) == 0
    assert static_explorers.WIDGET_VIEW in nb.cells[0].outputs[0]["data"]
    out = capsys.readouterr().out
    assert out.startswith("broken.ipynb failed to run (") and "broken chapter" in out


def test_a_default_off_the_step_grid_is_still_a_frame():
    box, _ = _explorer(widgets.FloatSlider(value=0.283, min=0.0, max=2.0, step=0.05))
    spec = sweep_frames(box)["controls"][0]
    assert spec["labels"][spec["default"]] == "0.28" and len(spec["labels"]) == 12
    assert box.controls["slope"].value == 0.283
