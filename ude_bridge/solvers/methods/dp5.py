"""Dormand-Prince 5(4): ``DP5``, with its own fourth-order continuous extension.

- Order 5, embedded order 4, 7 stages, FSAL (6 new stages per step).
- Explicit, for non-stiff problems; the pair behind ``ode45``, ``dopri5`` and scipy's ``RK45``.
- Dense output: the fourth-order continuous extension of the DOPRI5 code (no extra stage).

Paper: J. R. Dormand and P. J. Prince, "A family of embedded Runge-Kutta formulae",
*Journal of Computational and Applied Mathematics* 6(1), 19-26 (1980),
doi:10.1016/0771-050X(80)90013-3. Dense output: L. F. Shampine, "Some practical Runge-Kutta
formulas", *Mathematics of Computation* 46(173), 135-150 (1986), in the form of
E. Hairer, S. P. Nørsett and G. Wanner, *Solving Ordinary Differential Equations I*,
2nd ed., Springer 1993, Sec. II.6 and its code DOPRI5.

Coefficients: exact fractions as published (``b_embedded`` = the paper's $\\hat b$; the same
values appear in OrdinaryDiffEq.jl's ``DP5`` tableau as ``btilde`` = $\\hat b - b$, up to sign).
DOPRI5 writes its interpolant as

$$ y(\\theta) = y_0 + \\theta\\big(\\Delta + (1-\\theta)
   (r_3 + \\theta(r_4 + (1-\\theta) r_5))\\big), $$

where $\\Delta = y_1 - y_0$, $r_3 = h k_1 - \\Delta$, $r_4 = \\Delta - h k_7 - r_3$ and
$r_5 = h \\sum_i d_i k_i$, with $d = (-12715105075/11282082432, 0, 87487479700/32700410799,
-10690763975/1880347072, 701980252875/199316789632, -1453857185/822651844,
69997945/29380423)$; ``dense`` below is that polynomial expanded in powers of $\\theta$
(exact rational arithmetic).
"""

from fractions import Fraction as F

from ..tableau import ButcherTableau

__all__ = ["DP5"]

DP5 = ButcherTableau(
    name="DP5",
    order=5,
    a=(
        (),
        (F(1, 5),),
        (F(3, 40), F(9, 40)),
        (F(44, 45), F(-56, 15), F(32, 9)),
        (F(19372, 6561), F(-25360, 2187), F(64448, 6561), F(-212, 729)),
        (F(9017, 3168), F(-355, 33), F(46732, 5247), F(49, 176), F(-5103, 18656)),
        (F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84)),
    ),
    b=(F(35, 384), 0, F(500, 1113), F(125, 192), F(-2187, 6784), F(11, 84), 0),
    c=(0, F(1, 5), F(3, 10), F(4, 5), F(8, 9), 1, 1),
    b_embedded=(
        F(5179, 57600),
        0,
        F(7571, 16695),
        F(393, 640),
        F(-92097, 339200),
        F(187, 2100),
        F(1, 40),
    ),
    embedded_order=4,
    # b_i(theta) = sum_q dense[i][q-1] theta^q, q = 1..4
    dense=(
        (
            1,
            F(-8048581381, 2820520608),
            F(8663915743, 2820520608),
            F(-12715105075, 11282082432),
        ),
        (0, 0, 0, 0),
        (
            0,
            F(131558114200, 32700410799),
            F(-68118460800, 10900136933),
            F(87487479700, 32700410799),
        ),
        (
            0,
            F(-1754552775, 470086768),
            F(14199869525, 1410260304),
            F(-10690763975, 1880347072),
        ),
        (
            0,
            F(127303824393, 49829197408),
            F(-318862633887, 49829197408),
            F(701980252875, 199316789632),
        ),
        (
            0,
            F(-282668133, 205662961),
            F(2019193451, 616988883),
            F(-1453857185, 822651844),
        ),
        (0, F(40617522, 29380423), F(-110615467, 29380423), F(69997945, 29380423)),
    ),
    dense_order=4,
)
