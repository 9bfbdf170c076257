"""A UDE as plain data (for checkpoints, saved fits and run folders) and back.

The configuration holds what the ``UDE(...)`` call held (equations as text, parameter
values, networks' shapes); weights travel separately in ``state_dict()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import InputError
from .networks import MLP
from .ude import UDE

__all__ = ["model_config", "model_from_config"]


def model_config(model: UDE) -> dict[str, Any]:
    """A JSON-friendly description of ``model`` (without weights).

    Raises:
        InputError: the model holds something that cannot be described as data (a custom
            ``ub.Network`` module or a callable forcing input).
    """
    nets = []
    for net, name in zip(model.networks, model._net_names, strict=True):
        if not isinstance(net, MLP):
            raise InputError(
                f"model_config: network {name!r} is a custom module ({type(net).__name__}); "
                "only ub.MLP networks can be saved as configuration. Save its state_dict "
                "yourself and rebuild the model in code."
            )
        nets.append(
            {
                "inputs": [str(x) for x in net.inputs],
                "outputs": [str(x) for x in net.outputs],
                "hidden": list(net.hidden),
                "activation": net.activation,
                "name": name,
            }
        )
    inputs = {}
    for key, value in model._input_given.items():
        if callable(value):
            raise InputError(
                f"model_config: input {key!r} is a Python callable and cannot be saved; give it "
                "as data (times, values) instead."
            )
        times, values = value
        inputs[key] = [np.asarray(times, float).tolist(), np.asarray(values, float).tolist()]
    return {
        "equations": {str(s): str(e) for s, e in zip(model._states, model._equations, strict=True)},
        "params": {k: float(v) for k, v in model.parameters_dict().items()},
        "fixed": sorted(model.fixed),
        "positive": sorted(model.positive),
        "networks": nets,
        "inputs": inputs,
        "time": str(model._time),
        "dtype": str(model.dtype).replace("torch.", ""),
        "unused_outputs": sorted(model._unused_outputs),
    }


def model_from_config(cfg: dict[str, Any]) -> UDE:
    """Rebuild the `UDE` described by `model_config` (weights at their initial values)."""
    dtype = getattr(torch, cfg.get("dtype", "float64"))
    nets = [
        MLP(
            n["inputs"],
            n["outputs"],
            hidden=tuple(n["hidden"]),
            activation=n["activation"],
            name=n.get("name"),
            dtype=dtype,
        )
        for n in cfg.get("networks", [])
    ]
    inputs = {k: (np.asarray(v[0]), np.asarray(v[1])) for k, v in cfg.get("inputs", {}).items()}
    return UDE(
        cfg["equations"],
        params=cfg.get("params", {}),
        fixed=cfg.get("fixed", ()),
        network=nets or None,
        positive=cfg.get("positive", ()),
        inputs=inputs or None,
        states=list(cfg["equations"]),
        time=cfg.get("time", "t"),
        dtype=dtype,
        _unused_outputs=cfg.get("unused_outputs", ()),
    )
