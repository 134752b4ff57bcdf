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


def test_minimum_versions_agree_with_the_project_files():
    import re
    from pathlib import Path

    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib

    root = Path(__file__).resolve().parent.parent
    req = (root / "requirements.txt").read_text()
    torch_floor = re.search(r"^torch>=([\d.]+)", req, re.M).group(1)
    assert helpers.utils._version_tuple(torch_floor) == helpers.utils.MIN_TORCH
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    python_floor = pyproject["project"]["requires-python"].removeprefix(">=")
    assert helpers.utils._version_tuple(python_floor) == helpers.utils.MIN_PYTHON


def test_book_setup_seeds_and_names_the_device(capsys):
    device = helpers.book_setup(seed=3)
    first = torch.rand(2)
    helpers.book_setup(seed=3)
    assert torch.equal(first, torch.rand(2))
    assert device == helpers.try_gpu()
    assert capsys.readouterr().out.strip().startswith("Running on")


def test_book_setup_refuses_an_old_torch(monkeypatch):
    monkeypatch.setattr(torch, "__version__", "2.1.2+cpu")
    with pytest.raises(RuntimeError, match="PyTorch 2.2 or newer, found 2.1.2"):
        helpers.book_setup()


def test_measure_peak_memory_sees_a_large_temporary_allocation():
    def allocate():
        x = torch.ones(64 * 2**20 // 4)  # 64 MB of float32, freed on return
        return float(x[0])

    seconds, mb = helpers.utils.measure_peak_memory(allocate)
    assert seconds > 0
    assert 32 <= mb < 1024


def test_measure_peak_memory_counts_an_allocation_that_reuses_freed_heap():
    # Many small tensors, freed: the C allocator keeps their pages resident for reuse. A large
    # allocation served from them raises no resident memory unless they are handed back first.
    small = [torch.ones(25_000) for _ in range(4000)]  # 100 KB each, 400 MB in all
    keep = torch.ones(10)  # sits above them in the heap, so freeing them cannot shrink it
    del small

    def allocate():
        x = torch.ones(64 * 2**20 // 4)
        return float(x[0])

    _, mb = helpers.utils.measure_peak_memory(allocate)
    assert float(keep[0]) == 1.0
    assert 32 <= mb < 1024
