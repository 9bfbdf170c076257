"""Classical low-order explicit Runge-Kutta methods (non-stiff).

- ``Euler``: order 1, one stage, fixed step.
- ``Midpoint``: explicit midpoint rule, order 2, with embedded Euler (order 1).
- ``Heun``: Heun's (explicit trapezoidal) method, order 2, with embedded Euler (order 1).
- ``RK4``: the classical fourth-order method of Kutta (1901), fixed step.

Dense output: the cubic Hermite interpolant (`ButcherTableau.with_hermite`).
Coefficients: Hairer, Nørsett & Wanner, *Solving Ordinary Differential Equations I*, 2nd ed.,
Springer 1993, Sec. II.1, Table 1.2 (RK4) and eq. (1.7)-(1.8); exact fractions.
"""

from fractions import Fraction as F

from ..tableau import ButcherTableau

EULER = ButcherTableau(name="Euler", order=1, a=((),), b=(1,), c=(0,))

MIDPOINT = ButcherTableau(
    name="Midpoint",
    order=2,
    a=((), (F(1, 2),)),
    b=(0, 1),
    c=(0, F(1, 2)),
    b_embedded=(1, 0),
    embedded_order=1,
)

HEUN = ButcherTableau(
    name="Heun",
    order=2,
    a=((), (1,)),
    b=(F(1, 2), F(1, 2)),
    c=(0, 1),
    b_embedded=(1, 0),
    embedded_order=1,
)

RK4 = ButcherTableau(
    name="RK4",
    order=4,
    a=((), (F(1, 2),), (0, F(1, 2)), (0, 0, 1)),
    b=(F(1, 6), F(1, 3), F(1, 3), F(1, 6)),
    c=(0, F(1, 2), F(1, 2), 1),
)
