"""Training: `fit`, its losses, multiple shooting, checkpoints and `FitResult`."""

from .fit import fit as fit
from .result import FitResult as FitResult
from .result import load as load
