"""Bogacki-Shampine 3(2): ``BS3``.

- Order 3, embedded order 2, 4 stages, FSAL (3 new stages per step).
- Explicit, for non-stiff problems; the method behind MATLAB's ``ode23``.
- Dense output: the cubic Hermite interpolant (``dense=None``; the engine applies
  `ButcherTableau.with_hermite`), third order, which uses only the FSAL stage.

Paper: P. Bogacki and L. F. Shampine, "A 3(2) pair of Runge-Kutta formulas",
*Applied Mathematics Letters* 2(4), 321-325 (1989), doi:10.1016/0893-9659(89)90079-7.

Coefficients: exact fractions as published in the paper (also in Hairer, Nørsett & Wanner,
*Solving ODEs I*, and in OrdinaryDiffEq.jl's ``BS3`` tableau, whose ``btilde`` = b - b̂ was
checked against these ``b_embedded``).
"""

from fractions import Fraction as F

from ..tableau import ButcherTableau

__all__ = ["BS3"]

BS3 = ButcherTableau(
    name="BS3",
    order=3,
    a=(
        (),
        (F(1, 2),),
        (0, F(3, 4)),
        (F(2, 9), F(1, 3), F(4, 9)),
    ),
    b=(F(2, 9), F(1, 3), F(4, 9), 0),
    c=(0, F(1, 2), F(3, 4), 1),
    b_embedded=(F(7, 24), F(1, 4), F(1, 3), F(1, 8)),
    embedded_order=2,
)
