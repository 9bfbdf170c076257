"""juliapkg.json: valid, pinned to the real packages, and the shipped copy agrees."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
TOP = ROOT / "juliapkg.json"
SHIPPED = ROOT / "ude_bridge" / "juliapkg.json"

# The UUIDs as registered in Julia's General registry (each package's Project.toml).
# A typo here or in the file would install a different package or none.
KNOWN_UUIDS = {
    "OrdinaryDiffEq": "1dea7af3-3e70-54e6-95c3-0bf5283fa5ed",
    "SciMLBase": "0bca4576-84f4-4d90-8ffe-ffa030f20462",
    "SciMLSensitivity": "1ed8b502-d754-442c-8d5d-10ac956f44a1",
    "Zygote": "e88e6eb3-aa80-5325-afca-941959d7151f",
    "Enzyme": "7da242da-08ed-463a-9acd-ee780be4f1d9",
    "ChainRulesCore": "d360d2e6-b24c-11e9-a2a3-2a2ae2dbcce4",
    "StaticArrays": "90137ffa-7385-5640-81b9-e52037218182",
    "SpecialFunctions": "276daf66-3868-5448-9aa4-cd146d93841b",
    "DiffEqGPU": "071ae1c0-96b5-11e9-1965-c90190d839ea",
    "CUDA": "052768ef-5323-5732-b1bb-66c8b64840ba",
}

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_V = r"\d+(\.\d+){0,2}"
# Pkg's compat entries: caret (default), tilde, equality, hyphen range, inequality.
COMPAT_ENTRY = re.compile(rf"^(\^?{_V}|~{_V}|={_V}|{_V} - {_V}|(>=|<=|>|<|≥|≤) ?{_V})$")


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _is_compat(spec: str) -> bool:
    return all(COMPAT_ENTRY.match(entry.strip()) for entry in spec.split(","))


def test_top_level_and_shipped_juliapkg_json_are_identical():
    assert _load(TOP) == _load(SHIPPED)


def test_julia_compat_asks_for_the_lts_or_newer():
    assert _load(TOP)["julia"] == "^1.10"


@pytest.mark.parametrize("name", ["OrdinaryDiffEq", "SciMLSensitivity", "Zygote", "Enzyme"])
def test_the_packages_the_issue_requires_are_declared(name):
    assert name in _load(TOP)["packages"]


def test_every_package_has_its_registered_uuid_and_a_valid_compat_bound():
    data = _load(TOP)
    entries = {**data["packages"], **data["ude_bridge_optional_gpu"]}
    for name, entry in entries.items():
        assert UUID.match(entry["uuid"]), (name, entry["uuid"])
        assert entry["uuid"] == KNOWN_UUIDS[name], name
        assert "version" in entry, f"{name} has no compat bound"
        assert _is_compat(entry["version"]), (name, entry["version"])


def test_gpu_packages_are_optional_and_invisible_to_juliapkg():
    data = _load(TOP)
    # juliapkg reads only "julia" and "packages"; the GPU stack is opt-in (install_gpu()).
    assert {"DiffEqGPU", "CUDA"} <= set(data["ude_bridge_optional_gpu"])
    assert not {"DiffEqGPU", "CUDA"} & set(data["packages"])


@pytest.mark.parametrize(
    ("spec", "ok"),
    [("6.90", True), ("0.6.67, 0.7", True), ("^1.10", True), ("~1.10.2", True),
     ("=0.9.36", True), ("1.2 - 1.5", True), ("six", False), ("6.x", False), ("", False)],
)  # fmt: skip
def test_the_compat_checker_accepts_pkg_syntax_and_rejects_nonsense(spec, ok):
    assert _is_compat(spec) is ok


def test_julia_extra_pins_juliacall_exactly_with_pysr_and_diffeqpy():
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["julia"]
    names = {re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0] for req in extra}
    assert {"juliacall", "juliapkg", "pysr", "diffeqpy"} <= names
    juliacall = next(req for req in extra if req.startswith("juliacall"))
    assert re.fullmatch(r"juliacall==\d+\.\d+\.\d+", juliacall), juliacall
