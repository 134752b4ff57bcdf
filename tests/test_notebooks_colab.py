"""What a notebook does when opened alone in Google Colab.

* Its set-up cell (the first code cell), run with a stand-in `google.colab` module, installs only
  this book's package from the repository configured in pyproject.toml, with `--no-deps`, and
  never touches torch, numpy, ipywidgets or IPython; off Colab it runs nothing.
* It reads no file beside itself (Colab opens a notebook alone): no `open(...)`, `np.load`,
  `Image(filename=...)`, `%run` or relative image links in markdown. The notebooks are also run from
  an empty folder by the Colab-like run (`make test-colab`) and by the browser tests.
"""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FORBIDDEN = ("torch", "numpy", "ipywidgets", "ipython", "ipykernel", "jupyter", "matplotlib")

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _expected_target() -> str:
    """pip's requirement for this package, from [tool.attention-book] (read here, independently)."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        book = tomllib.load(f)["tool"]["attention-book"]
    assert book["repository"].startswith("https://github.com/"), book
    return f"git+{book['repository']}@{book['branch']}"


def _code_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"]


def _run_setup_cell(source: str, monkeypatch: pytest.MonkeyPatch, on_colab: bool) -> list:
    """Run `source` with subprocess.run recorded (never executed); returns the recorded calls."""
    calls = []

    def fake_run(*args, **kwargs):
        calls.append((args, kwargs))
        return subprocess.CompletedProcess(args[0] if args else kwargs.get("args"), 0, b"", b"")

    # The cell imports torch to check its version. Importing torch the first time may run torch's
    # own helpers (a CUDA build asks ldconfig for libraries): not the cell's doing, so import it
    # before the subprocess functions are replaced.
    import torch  # noqa: F401

    monkeypatch.setattr(subprocess, "run", fake_run)
    for name in ("call", "check_call", "check_output", "Popen"):
        monkeypatch.setattr(subprocess, name, _forbidden(name))
    monkeypatch.setattr("os.system", _forbidden("os.system"))
    if on_colab:
        google = types.ModuleType("google")
        colab = types.ModuleType("google.colab")
        google.colab = colab
        monkeypatch.setitem(sys.modules, "google", google)
        monkeypatch.setitem(sys.modules, "google.colab", colab)
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "<set-up cell>", "exec"), {"__name__": "__main__"})
    return calls


def _forbidden(name: str):
    def fail(*args, **kwargs):
        raise AssertionError(f"the set-up cell must only use subprocess.run, it called {name}")

    return fail


def _setup_sources() -> list:
    """The generated template (so this runs with no chapter yet) and every chapter's set-up cell."""
    from booksettings import setup_cell_source  # tools/ is on pytest's pythonpath

    params = [pytest.param(setup_cell_source(), id="template")]
    params += [pytest.param(_code_cells(p)[0], id=p.stem) for p in NOTEBOOKS]
    return params


@pytest.mark.parametrize("source", _setup_sources())
def test_setup_cell_on_colab_installs_only_this_package(source, monkeypatch):
    calls = _run_setup_cell(source, monkeypatch, on_colab=True)
    assert len(calls) == 1, f"expected one pip call, got {calls}"
    (args, kwargs) = calls[0]
    cmd = list(args[0] if args else kwargs["args"])
    target = _expected_target()
    assert cmd == [sys.executable, "-m", "pip", "install", "-q", "--no-deps", target]
    # The same facts, stated one by one, so a changed template fails with a clear message.
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-deps" in cmd
    requirements = [a for a in cmd[4:] if not a.startswith("-")]
    assert requirements == [target]
    assert not {"-r", "--requirement", "-U", "--upgrade", "-e", "--editable"} & set(cmd)
    for name in FORBIDDEN:
        assert not any(name in a.lower() for a in cmd), f"the set-up cell touches {name}: {cmd}"
    assert kwargs.get("check") is True, "a failed install must stop the notebook"


@pytest.mark.parametrize("source", _setup_sources())
def test_setup_cell_off_colab_runs_nothing(source, monkeypatch):
    assert _run_setup_cell(source, monkeypatch, on_colab=False) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_only_the_setup_cell_installs(path):
    for i, src in enumerate(_code_cells(path)[1:], start=2):
        assert not re.search(r"(^|\s)[%!]\s*pip\b|pip\s+install|subprocess", src), (
            f"code cell {i} of {path.name} installs or shells out; only the set-up cell may"
        )


# Reading a file beside the notebook: calls and magics whose path argument is a literal relative
# path. Absolute URLs (http/https/data:) and attachments embedded in the notebook are fine.
_READS = re.compile(
    r"""\b(open|np\.load|numpy\.load|np\.loadtxt|np\.genfromtxt|torch\.load|pd\.read_\w+|
          read_csv|imread|Image\.open|json\.load|pickle\.load|load_state_dict)\s*\(
        |\bImage\s*\(\s*(filename\s*=|["'])
        |\bPath\s*\(\s*["']
        |\bread_(text|bytes)\s*\(
        |^\s*%(run|load|loadpy)\b
        |\bglob\s*\(
        |\bos\.listdir\s*\(""",
    re.VERBOSE | re.MULTILINE,
)
_MD_LINK = re.compile(r"""!\[[^\]]*\]\(\s*<?([^)\s>]+)|<img[^>]*\bsrc\s*=\s*["']([^"']+)""")


def _is_embedded(url: str) -> bool:
    return url.startswith(("http://", "https://", "data:", "attachment:"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_reads_no_sibling_files(path):
    nb = nbformat.read(path, as_version=4)
    problems = []
    for i, cell in enumerate(nb.cells, start=1):
        if cell.cell_type == "code":
            problems += [f"cell {i}: {m.group(0).strip()!r}" for m in _READS.finditer(cell.source)]
        elif cell.cell_type == "markdown":
            for m in _MD_LINK.finditer(cell.source):
                url = m.group(1) or m.group(2)
                if not _is_embedded(url):
                    problems.append(f"cell {i}: image {url!r} is a file beside the notebook")
    assert not problems, f"{path.name} reads files beside itself: {problems}"


def test_sibling_scan_catches_reads():
    """The scan above on made-up cells: it must flag reads and pass computed or embedded figures."""
    flagged = [
        "with open('data.csv') as f:\n    pass",
        "x = np.load('w.npy')",
        "display(Image(filename='cue.png'))",
        "Image('desk.png')",
        "%run helpers.py",
        "text = Path('notes.txt').read_text()",
    ]
    for src in flagged:
        assert _READS.search(src), src
    for src in ["fig = plt.figure()", "x = torch.arange(5)", "helpers.plot(x, y)"]:
        assert not _READS.search(src), src
    assert _MD_LINK.search("![desk](desk.png)").group(1) == "desk.png"
    assert _is_embedded(_MD_LINK.search("![desk](attachment:desk.png)").group(1))
