"""Method names -> method data, spelled as in DifferentialEquations.jl.

Lookup is exact-case; a case-insensitive hit becomes the "Did you mean" of the error.
"""

from __future__ import annotations

import importlib

from .._checks import did_you_mean
from ..errors import UnknownMethodError
from .tableau import ButcherTableau

__all__ = [
    "AUTO_SWITCH",
    "EXPLICIT",
    "FIXED_STEP",
    "STIFF",
    "explicit_tableau",
    "is_stiff",
    "method_names",
    "stiff_tableau",
]

#: explicit Runge-Kutta methods: name -> (module under solvers.methods, constant)
EXPLICIT: dict[str, tuple[str, str]] = {
    "Euler": ("basic", "EULER"),
    "Midpoint": ("basic", "MIDPOINT"),
    "Heun": ("basic", "HEUN"),
    "RK4": ("basic", "RK4"),
    "BS3": ("bs3", "BS3"),
    "DP5": ("dp5", "DP5"),
    "Tsit5": ("tsit5", "TSIT5"),
    "Vern7": ("verner", "VERN7"),
    "Vern9": ("verner", "VERN9"),
}

#: methods without an embedded error estimate: they need ``dt``
FIXED_STEP = ("Euler", "RK4")

#: stiff (Rosenbrock) methods: name -> (module under solvers.methods, constant)
STIFF: dict[str, tuple[str, str]] = {
    "Rosenbrock23": ("rosenbrock_tableaus", "ROSENBROCK23"),
    "Rodas4": ("rosenbrock_tableaus", "RODAS4"),
    "Rodas5P": ("rosenbrock_tableaus", "RODAS5P"),
}

#: automatic stiffness detection and switching: name -> (non-stiff, stiff) method names
AUTO_SWITCH: dict[str, tuple[str, str]] = {f"AutoTsit5({name})": ("Tsit5", name) for name in STIFF}


def method_names() -> tuple[str, ...]:
    """Every method name the torch engine provides."""
    return (*EXPLICIT, *STIFF, *AUTO_SWITCH)


def is_stiff(name: str) -> bool:
    """Whether ``name`` is a stiff method or a composite with a stiff member."""
    return name in STIFF or name in AUTO_SWITCH


def stiff_tableau(name: str, *, where: str = "solve"):
    """The `RosenbrockTableau` of stiff method ``name``.

    Raises:
        UnknownMethodError: the name is not a stiff method of the torch engine.
    """
    if name not in STIFF:
        raise UnknownMethodError(
            f"{where}: unknown stiff method {name!r} for backend 'torch'."
            + did_you_mean(name, tuple(STIFF), what="method").replace("Known methods", "Available")
        )
    module, const = STIFF[name]
    mod = importlib.import_module(f"{__package__}.methods.{module}")
    return getattr(mod, const)


def explicit_tableau(name: str, *, where: str = "solve") -> ButcherTableau:
    """The tableau of explicit method ``name``.

    Raises:
        UnknownMethodError: the name is not an explicit method of the torch engine.
    """
    if name not in EXPLICIT:
        raise UnknownMethodError(
            f"{where}: unknown method {name!r} for backend 'torch'."
            + did_you_mean(name, method_names(), what="method").replace(
                "Known methods", "Available"
            )
        )
    module, const = EXPLICIT[name]
    mod = importlib.import_module(f"{__package__}.methods.{module}")
    return getattr(mod, const)
