"""Fixtures for the Julia backend tests.

``fake_julia`` swaps the ``UDEBridge`` Julia module for `fake_udebridge.FakeUDEBridge` and
makes the backend believe juliacall is installed, so the Python half runs end to end here.
``julia_runtime`` is the real thing: tests that take it are skipped with the reason
"Julia runtime not available" unless juliacall is installed and Julia starts.
"""

from __future__ import annotations

import pytest
import torch

from ude_bridge.backends import julia_runtime as runtime
from ude_bridge.errors import BackendUnavailableError

from .fake_udebridge import FakeUDEBridge

JULIA_SKIP_REASON = "Julia runtime not available"


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def fake_julia(monkeypatch):
    """The backend wired to a fake UDEBridge module (no Julia)."""
    fake = FakeUDEBridge()
    monkeypatch.setattr(runtime, "_missing_packages", lambda: [])
    monkeypatch.setattr(runtime, "_STATE", {"module": fake, "models": {}})
    return fake


@pytest.fixture(scope="session")
def julia_runtime():
    """The real UDEBridge module; skips when Julia cannot be had here."""
    if not runtime.is_available():
        pytest.skip(JULIA_SKIP_REASON)
    try:
        return runtime.udebridge("tests")
    except BackendUnavailableError as exc:  # pragma: no cover - needs juliacall installed
        pytest.skip(f"{JULIA_SKIP_REASON}: {exc}")
