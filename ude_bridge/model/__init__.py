"""Models: `UDE` (equations + parameters + networks) and its neural terms `MLP`, `Network`."""

from .networks import MLP as MLP
from .networks import AbstractNetwork as AbstractNetwork
from .networks import Network as Network
from .ude import UDE as UDE

__all__ = ["MLP", "UDE", "AbstractNetwork", "Network"]
