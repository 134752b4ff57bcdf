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
