"""Seeds and devices."""

import random

import numpy as np
import pytest
import torch

import helpers


def test_set_seed_makes_every_generator_repeat():
    g1 = helpers.set_seed(7)
    a = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g1))
    g2 = helpers.set_seed(7)
    b = (random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g2))
    assert a[0] == b[0] and a[1] == b[1]
    assert torch.equal(a[2], b[2]) and torch.equal(a[3], b[3])


def test_set_seed_rejects_non_integers():
    with pytest.raises(TypeError, match="seed"):
        helpers.set_seed(1.5)


def test_devices():
    assert helpers.cpu() == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert helpers.try_gpu().type == expected
    assert helpers.try_gpu(helpers.num_gpus()) == torch.device("cpu")  # one past the last GPU
    assert "GPU" in helpers.describe_device(torch.device("cpu"))


def test_one_supported_range_of_torch_and_python_in_every_project_file():
    import re
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parent.parent
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    spec = pyproject["tool"]["attention-book"]["torch"]  # e.g. ">=2.9,<3"
    low, below = re.fullmatch(r">=([\d.]+),<([\d.]+)", spec).groups()
    req = (root / "requirements.txt").read_text()
    assert re.search(r"^torch(\S*)", req, re.M).group(1) == spec, "requirements.txt"
    env = (root / "environment.yml").read_text()
    assert re.search(r"^\s*- pytorch(\S*)", env, re.M).group(1) == spec, "environment.yml"
    assert f"torch{spec}" in pyproject["project"]["dependencies"], "pyproject [project]"
    setup = (root / "tools" / "booksettings.py").read_text()
    assert "torch_bounds()" in setup and "torch_range()" in setup, "set-up cell template"
    assert helpers.utils._version_tuple(low) == helpers.utils.MIN_TORCH
    assert helpers.utils._version_tuple(below + ".0") == helpers.utils.TORCH_BELOW
    python = pyproject["project"]["requires-python"]  # ">=3.10,<3.14"
    py_low, py_below = re.fullmatch(r">=([\d.]+),<([\d.]+)", python).groups()
    assert helpers.utils._version_tuple(py_low) == helpers.utils.MIN_PYTHON
    make = (root / "Makefile").read_text()
    assert f"PYTHON_RANGE := {py_low} {py_below}" in make, "Makefile's Python check"
    assert re.search(r"python>=" + re.escape(py_low) + ",<" + re.escape(py_below), env)


def test_the_generated_set_up_cell_checks_the_torch_range(monkeypatch):
    import booksettings  # tools/ is on pytest's pythonpath

    assert booksettings.torch_bounds() == (helpers.utils.MIN_TORCH, helpers.utils.TORCH_BELOW)
    source = booksettings.setup_cell_source()
    cases = (("2.8.1", False), ("2.9.0", True), ("2.14.1+cu130", True), ("3.0.0", False))
    for version, ok in cases:
        monkeypatch.setattr(torch, "__version__", version)
        if ok:
            exec(source, {})
        else:
            with pytest.raises(RuntimeError, match=f"supports PyTorch >=2.9,<3, found {version}"):
                exec(source, {})


def test_book_setup_seeds_and_names_the_device(capsys):
    device = helpers.book_setup(seed=3)
    first = torch.rand(2)
    helpers.book_setup(seed=3)
    assert torch.equal(first, torch.rand(2))
    assert device == helpers.try_gpu()
    assert capsys.readouterr().out.strip().startswith("Running on")


def test_book_setup_refuses_an_old_torch(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.8.1+cpu")
    with pytest.raises(RuntimeError, match=r"PyTorch 2.9 or newer, below 3.0; found 2.8.1"):
        helpers.book_setup()
    monkeypatch.setattr(torch, "__version__", "3.0.0")
    with pytest.raises(RuntimeError, match=r"below 3.0; found 3.0.0"):
        helpers.book_setup()
