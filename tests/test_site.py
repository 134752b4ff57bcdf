"""The static site (`make site`): built offline from the stored outputs, every chapter present.

Checks each chapter's page exists, comes in reading order in the navigation, links to the previous
and next pages, shows every figure stored in the notebook (as image files that exist) and renders
its math with MathJax; in headless Chromium with the network cut off, every page loads without a
console error and every explorer's controls change its picture (frames recorded at build time).
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURE_TYPES = ("image/png", "image/svg+xml", "image/jpeg")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAX_SITE_MB = 50

pytestmark = [pytest.mark.site, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("jupyter_book") is None:
        pytest.skip("jupyter-book is not installed: pip install -r requirements.txt")
    spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build.build(tmp_path_factory.mktemp("site"))


def _figures(nb: nbformat.NotebookNode) -> int:
    """How many figures the notebook's stored outputs show (widget views excluded)."""
    return sum(
        any(t in out.get("data", {}) for t in FIGURE_TYPES)
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
    )


def test_index_lists_chapters_in_reading_order(site: Path):
    index = (site / "index.html").read_text(encoding="utf-8")
    found = re.findall(r'href="(notebooks/[^"#]+\.html)"', index)
    order = list(dict.fromkeys(found))  # first appearance of each page
    assert order == [f"notebooks/{p.stem}.html" for p in NOTEBOOKS]
    assert "mathjax" in index.lower()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_chapter_page(site: Path, path: Path):
    page = site / "notebooks" / f"{path.stem}.html"
    assert page.is_file(), f"no page for {path.name}"
    html = page.read_text(encoding="utf-8")
    nb = nbformat.read(path, as_version=4)

    title = next(c.source for c in nb.cells if c.cell_type == "markdown").split("\n")[0]
    assert title.startswith("# ")
    heading = re.sub(r"[*_`$]", "", title[2:]).strip()
    assert heading.split()[-1] in html, f"{page.name} lacks its title {heading!r}"

    # Navigation: previous/next links follow the reading order (index first).
    i = NOTEBOOKS.index(path)
    prev_page = "../index.html" if i == 0 else f"{NOTEBOOKS[i - 1].stem}.html"
    assert re.search(rf'class="left-prev"\s+href="{re.escape(prev_page)}"', html) or re.search(
        rf'href="{re.escape(prev_page)}"[^>]*class="left-prev"', html
    ), f"{page.name}: no link back to {prev_page}"
    if i + 1 < len(NOTEBOOKS):
        assert f'href="{NOTEBOOKS[i + 1].stem}.html"' in html, f"{page.name}: no next link"

    # Figures: one image per figure output, each file present and not empty.
    images = re.findall(r'<img[^>]+src="((?:\.\./)?_images/[^"]+)"', html)
    want = _figures(nb)
    assert len(images) >= want, f"{page.name} shows {len(images)} of {want} figures"
    for src in images:
        file = (page.parent / src).resolve()
        assert file.is_file() and file.stat().st_size > 0, f"{page.name}: missing {src}"

    # Math: the page loads MathJax and marks up every stretch of $...$ for it.
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    if re.search(r"\$[^$\n]+\$", markdown):
        assert "mathjax" in html.lower(), f"{page.name} does not load MathJax"
        assert 'class="math notranslate nohighlight"' in html, f"{page.name}: math not rendered"
        assert not re.search(r"<p>[^<]*\$[^$<\n]+\$", html), f"{page.name}: raw $...$ left"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by playwright (never `playwright install`), or a skip."""
    candidates = (os.environ.get("E2E_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser")
    chromium = next((c for c in candidates if c and Path(c).exists()), None)
    if chromium is None or importlib.util.find_spec("playwright") is None:
        pytest.skip("needs Debian's chromium and the playwright package (see tests/e2e)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
        browser = pw.chromium.launch(executable_path=chromium, args=args)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def offline_page(browser):
    """A page whose requests off the machine are refused; its console errors are collected."""
    page = browser.new_page()
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.route(re.compile(r"^https?://"), lambda route: route.abort())
    yield page
    page.close()


def test_math_renders_without_network(site: Path, offline_page):
    """MathJax ships with the site: in Chromium (no network needed) every formula is typeset."""
    assert (site / "mathjax" / "tex-mml-chtml.js").is_file(), "MathJax is not bundled"
    page = offline_page
    pages = [site / "index.html"] + [site / "notebooks" / f"{p.stem}.html" for p in NOTEBOOKS]
    for file in pages:
        page.goto(file.as_uri())
        n_math = page.locator(".math").count()
        if n_math:
            page.wait_for_function(
                "n => document.querySelectorAll('mjx-container').length >= n", arg=n_math
            )
            assert page.locator("mjx-merror").count() == 0, f"{file.name}: TeX errors"


def test_every_page_loads_without_console_errors(site: Path, offline_page):
    pages = [site / "index.html"] + [site / "notebooks" / f"{p.stem}.html" for p in NOTEBOOKS]
    for file in pages:
        offline_page.goto(file.as_uri(), wait_until="load")
        offline_page.wait_for_timeout(200)
        assert offline_page.errors == [], f"{file.name}: {offline_page.errors}"


def _stored_explorers(nb: nbformat.NotebookNode) -> int:
    """How many explorer boxes (a VBox widget view) the notebook's stored outputs show."""
    return sum(
        out["data"].get("text/plain", "").startswith("VBox(")
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if WIDGET_VIEW in out.get("data", {})
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_explorers_move_without_a_kernel(site: Path, offline_page, path: Path):
    """Each explorer is on the page with its controls; moving any of them swaps the picture."""
    page = offline_page
    page.goto((site / "notebooks" / f"{path.stem}.html").as_uri())
    boxes = page.locator(".static-explorer")
    want = _stored_explorers(nbformat.read(path, as_version=4))
    assert boxes.count() == want, f"{path.name}: {boxes.count()} of {want} explorers embedded"
    for b in range(want):
        box = boxes.nth(b)
        img = box.locator("img.sx-image")
        controls = box.locator("[data-control]:not([disabled])")
        assert controls.count() >= 1
        changed = 0
        for c in range(controls.count()):
            control = controls.nth(c)
            before_key, before_src = img.get_attribute("data-frame"), img.get_attribute("src")
            kind = control.evaluate("e => e.tagName + ':' + e.type")
            if kind == "INPUT:range":
                last = int(control.get_attribute("max"))
                target = 0 if int(control.input_value()) != 0 else last
                control.evaluate(
                    "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }", target
                )
            elif kind == "INPUT:checkbox":
                control.click()
            else:
                n = control.locator("option").count()
                current = int(control.input_value())
                control.select_option(index=(current + 1) % n)
            assert img.get_attribute("data-frame") != before_key, f"{path.name}: control {c}"
            changed += img.get_attribute("src") != before_src
        assert changed, f"{path.name}: explorer {b}: no control changed the picture"
    assert page.errors == []


def test_site_is_small(site: Path):
    total = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
    assert total < MAX_SITE_MB * 2**20, f"the site is {total / 2**20:.1f} MB"
