"""ude_bridge: universal differential equations from Python.

Public names only; importing this package has no side effects (it never starts Julia).
"""

from .data import Trajectories as Trajectories
from .discover import Discovery as Discovery
from .discover import discover as discover
from .discover import library as library
from .errors import (
    BackendUnavailableError as BackendUnavailableError,
)
from .errors import (
    InputError as InputError,
)
from .errors import (
    SolveError as SolveError,
)
from .errors import (
    UdeBridgeError as UdeBridgeError,
)
from .errors import (
    UnknownMethodError as UnknownMethodError,
)
from .errors import (
    UnknownSymbolError as UnknownSymbolError,
)
from .model import MLP as MLP
from .model import UDE as UDE
from .model import Network as Network
from .problem import ODEProblem as ODEProblem

__version__ = "0.1.0"
from .solution import ODESolution as ODESolution
from .solve import solve as solve
from .train import FitResult as FitResult
from .train import fit as fit
from .train import load as load
