"""Model files in-process: resolving, defaults, messages with lines, writing back, runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from ude_bridge.cli.build import build_library
from ude_bridge.cli.config import (
    DEFAULTS,
    ConfigError,
    dump_config,
    load_config,
    resolve_config,
)
from ude_bridge.cli.runs import latest_run, prepare_run

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.toml")))
def test_a_resolved_config_written_back_loads_to_the_same(name, tmp_path):
    cfg = load_config(EXAMPLES / name)
    plain = {k: v for k, v in cfg.items() if not k.startswith("_")}
    again = tmp_path / "again.toml"
    again.write_text(dump_config(plain, header="round trip"))
    back = {k: v for k, v in load_config(again).items() if not k.startswith("_")}
    assert back == plain


def test_defaults_fill_every_table():
    cfg = resolve_config({"model": {"equations": {"x": "-x"}}})
    assert cfg["fit"] == DEFAULTS["fit"]
    assert cfg["discover"]["library"] == {"polynomial": 3}
    assert cfg["network"] == {} and cfg["model"]["time"] == "t"


def test_messages_name_the_line_of_the_key():
    text = '[model]\nequations = { x = "-x" }\n\n[fit]\nrtol = -1\n'
    with pytest.raises(ConfigError, match=r"\(line 5\): \[fit\] rtol: must be a number > 0"):
        resolve_config({"model": {"equations": {"x": "-x"}}, "fit": {"rtol": -1}}, text=text)


def test_a_missing_equations_key_is_named():
    with pytest.raises(ConfigError, match="missing key 'equations'"):
        resolve_config({"model": {"params": {}}})
    with pytest.raises(ConfigError, match=r"missing table \[model\]"):
        resolve_config({"fit": {}})


def test_library_parts_add_up():
    lib = build_library({"polynomial": 1, "terms": ["sin(x)"]}, ["x", "y"])
    assert lib.names == ("1", "x", "y", "sin(x)")
    lib = build_library({"fourier": 1, "variables": ["y"]}, ["x", "y"])
    assert lib.names == ("sin(y)", "cos(y)")


def test_paths_are_relative_to_the_model_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.toml"
    path.write_text('[model]\nequations = { x = "-x" }\n[data]\npath = "../d.csv"\n')
    assert load_config(path)["data"]["path"] == str((tmp_path / "d.csv").resolve())


def test_latest_run_finds_the_newest_run_of_a_model_file(tmp_path):
    model = tmp_path / "m.toml"
    model.write_text("")
    runs = tmp_path / "runs"
    for k, name in enumerate(["a", "b", "other"]):
        run = prepare_run(runs / name)
        source = model if name != "other" else tmp_path / "x.toml"
        run.save_record(model_file=str(source.resolve()))
        stamp = time.time() - 100 + 10 * k
        os.utime(run / "run.json", (stamp, stamp))
    assert latest_run(model, root=runs) == runs / "b"
    assert latest_run(tmp_path / "none.toml", root=runs) is None
    assert json.loads((runs / "b" / "run.json").read_text())["model_file"] == str(model.resolve())


def test_the_discover_table_knows_every_option_of_discover():
    from ude_bridge.cli.config import SCHEMA
    from ude_bridge.discover.discover import PYSR_OPTIONS, SINDY_OPTIONS

    missing = (set(SINDY_OPTIONS) | set(PYSR_OPTIONS)) - set(SCHEMA["discover"])
    assert not missing, f"[discover] does not accept {sorted(missing)}; add them to SCHEMA"
