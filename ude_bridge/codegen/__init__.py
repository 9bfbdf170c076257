"""Code generation: a model as plain data (`SymbolicSystem`) and generators from it.

A leaf package: it depends on sympy and numpy only (``to_torch`` imports torch when it is
called). It knows nothing of `ude_bridge.model`.
"""

from .parse import parse_expression as parse_expression
from .system import NetworkSpec as NetworkSpec
from .system import ParameterSlot as ParameterSlot
from .system import SymbolicSystem as SymbolicSystem

__all__ = ["NetworkSpec", "ParameterSlot", "SymbolicSystem", "parse_expression"]
