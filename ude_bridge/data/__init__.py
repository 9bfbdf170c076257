"""Observed trajectories: the data that `fit` trains against.

A `Trajectories` holds R trajectories of the same n observed states, each on its own time grid:
``t[i]`` is ``(T_i,)`` float64 and ``u[i]`` is ``(T_i, n)``. NaN in ``u`` marks a missing value;
``mask[i]`` is True where a value was observed, so a loss can leave out what is missing, per
component. The states need not be all of a model's states: data with only ``x`` measured is
``states=("x",)``, and training matches columns to model states by name.

Data come from arrays, a long-format CSV (one row per time point, a column of trajectory ids),
an NPZ archive or a pandas DataFrame. Everything is checked once, when the object is made, and bad
data raise `InputError` naming the trajectory, row, line or column at fault.
"""

from .trajectories import Trajectories

__all__ = ["Trajectories"]
