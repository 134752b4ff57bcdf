# `make lab` opens the book in JupyterLab; `make test` runs every test. Each sets up .venv first.
# `make test-fast` skips the browser, static-site and output-rule suites (a few minutes less).
# `make site` builds the static HTML book; `make test-colab` re-runs the tests and notebooks with
# the ipywidgets/IPython/ipykernel versions Google Colab ships (in .venv-colab).
# PyTorch: on Linux without an NVIDIA GPU the CPU build (tools/install_torch.py); choose with
# `make lab TORCH=cpu` or `TORCH=cuda` (the default wheel). A torch already in the venv is kept.
PYTHON ?= python3
# Python versions the book supports: >= the first, < the second (pyproject's requires-python).
PYTHON_RANGE := 3.10 3.14
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

CHROMIUM ?= /usr/bin/chromium
COLAB_VENV ?= .venv-colab
COLAB_PY := $(COLAB_VENV)/bin/python
COLAB_STAMP := $(COLAB_VENV)/.installed
TORCH ?= auto
# d2l's own code is the reference some tests check the helpers against. Installed without its
# dependencies (it pins numpy 1.23.5, which does not install on Python >= 3.12); never imported
# by the book.
D2L := d2l==1.0.3

.PHONY: install lab test test-fast notebooks lint clean chromium site test-colab check-python

install: $(STAMP)

# One clear line, before anything is installed, when the interpreter is outside the range.
check-python:
	@$(PYTHON) -c 'import sys; lo, hi = (tuple(map(int, v.split("."))) for v in "$(PYTHON_RANGE)".split()); v = sys.version_info[:2]; sys.exit(0 if lo <= v < hi else "This book needs Python 3.10 to 3.13; $(PYTHON) is Python %d.%d. Choose another with: make PYTHON=python3.12 ..." % v)' \
		|| { command -v $(PYTHON) >/dev/null || echo "No $(PYTHON) found: install Python 3.10 to 3.13, or name one with make PYTHON=..."; exit 1; }

$(PY): | check-python
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml tools/install_torch.py | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) tools/install_torch.py --torch $(TORCH)
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps "$(D2L)"
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

# JupyterLab refuses to run as root unless told (containers often run as root).
LAB_ARGS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: install
	$(VENV)/bin/jupyter lab $(LAB_ARGS) notebooks/

# BOOK_REQUIRE_D2L: here d2l's reference code is installed, so its tests must run, not skip.
test: install chromium
	BOOK_REQUIRE_D2L=1 E2E_CHROMIUM="$(CHROMIUM)" $(PY) -m pytest

# Unit tests and every notebook (nbval), without the browser, static-site and output-rule suites.
test-fast: install
	BOOK_REQUIRE_D2L=1 $(PY) -m pytest -m "not browser and not site and not slow"

# Debian's Chromium for the browser tests (tests/e2e), installed when missing and possible (root
# or passwordless sudo with apt-get); otherwise those tests are skipped and say why.
chromium:
	@if [ -x "$(CHROMIUM)" ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "Installing Debian's chromium for the browser tests"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
			|| echo "Could not install chromium: the browser tests will be skipped."; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "Installing Debian's chromium for the browser tests"; \
		(sudo -n apt-get update -qq && sudo -n env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium) \
			|| echo "Could not install chromium: the browser tests will be skipped."; \
	else echo "No $(CHROMIUM) and no way to install it: the browser tests will be skipped."; fi

site: install  ## the static HTML book (stored outputs; explorers recorded in a kernel) -> _build/book/_build/html/index.html
	$(PY) book/build.py

$(COLAB_PY): | check-python
	$(PYTHON) -m venv $(COLAB_VENV)

$(COLAB_STAMP): requirements.txt pyproject.toml tools/install_torch.py .ci/colab-constraints.txt | $(COLAB_PY)
	$(COLAB_PY) -m pip install --upgrade pip
	$(COLAB_PY) tools/install_torch.py --torch $(TORCH)
	$(COLAB_PY) -m pip install -r requirements.txt -c .ci/colab-constraints.txt
	$(COLAB_PY) -m pip install --no-deps "$(D2L)"
	$(COLAB_PY) -m pip install --no-deps -e .
	touch $(COLAB_STAMP)

# The unit tests and every notebook (nbval, stored outputs compared), each notebook copied alone
# into an empty folder as Colab opens it; the browser and site tests run in `make test`.
test-colab: $(COLAB_STAMP)
	rm -rf _build/colab && mkdir -p _build/colab
	@for nb in notebooks/*.ipynb; do \
		[ -e "$$nb" ] || continue; \
		mkdir "_build/colab/$$(basename "$$nb" .ipynb)" && cp "$$nb" "_build/colab/$$(basename "$$nb" .ipynb)/"; \
	done
	BOOK_REQUIRE_D2L=1 $(COLAB_PY) -m pytest -m "not browser and not site and not slow" tests _build/colab

notebooks: install  ## re-execute every notebook in a fresh kernel and store its outputs
	$(PY) tools/run_notebooks.py

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) $(COLAB_VENV) .pytest_cache _build
