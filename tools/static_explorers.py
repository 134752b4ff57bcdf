"""Explorers that still move on the static site, where no kernel runs.

A chapter's explorer is a live ipywidgets box; its stored output is only a widget view that a page
without a kernel cannot draw. `embed_explorers(path, nb)` runs the chapter in a fresh kernel, finds
each explorer box the chapter displays (by the widget model id in its output) and calls
`helpers.ui.frames.sweep_frames` on it there: one control at a time is moved across its values and
each frame is kept as a PNG. Each explorer's widget-view output is then replaced by a small
self-contained HTML block (controls, an image, the frames and ~60 lines of JavaScript, no network)
whose sliders, dropdowns and checkboxes swap the stored frames.
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import textwrap
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_VALUES = 12  # frames per slider

# Runs in the chapter's kernel after its last cell: sweeps every explorer it can find by model id.
SWEEP_SOURCE = """
import json as _json
from helpers.ui.explorer import explorer_by_model_id as _find
from helpers.ui.frames import sweep_frames as _sweep
_frames = {}
for _id in %(ids)r:
    _box = _find(_id)
    if _box is not None:
        _frames[_id] = _sweep(_box, max_values=%(max_values)d)
with open(%(path)r, "w", encoding="utf-8") as _f:
    _json.dump(_frames, _f)
"""

SCRIPT = textwrap.dedent(
    """
    (function (root) {
      var data = JSON.parse(root.querySelector("script.sx-data").textContent);
      var img = root.querySelector("img.sx-image"), note = root.querySelector(".sx-note");
      var current = data.controls.map(function (c) { return c.default; });
      var syncs = [];
      function show() {
        var k = current.join(",");
        img.src = "data:image/png;base64," + data.images[data.frames[k]];
        img.setAttribute("data-frame", k);
      }
      function move(c, i) {
        current[c] = i;
        if (!(current.join(",") in data.frames)) {
          current = data.controls.map(function (ctl, j) { return j === c ? i : ctl.default; });
          note.textContent = "This page stores one change at a time: the other controls went " +
            "back to the values the chapter sets. Run the notebook to combine changes.";
        } else { note.textContent = ""; }
        syncs.forEach(function (sync) { sync(); });
        show();
      }
      var bar = root.querySelector(".sx-controls");
      data.controls.forEach(function (c, ci) {
        var label = document.createElement("label"), input, shown;
        label.className = "sx-control";
        label.appendChild(document.createTextNode(c.label + " "));
        if (c.kind === "range") {
          input = document.createElement("input");
          input.type = "range"; input.min = 0; input.max = c.labels.length - 1; input.step = 1;
          shown = document.createElement("output");
          input.addEventListener("input", function () { move(ci, +input.value); });
          syncs.push(function () {
            input.value = current[ci]; shown.textContent = c.labels[current[ci]];
          });
        } else if (c.kind === "checkbox") {
          input = document.createElement("input"); input.type = "checkbox";
          input.addEventListener("change", function () { move(ci, input.checked ? 1 : 0); });
          syncs.push(function () { input.checked = current[ci] === 1; });
        } else {
          input = document.createElement("select");
          c.labels.forEach(function (text, i) {
            var o = document.createElement("option"); o.value = i; o.textContent = text;
            input.appendChild(o);
          });
          input.addEventListener("change", function () { move(ci, +input.value); });
          syncs.push(function () { input.value = current[ci]; });
          if (c.fixed) { input.disabled = true; }
        }
        input.setAttribute("data-control", c.name);
        label.appendChild(input);
        if (shown) { label.appendChild(shown); }
        bar.appendChild(label);
      });
      syncs.forEach(function (sync) { sync(); });
      show();
    })(document.currentScript.parentElement);
    """
).strip()

STYLE = (
    ".static-explorer{margin:.5em 0}.static-explorer .sx-controls{display:flex;flex-wrap:wrap;"
    "gap:.4em 1.2em;margin:.3em 0}.static-explorer .sx-control{display:flex;align-items:center;"
    "gap:.4em;font-size:.9em}.static-explorer img{max-width:100%;height:auto}"
    ".static-explorer .sx-note{font-size:.8em;color:#666;min-height:1em}"
)


def explorer_html(frames: dict, uid: str) -> str:
    """A self-contained HTML block that shows `frames` (from sweep_frames) with working controls."""
    title = html.unescape(re.sub(r"<[^>]+>", "", frames.get("title") or "")).strip()
    payload = json.dumps(frames, separators=(",", ":")).replace("</", "<\\/")
    default = ",".join(str(c["default"]) for c in frames["controls"])
    first = frames["images"][frames["frames"][default]]
    caption = (
        "A recorded explorer: each control shows its stored frames (one control at a time). "
        "Run the notebook to explore freely."
    )
    return (
        f'<div class="static-explorer" id="sx-{uid}"><style>{STYLE}</style>'
        f"<div><b>{html.escape(title)}</b></div>"
        '<div class="sx-controls"></div>'
        f'<img class="sx-image" alt="{html.escape(title or "explorer")}" '
        f'src="data:image/png;base64,{first}">'
        f'<div class="sx-note"></div><div class="sx-caption" style="font-size:.8em;color:#666">'
        f"{caption}</div>"
        f'<script type="application/json" class="sx-data">{payload}</script>'
        f"<script>{SCRIPT}</script></div>"
    )


def widget_views(cell: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """(output index, model id) of every widget view among a code cell's outputs."""
    return [
        (i, out["data"][WIDGET_VIEW].get("model_id", ""))
        for i, out in enumerate(cell.get("outputs", []))
        if WIDGET_VIEW in out.get("data", {})
    ]


