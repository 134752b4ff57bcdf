"""Notebook hygiene and the generated Colab badge / set-up cell of every chapter."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
MACHINE_PATH = re.compile(r"/(work|root|home|tmp|Users)/")


def ids(paths):
    return [p.name for p in paths]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def source(cell: dict) -> str:
    s = cell["source"]
    return "".join(s) if isinstance(s, list) else s


def test_the_readme_lists_exactly_the_chapters_there_are():
    names = [p.name for p in NOTEBOOKS]
    assert names[:2] == ["00_attention_cues.ipynb", "01_average_pooling.ipynb"]
    assert len({n[:2] for n in names}) == len(names), f"two chapters share a number: {names}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = re.findall(r"\(notebooks/(\d\d_[\w]+\.ipynb)\)", readme)
    assert linked == names, "README chapter table and notebooks/ disagree"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_executed_top_to_bottom_in_one_run(path):
    counts = [c["execution_count"] for c in code_cells(load(path))]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{path.name}: execution counts {counts}; re-run it with tools/run_notebooks.py"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_no_errors_and_no_machine_paths_in_outputs(path):
    for i, cell in enumerate(code_cells(load(path)), start=1):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{path.name} cell {i}: stored error output"
            text = json.dumps({k: v for k, v in out.get("data", {}).items() if k != "image/png"})
            text += "".join(out.get("text", []))
            assert not MACHINE_PATH.search(text), f"{path.name} cell {i}: a machine path in output"
            if out["output_type"] == "stream":
                assert out["name"] != "stderr" or "Warning" not in "".join(out["text"]), (
                    f"{path.name} cell {i}: a warning in the stored output"
                )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_size_and_metadata(path):
    assert path.stat().st_size < 1_000_000, f"{path.name} is {path.stat().st_size} bytes"
    nb = load(path)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in nb["metadata"], "widget state is volatile; the runner strips it"


# Which cells may carry `# NBVAL_IGNORE_OUTPUT`, and which must: tests/test_output_rule.py.


def book_settings() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["tool"]["attention-book"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_colab_badge_points_at_this_notebook_in_the_configured_repository(path):
    s = book_settings()
    repo = s["repository"].removeprefix("https://github.com/")
    expected = (
        "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
        f"(https://colab.research.google.com/github/{repo}/blob/{s['branch']}/notebooks/{path.name})"
    )
    title = next(c for c in load(path)["cells"] if c["cell_type"] == "markdown")
    assert source(title).startswith("# "), f"{path.name}: the first cell is not a title"
    assert expected in source(title).splitlines(), f"{path.name}: badge disagrees with pyproject"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=ids(NOTEBOOKS))
def test_first_code_cell_installs_only_this_package_on_colab(path):
    s = book_settings()
    setup = source(code_cells(load(path))[0])
    assert '"google.colab" in sys.modules' in setup
    assert f'"git+{s["repository"]}@{s["branch"]}"' in setup
    assert '"--no-deps"' in setup
    for other in ("torch", "numpy", "ipywidgets", "IPython", "matplotlib"):
        assert f'"{other}' not in setup, f"{path.name}: the set-up cell installs {other}"


def test_sync_tool_agrees_with_every_notebook():
    from sync_notebooks import expected_changes  # tools/ is on pytest's pythonpath

    problems = {p.name: expected_changes(p)[1] for p in NOTEBOOKS}
    assert not any(problems.values()), problems


def test_sync_tool_detects_a_stale_badge(tmp_path, monkeypatch):
    import booksettings  # tools/ is on pytest's pythonpath
    from sync_notebooks import expected_changes

    # A copy of the book's layout under tmp_path, so nothing is written into notebooks/.
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    monkeypatch.setattr(booksettings, "ROOT", tmp_path)
    nb = load(NOTEBOOKS[0])
    title = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    title["source"] = source(title).replace("attention-step-by-step/blob", "someone-else/blob")
    stale = tmp_path / "notebooks" / NOTEBOOKS[0].name
    stale.write_text(json.dumps(nb), encoding="utf-8")
    _, problems = expected_changes(stale)
    assert any("badge" in p for p in problems)
