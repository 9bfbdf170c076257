"""Julia for power users: diffeqpy's DifferentialEquations module, Julia's ``Main``, GPU setup.

Importing this module starts nothing; each function starts Julia on first use, through
`ude_bridge.backends.julia_runtime`, the one module that imports the Julia bridge.
Everything here needs the ``julia`` extra: ``pip install "ude-bridge[julia]"``.

Example:
    >>> import ude_bridge.julia as ubj
    >>> if ubj.is_available():  # doctest: +SKIP
    ...     de = ubj.de()  # DifferentialEquations.jl, as diffeqpy exposes it
    ...     prob = de.ODEProblem(lambda u, p, t: -u, 1.0, (0.0, 1.0))
    ...     sol = de.solve(prob)

Import order: on some platforms Julia must be loaded before torch; see
`~ude_bridge.backends.julia_runtime.JuliaImportOrderWarning` for what to do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .backends import julia_runtime as _backend
from .errors import BackendUnavailableError

__all__ = ["de", "install_gpu", "is_available", "main", "udebridge", "unavailable_reason"]


def is_available() -> bool:
    """Whether the Julia bridge packages are installed (checked without importing them)."""
    return _backend.is_available()


def unavailable_reason() -> str:
    """What is missing for Julia and how to install it ('' when nothing is)."""
    return _backend.unavailable_reason()


def main() -> Any:
    """Julia's ``Main`` module as Python sees it (starts Julia on first call)."""
    return _backend._start_julia("ude_bridge.julia.main()").Main


def udebridge() -> Any:
    """The loaded ``UDEBridge`` Julia module (see ``julia/UDEBridge.jl``)."""
    return _backend.udebridge("ude_bridge.julia.udebridge()")


def de() -> Any:
    """diffeqpy's ``de``: the DifferentialEquations.jl module, for direct use from Python.

    Raises:
        BackendUnavailableError: the julia extra or diffeqpy is not installed.
    """
    where = "ude_bridge.julia.de()"
    _backend.require_julia(where)
    if _backend._find_spec("diffeqpy") is None:
        raise BackendUnavailableError(
            f"{where}: diffeqpy must be installed to expose DifferentialEquations.jl; it is "
            f"not. {_backend.INSTALL_HINT}"
        )
    _backend._start_julia(where)
    from diffeqpy import de as module  # noqa: PLC0415 - starts Julia and loads the package

    return module


def install_gpu() -> None:
    """Add the Julia packages for GPU ensembles (DiffEqGPU, CUDA) to juliapkg's project.

    They are listed, with their UUIDs and compat bounds, under ``ude_bridge_optional_gpu``
    in ``juliapkg.json`` (a key juliapkg ignores, so a normal install skips them). This
    records them in juliapkg's own deps file and resolves (downloads and precompiles);
    restart Python afterwards. Batched solves then accept ``ensemble="gpu_array"`` or
    ``"gpu_kernel"``.
    """
    where = "ude_bridge.julia.install_gpu()"
    _backend.require_julia(where)
    import juliapkg  # noqa: PLC0415 - pure Python; resolve() runs Julia in a subprocess

    spec = json.loads((Path(__file__).parent / "juliapkg.json").read_text())
    for name, entry in spec["ude_bridge_optional_gpu"].items():
        juliapkg.add(name, entry["uuid"], version=entry["version"])
    juliapkg.resolve()
