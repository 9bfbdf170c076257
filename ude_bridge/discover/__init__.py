"""Discovery: trained networks -> equations (SINDy with pysindy's optimizers; PySR).

Public names: `discover`, `Discovery`, `Samples` and the term libraries `library`
(``ub.library.polynomial``, ``fourier``, ``custom``).
"""

from . import library as library
from .discover import Discovery as Discovery
from .discover import OutputFit as OutputFit
from .discover import ParetoPoint as ParetoPoint
from .discover import discover as discover
from .library import Library as Library
from .sampling import Samples as Samples

__all__ = ["Discovery", "Library", "OutputFit", "ParetoPoint", "Samples", "discover", "library"]
