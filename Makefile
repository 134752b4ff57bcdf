# `make lab` opens the book in JupyterLab; `make test` runs every test. Each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install lab test notebooks lint clean

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	touch $(STAMP)

lab: install
	$(VENV)/bin/jupyter lab notebooks/

test: install
	$(PY) -m pytest

notebooks: install  ## re-execute every notebook in a fresh kernel and store its outputs
	$(PY) tools/run_notebooks.py

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache
