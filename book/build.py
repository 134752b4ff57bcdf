"""Build the book as a static HTML site from the notebooks' stored outputs (offline).

    python book/build.py            # -> _build/book/_build/html/index.html

Jupyter Book 1 (Sphinx) renders the chapters in reading order (notebooks/NN_*.ipynb, found by
name, so new chapters join automatically) with navigation, a Colab button per page and MathJax for
the math. The pages show the outputs stored in the notebooks, except the explorers: a chapter that
displays one is run in a fresh kernel, and each explorer's frames (one control moved at a time) are
embedded in its page with a small script, so its controls work without a kernel
(tools/static_explorers.py). `--no-explorers` skips that (faster; explorers then show nothing).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from booksettings import BADGE_IMAGE, settings  # noqa: E402
from static_explorers import embed_explorers  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = ROOT / "_build" / "book"


# The chapters' "Open in Colab" badge, drawn here so that the pages load no image from the web.
COLAB_BADGE = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="117" height="20" role="img" '
    'aria-label="Open in Colab"><rect width="117" height="20" rx="3" fill="#555"/>'
    '<rect x="60" width="57" height="20" rx="3" fill="#f9ab00"/><rect x="60" width="4" '
    'height="20" fill="#f9ab00"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" '
    'font-size="11"><text x="8" y="14">Open in</text><text x="68" y="14">Colab</text></g></svg>'
)

# The parts of MathJax 3 that the pages use (TeX input, HTML output and its fonts, menu).
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "adaptors")


def bundle_mathjax(static: Path) -> bool:
    """Copy MathJax (from the `django-static-mathjax` wheel) into `static`; False if missing.

    With it the math renders with no network at view time; without it the pages load MathJax
    from a CDN.
    """
    spec = importlib.util.find_spec("mathjax")
    if spec is None or spec.origin is None:
        return False
    es5 = Path(spec.origin).parent / "static" / "mathjax" / "es5"
    if not (es5 / MATHJAX_PARTS[0]).is_file():
        return False
    for part in MATHJAX_PARTS:
        src, dst = es5 / part, static / "mathjax" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)
    return True


def default_extensions() -> list[str]:
    """The Sphinx extensions Jupyter Book 1 loads by default."""
    from jupyter_book.config import get_default_sphinx_config

    return list(get_default_sphinx_config()["extensions"])


def config(local_mathjax: bool = False) -> dict:
    """Jupyter Book's _config.yml (JSON is valid YAML): no execution, Colab launch buttons."""
    s = settings()
    sphinx = {
        "html_show_copyright": False,
        "nb_merge_streams": True,
        # Jupyter Book's extensions without sphinx_thebe: the pages launch Colab, not Thebe, and
        # sphinx-thebe 0.3.1 declares its `const THEBE_JS_URL` twice per page (a console error).
        "extensions": [e for e in default_extensions() if e != "sphinx_thebe"],
        # A theme mode the theme accepts (its default, "", logs a console error on every page).
        "html_context": {"default_mode": "light"},
    }
    if local_mathjax:
        # Copied as extra files (a `_static` folder would add every .js file to every page).
        sphinx |= {"html_extra_path": ["_extra"], "mathjax_path": "../mathjax/tex-mml-chtml.js"}
    return {
        "title": "Attention, Step by Step",
        "author": "The Attention, Step by Step authors",
        "copyright": "",
        "only_build_toc_files": True,
        "exclude_patterns": ["_build", "**.ipynb_checkpoints"],
        "execute": {"execute_notebooks": "off"},
        "repository": {"url": s["repository"], "branch": s["branch"], "path_to_book": ""},
        "launch_buttons": {
            "colab_url": "https://colab.research.google.com",
            "notebook_interface": "classic",
        },
        "html": {"use_repository_button": True, "home_page_in_navbar": True},
        "parse": {"myst_enable_extensions": ["dollarmath", "amsmath"]},
        # recursive_update: merge these options into Jupyter Book's instead of replacing them
        "sphinx": {"config": sphinx, "recursive_update": True},
    }


def toc(chapters: list[str]) -> dict:
    """Jupyter Book's _toc.yml: the landing page, then every chapter in file-name order."""
    return {"format": "jb-book", "root": "index", "chapters": [{"file": c} for c in chapters]}


def build(
    out: Path = DEFAULT_OUT, notebooks: Path = ROOT / "notebooks", explorers: bool = True
) -> Path:
    """Copy the chapters next to the book's config in `out`, build, return the html folder.

    With `explorers`, each chapter that shows an explorer is run once to record its frames.
    """
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    chapters = []
    for path in sorted(notebooks.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if explorers:
            start = time.perf_counter()
            n = embed_explorers(path, nb)
            if n:
                took = time.perf_counter() - start
                print(f"{path.name}: {n} explorer(s) recorded in {took:.0f} s")
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = cell.source.replace(BADGE_IMAGE, "colab-badge.svg")
        nbformat.write(nb, src / "notebooks" / path.name)
        chapters.append(f"notebooks/{path.stem}")
    (src / "notebooks" / "colab-badge.svg").write_text(COLAB_BADGE, encoding="utf-8")
    shutil.copy(HERE / "index.md", src / "index.md")
    local_mathjax = bundle_mathjax(src / "_extra")
    if not local_mathjax:
        print("django-static-mathjax is not installed: the pages load MathJax from a CDN")
    (src / "_config.yml").write_text(json.dumps(config(local_mathjax), indent=1))
    (src / "_toc.yml").write_text(json.dumps(toc(chapters), indent=1))
    cli = "from jupyter_book.cli.main import main; main()"
    cmd = [sys.executable, "-c", cli, "build", str(src), "--path-output", str(out)]
    subprocess.run(cmd + ["--all", "--warningiserror", "--keep-going"], check=True)
    return out / "_build" / "html"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-explorers", action="store_true", help="do not record explorer frames")
    args = ap.parse_args(argv)
    html = build(args.out, explorers=not args.no_explorers)
    print(f"The book is in {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
