"""Golden files: the generated Julia for two models is exactly the reviewed text.

A change to the generator shows up here as a diff to review; regenerate the files with
``UDE_BRIDGE_REGENERATE_GOLDEN=1 pytest tests/julia/test_julia_golden.py`` once it is right.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ude_bridge.codegen.to_julia import to_julia

from . import julia_models as jm

GOLDEN = Path(__file__).parent / "golden"
CASES = {
    "lotka_volterra.jl": lambda: jm.lotka_volterra(),
    "lv_ude.jl": lambda: jm.lv_ude(hidden=(3,), seed=0),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_julia_matches_its_golden_file(name):
    source = to_julia(CASES[name]()).source
    path = GOLDEN / name
    if os.environ.get("UDE_BRIDGE_REGENERATE_GOLDEN"):
        path.write_text(source)
    assert source == path.read_text(), f"generated Julia for {name} changed; review the diff"
