"""Every chapter, opened and run in real JupyterLab in headless Chromium.

For each notebook: open it, wait for an idle kernel, run all cells, then check that no cell shows
an error, that every widget rendered, and that moving one control of each explorer (a widget
output holding a slider, dropdown, toggle or checkbox) changes what it shows: the figures (image
data) or the text of its output areas. A screenshot per chapter goes to screenshots/.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import pytest
import selftest_notebook
from e2e_lab import LabServer, chapter_notebooks

pytestmark = pytest.mark.browser

RUN_TIMEOUT_S = 120  # a hard stop for "run all"
CHAPTER_BUDGET_S = 30  # the bar for one chapter (open, run, check, move); slower ones warn
CHANGE_TIMEOUT_S = 20
VIEWPORT = {"width": 1280, "height": 1000}

# The notebook panel of `path`, found among the main-area widgets of the exposed application.
_PANEL_JS = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  for (const w of app.shell.widgets('main')) {
    if (w.context && w.context.path === path) return w;
  }
  return null;
}
"""

_OPEN_JS = """
async (path) => {
  await window.jupyterapp.commands.execute('docmanager:open', {path, factory: 'Notebook'});
}
"""

# Close the notebook without saving (the copy in the server's folder stays as it was).
_CLOSE_JS = f"""
(path) => {{
  const panel = ({_PANEL_JS})(path);
  if (panel) {{ panel.context.model.dirty = false; panel.dispose(); }}
}}
"""

_KERNEL_IDLE_JS = f"""
(path) => {{
  const panel = ({_PANEL_JS})(path);
  const sc = panel && panel.sessionContext;
  return !!(sc && sc.isReady && sc.session && sc.session.kernel
            && sc.session.kernel.status === 'idle' && panel.content.widgets.length > 0);
}}
"""

_RUN_ALL_JS = f"""
async (path) => {{
  const app = window.jupyterapp;
  const panel = ({_PANEL_JS})(path);
  app.shell.activateById(panel.id);
  return await app.commands.execute('notebook:run-all-cells');
}}
"""

# Per code cell: its outputs (errors, widget views) and the rendered output nodes. Top-level widget
# outputs are tagged with data-e2e-widget="<n>" so the test can reach them with locators.
_INSPECT_JS = f"""
(path) => {{
  const panel = ({_PANEL_JS})(path);
  const sc = panel.sessionContext;
  const report = {{kernel: sc.session && sc.session.kernel && sc.session.kernel.status,
                   cells: [], widgets: []}};
  let n = 0;
  panel.content.widgets.forEach((cell, i) => {{
    if (cell.model.type !== 'code') return;
    const outputs = cell.model.outputs.toJSON();
    const source = cell.model.sharedModel.getSource();
    const prompt = cell.node.querySelector('.jp-InputPrompt');
    report.cells.push({{
      index: i,
      empty: source.trim() === '',
      count: cell.model.executionCount,
      busy: !!(prompt && prompt.textContent.includes('*')),
      errors: outputs.filter(o => o.output_type === 'error')
                     .map(o => `${{o.ename}}: ${{o.evalue}}`),
      source_head: source.slice(0, 80),
    }});
    const nodes = cell.outputArea.node.querySelectorAll(':scope > .jp-OutputArea-child');
    outputs.forEach((o, j) => {{
      const data = o.data || {{}};
      if (!data['application/vnd.jupyter.widget-view+json']) return;
      const node = nodes[j] && nodes[j].querySelector('.jp-OutputArea-output');
      if (node) node.setAttribute('data-e2e-widget', String(n));
      const text = node ? node.innerText : '';
      report.widgets.push({{
        n, cell: i,
        rendered: !!(node && node.querySelector('.jupyter-widgets, .widget-box, .lm-Widget')),
        failed: /Error displaying widget|Failed to load|model not found/i.test(text)
                || /^\\s*Loading widget/.test(text),
        text: text.slice(0, 200),
      }});
      n += 1;
    }});
  }});
  return report;
}}
"""

# The controls an explorer can have: their boxes, and the element a reader acts on in each.
CONTROL_BOXES = ", ".join(
    [
        ".widget-slider",
        ".widget-dropdown",
        ".widget-toggle-buttons",
        ".widget-radio-box",
        ".widget-checkbox",
        ".widget-toggle-button",
    ]
)
# Inside a box: the element to act on (a ToggleButton's box is the button itself).
CONTROL_SELECTOR = ".noUi-handle, .ui-slider-handle, select, button, input"

