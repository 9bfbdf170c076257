"""The protocol every backend follows."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..problem import ODEProblem
from ..solution import ODESolution

__all__ = ["Backend", "SolveOptions"]

#: Keyword options `ude_bridge.solve` passes to every backend, already validated.
SolveOptions = dict[str, Any]


@runtime_checkable
class Backend(Protocol):
    """A solver backend.

    ``solve`` receives a validated problem, a method name the backend listed in
    ``methods()``, and validated options: ``saveat`` (a float64 ``(T,)`` tensor or None),
    ``rtol``, ``atol``, ``dt`` (None or float), ``adaptive`` (bool), ``max_steps`` (int),
    ``dtmin`` (float), ``dense`` (bool), ``throw`` (bool), ``sensealg`` (str).
    """

    name: str

    def is_available(self) -> bool:
        """Whether the backend can run here (its packages are importable)."""
        ...

    def unavailable_reason(self) -> str:
        """One sentence saying what is missing and how to install it ('' if available)."""
        ...

    def methods(self) -> tuple[str, ...]:
        """Method names this backend provides."""
        ...

    def solve(self, problem: ODEProblem, method: str, options: SolveOptions) -> ODESolution:
        """Solve ``problem`` with ``method``."""
        ...