def sweep_notebook(path: Path, timeout: int = 300) -> tuple[nbformat.NotebookNode, dict]:
    """Run the notebook at `path` in a fresh kernel; return it (run up to its last widget) and the
    frames of its explorers."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    # Run up to the last cell that shows a widget: later cells cannot be needed to draw it.
    last = max(
        (i for i, c in enumerate(nb.cells) if c.cell_type == "code" and widget_views(c)),
        default=len(nb.cells) - 1,
    )
    with tempfile.TemporaryDirectory() as tmp, client.setup_kernel():
        for index, cell in enumerate(nb.cells[: last + 1]):
            client.execute_cell(cell, index)
        ids = [
            mid for c in nb.cells[: last + 1] if c.cell_type == "code" for _, mid in widget_views(c)
        ]
        out = Path(tmp) / "frames.json"
        sweep = nbformat.v4.new_code_cell(
            SWEEP_SOURCE % {"ids": ids, "max_values": MAX_VALUES, "path": str(out)}
        )
        nb.cells.append(sweep)
        client.execute_cell(sweep, len(nb.cells) - 1)
        nb.cells.pop()
        frames = json.loads(out.read_text(encoding="utf-8"))
    return nb, frames


def embed_explorers(path: Path, nb: nbformat.NotebookNode, timeout: int = 300) -> int:
    """Replace each explorer's stored widget view in `nb` (read from `path`) by its frames.

    Only notebooks with a widget view are executed; one that fails to run is reported in one line
    and keeps its stored outputs (the site test then names it). Returns how many were embedded.
    """
    stored = [widget_views(c) if c.cell_type == "code" else [] for c in nb.cells]
    if not any(stored):
        return 0
    try:
        executed, frames = sweep_notebook(path, timeout)
    except CellExecutionError as err:
        first = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        print(f"{path.name} failed to run ({first}): its explorers stay as stored")
        return 0
    embedded = 0
    for index, (cell, views) in enumerate(zip(nb.cells, stored)):
        if not views or index >= len(executed.cells):
            continue
        live = widget_views(executed.cells[index])
        for (out_index, _), (_, model_id) in zip(views, live):
            if model_id not in frames:
                continue  # a widget that is not an explorer: left as stored
            block = explorer_html(frames[model_id], f"{path.stem}-{index}-{out_index}")
            cell.outputs[out_index] = nbformat.v4.new_output(
                "display_data",
                data={"text/html": block, "text/plain": "(explorer frames)"},
            )
            embedded += 1
    return embedded