# What an explorer shows: figures (image data, SVG) and the text of its output/HTML areas; the
# controls themselves (labels, readouts) are left out.
_SIGNATURE_JS = """
(root) => {
  const parts = [];
  root.querySelectorAll('img').forEach(img => parts.push('img:' + img.src));
  root.querySelectorAll('svg').forEach(svg => {
    if (!svg.closest('.widget-slider, .widget-dropdown, .widget-button')) parts.push(svg.outerHTML);
  });
  root.querySelectorAll('.widget-output, .widget-html-content')
      .forEach(el => parts.push('text:' + el.innerText));
  root.querySelectorAll('.widget-output [data-mime-type="application/vnd.jupyter.stderr"]')
      .forEach(el => { if (/Traceback|Error/.test(el.innerText)) parts.push('Traceback'); });
  return parts.join('\\n');
}
"""


def _wait_for(page, js: str, arg, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(js, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


def _control_value(control) -> str:
    return control.evaluate(
        """el => {
          const box = el.closest('.widget-slider, .widget-dropdown, .widget-toggle-buttons,'
                                 + ' .widget-radio-box, .widget-checkbox, .widget-toggle-button');
          const readout = box && box.querySelector('.widget-readout');
          if (readout) return readout.innerText || readout.value;
          if (el.tagName === 'SELECT') return el.value;
          if (el.tagName === 'INPUT') return String(el.checked);
          const active = (box || el).querySelector('.mod-active');
          return active ? active.innerText : String(el.getAttribute('aria-valuenow'));
        }"""
    )


def _move(page, control) -> str:
    """Change the control's value the way a reader would; returns a description of the move."""
    cls = control.evaluate("el => el.className + ' ' + el.tagName")
    before = _control_value(control)
    if "noUi-handle" in cls or "ui-slider-handle" in cls:
        control.focus()
        for key in ("ArrowRight", "ArrowLeft", "ArrowLeft"):
            page.keyboard.press(key)
            page.wait_for_timeout(100)
            if _control_value(control) != before:
                return f"slider {before} -> {_control_value(control)}"
        raise AssertionError("the slider did not move with the arrow keys")
    if "SELECT" in cls:
        options = control.evaluate("el => Array.from(el.options).map(o => o.value)")
        other = next((o for o in options if o != before), None)
        assert other is not None, "dropdown with a single option"
        control.select_option(other)
        return f"dropdown {before} -> {other}"
    if "widget-radio-box" in control.evaluate("el => el.parentElement.parentElement.className"):
        others = control.locator("xpath=ancestor::*[contains(@class,'widget-radio-box')][1]//input")
        for i in range(others.count()):
            if not others.nth(i).is_checked():
                others.nth(i).check()
                return "radio button"
    if "BUTTON" in cls:
        group = control.locator(
            "xpath=ancestor::*[contains(@class,'widget-toggle-buttons')][1]//button"
        )
        for i in range(group.count()):
            if "mod-active" not in (group.nth(i).get_attribute("class") or ""):
                group.nth(i).click()
                return f"toggle button -> {group.nth(i).inner_text()}"
    control.click()  # checkbox or single toggle button
    return "toggled"


def _run_in_lab(
    name: str,
    lab_server: LabServer,
    lab_page,
    screenshots: Path,
    change_timeout_s: float = CHANGE_TIMEOUT_S,
) -> None:
    start = time.monotonic()
    page = lab_page
    console_errors: list[str] = []
    on_error = lambda exc: console_errors.append(str(exc))  # noqa: E731
    page.on("pageerror", on_error)
    try:
        page.evaluate(_OPEN_JS, name)
        _wait_for(page, _KERNEL_IDLE_JS, name, 60, f"{name} to open with an idle kernel")
        opened = time.monotonic()
        page.evaluate(_RUN_ALL_JS, name)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while True:
            report = page.evaluate(_INSPECT_JS, name)
            errors = [(c["index"], e) for c in report["cells"] for e in c["errors"]]
            assert not errors, f"{name}: cells show errors: {errors}"
            pending = [
                c for c in report["cells"] if not c["empty"] and (c["busy"] or c["count"] is None)
            ]
            if not pending and report["kernel"] == "idle":
                break
            assert time.monotonic() < deadline, (
                f"{name}: cells still running after {RUN_TIMEOUT_S} s: "
                f"{[c['source_head'] for c in pending][:3]}"
            )
            time.sleep(0.25)
        ran = time.monotonic()

        # Every widget renders (give the front end a moment to build the views).
        deadline = time.monotonic() + change_timeout_s
        while True:
            report = page.evaluate(_INSPECT_JS, name)
            bad = [w for w in report["widgets"] if not w["rendered"] or w["failed"]]
            if not bad:
                break
            assert time.monotonic() < deadline, f"{name}: widgets did not render: {bad}"
            time.sleep(0.25)

        # Move each control of each explorer: what it shows must change (a must for the first
        # control, a warning for the others, which may depend on the state of the first).
        moved = []
        for w in report["widgets"]:
            root = page.locator(f'[data-e2e-widget="{w["n"]}"]')
            boxes = root.locator(CONTROL_BOXES)
            for k in range(boxes.count()):
                box = boxes.nth(k)
                control = box.locator(CONTROL_SELECTOR).first
                if control.count() == 0:
                    control = box  # a ToggleButton

                control.scroll_into_view_if_needed()
                before = root.evaluate(_SIGNATURE_JS)
                how = _move(page, control)
                deadline = time.monotonic() + (change_timeout_s if not k else 5)
                while (after := root.evaluate(_SIGNATURE_JS)) == before:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                errors = [e for c in page.evaluate(_INSPECT_JS, name)["cells"] for e in c["errors"]]
                assert not errors, f"{name}: moving a control raised {errors}"
                assert "Traceback" not in after, f"{name}: {how} shows a traceback"
                if after == before:
                    msg = f"{name}: explorer in cell {w['cell']} did not change its output"
                    msg += f" after {how}"
                    assert k, msg
                    warnings.warn(msg, stacklevel=1)
                moved.append(how)
            if boxes.count():
                root.screenshot(path=str(screenshots / f"{Path(name).stem}-explorer{w['n']}.png"))
        page.screenshot(path=str(screenshots / f"{Path(name).stem}.png"))
        assert not console_errors, f"{name}: JavaScript errors in the page: {console_errors}"
        done = time.monotonic()
        if done - start > CHAPTER_BUDGET_S:
            warnings.warn(
                f"{name} took {done - start:.0f} s in the browser (budget {CHAPTER_BUDGET_S} s)",
                stacklevel=1,
            )
        print(
            f"\n{name}: open {opened - start:.1f} s, run all {ran - opened:.1f} s, "
            f"{len(report['widgets'])} widgets, explorers moved: {moved or 'none'}; "
            f"total {done - start:.1f} s"
        )
    finally:
        page.remove_listener("pageerror", on_error)
        page.evaluate(_CLOSE_JS, name)
        lab_server.shutdown_kernels()


@pytest.fixture(scope="module")
def lab_page(lab_server: LabServer, browser):
    """One JupyterLab page for all notebooks (each opened in turn, then closed)."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    try:
        page.goto(f"{lab_server.url}/lab?reset&token={lab_server.token}")
        page.wait_for_function("() => !!window.jupyterapp", timeout=60_000)
        page.evaluate(
            "async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }"
        )
        yield page
    finally:
        context.close()


def test_harness_selftest(lab_server: LabServer, lab_page, screenshots: Path) -> None:
    """The harness itself, on a small notebook with two explorers, a figure and a plain widget."""
    _run_in_lab(selftest_notebook.NAME, lab_server, lab_page, screenshots)


@pytest.mark.parametrize("name", list(selftest_notebook.BROKEN))
def test_harness_rejects_broken_notebooks(name, lab_server: LabServer, lab_page, tmp_path: Path):
    """A failing cell, a widget that cannot render, an explorer that ignores its controls."""
    message = selftest_notebook.BROKEN[name][1]
    with pytest.raises(AssertionError, match=message):
        _run_in_lab(name, lab_server, lab_page, tmp_path, change_timeout_s=4)


@pytest.mark.parametrize("notebook", chapter_notebooks(), ids=lambda p: p.stem)
def test_chapter_in_jupyterlab(notebook: Path, lab_server: LabServer, lab_page, screenshots: Path):
    _run_in_lab(notebook.name, lab_server, lab_page, screenshots)
