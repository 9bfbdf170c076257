"""The exception hierarchy of ude_bridge, and nothing else.

Every message follows one form: ``where: what was expected; what was found. How to fix it.``

```
UdeBridgeError
├── InputError(ValueError)          bad arguments, raised before any compute
│   ├── UnknownMethodError          a method name no backend knows
│   └── UnknownSymbolError          an equation uses an undeclared symbol
├── BackendUnavailableError(RuntimeError)   an optional backend is not installed
└── SolveError(RuntimeError)        a solve that could not finish, with throw=True
```
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendUnavailableError",
    "InputError",
    "SolveError",
    "UdeBridgeError",
    "UnknownMethodError",
    "UnknownSymbolError",
]


class UdeBridgeError(Exception):
    """Base class of every error ude_bridge raises on purpose."""


class InputError(UdeBridgeError, ValueError):
    """An argument a user gave is invalid (shape, value, type or name)."""


class UnknownMethodError(InputError):
    """A method name that the chosen backend does not provide."""


class UnknownSymbolError(InputError):
    """An equation references a symbol that was never declared."""


class BackendUnavailableError(UdeBridgeError, RuntimeError):
    """An optional backend (Julia, PySR) is not installed or cannot start."""


class SolveError(UdeBridgeError, RuntimeError):
    """A solve stopped before the end of ``tspan``.

    Attributes:
        solution: the partial solution, valid up to the time the solver reached.
    """

    def __init__(self, message: str, solution: Any = None) -> None:
        super().__init__(message)
        self.solution = solution
