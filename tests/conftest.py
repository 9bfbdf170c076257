"""Test configuration: float64 numerics, fixed seeds, and the markers' skip reasons."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

# one thread: a UDE's tensors are tiny, and on a busy 2-core machine torch's default thread
# pool made small forward/backward passes ~10x slower (measured by the CLI work)
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    yield


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="no CUDA device available"))
