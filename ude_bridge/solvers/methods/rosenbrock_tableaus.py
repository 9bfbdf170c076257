"""Rosenbrock methods for stiff problems: ``Rosenbrock23``, ``Rodas4``, ``Rodas5P``.

All three are linearly implicit: one LU factorisation of $I - h\\gamma J$ per step, one
linear solve per stage, no Newton iteration (see `ude_bridge.solvers.rosenbrock_tableau`
for the form the data are written in).

``Rosenbrock23``
    - Order 2 with an embedded order-3 solution for the error estimate (a "2(3)" pair),
      3 stages, FSAL (2 new evaluations of $f$ per step), L-stable, $\\gamma = 1/(2+\\sqrt 2)$.
    - Dense output: the paper's second-order interpolant.
    - Paper: L. F. Shampine and M. W. Reichelt, "The MATLAB ODE Suite", *SIAM J. Sci.
      Comput.* 18(1), 1-22 (1997), doi:10.1137/S1064827594276424 (MATLAB's ``ode23s``).
    - Coefficients: the paper gives the method as
      $W k_1 = f_0 + h d f_t$, $W(k_2 - k_1) = f(t + h/2, y + h k_1/2) - k_1$,
      $y_1 = y + h k_2$, $W k_3 = f(t+h, y_1) - e_{32}(k_2 - f_1) - 2(k_1 - f_0) + h d f_t$,
      error $\\frac{h}{6}(k_1 - 2k_2 + k_3)$, with $W = I - h d J$, $d = 1/(2+\\sqrt 2)$,
      $e_{32} = 6 + \\sqrt 2$. Eliminating $f_0$ and $f_1$ gives the classical form
      $\\alpha_{21} = 1/2$, $\\alpha_{32} = 1$, $\\gamma_{21} = -d$,
      $\\gamma_{31} = d(e_{32} - 2)$, $\\gamma_{32} = -e_{32} d$, $b = (0, 1, 0)$,
      $\\hat b = (1/6, 2/3, 1/6)$, and (derived here, by hand) the transformed data below.

``Rodas4``
    - Order 4, embedded order 3, 6 stages, not FSAL (6 new evaluations per step),
      stiffly accurate and L-stable, $\\gamma = 1/4$; dense output of order 3.
    - Book: E. Hairer and G. Wanner, *Solving Ordinary Differential Equations II*,
      2nd ed., Springer (1996), Sec. IV.7, the method of their code RODAS (``rodas.f``).
    - Coefficients: OrdinaryDiffEq.jl's ``Rodas4Tableau`` (all published digits), which
      gives RODAS's coefficient set in the same transformed form. The last two stages
      repeat the fifth row of ``a`` plus the previous stage:
      $y_1 = y + \\sum_{j\\le 4} a_{5j} u_j + u_5 + u_6$, error $u_6$.

``Rodas5P``
    - Order 5, embedded order 4, 8 stages, not FSAL, stiffly accurate and L-stable,
      $\\gamma \\approx 0.2119$; a fourth-order dense output (three rows of ``H``).
    - Paper: G. Steinebach, "Construction of Rosenbrock-Wanner method Rodas5P and
      numerical benchmarks within the Julia Differential Equations package", *BIT
      Numerical Mathematics* 63, 27 (2023), doi:10.1007/s10543-023-00967-x.
    - Coefficients: OrdinaryDiffEq.jl's ``Rodas5PTableau`` (the paper's method, all
      published digits). Stages 7 and 8 repeat row 6 of ``a`` plus the previous stages;
      $y_1 = y + \\sum_{j\\le 5} a_{6j} u_j + u_6 + u_7 + u_8$, error $u_8$.

The checks on construction (`RosenbrockTableau`) and the order conditions in
``tests/solvers/test_rosenbrock_tableau.py`` guard every digit typed here.
"""

from __future__ import annotations

import math

from ..rosenbrock_tableau import RosenbrockTableau

__all__ = ["RODAS4", "RODAS5P", "ROSENBROCK23", "STIFF_TABLEAUS"]


# ---- Rosenbrock23 ------------------------------------------------------------------------
_d = 1.0 / (2.0 + math.sqrt(2.0))
_e32 = 6.0 + math.sqrt(2.0)

ROSENBROCK23 = RosenbrockTableau(
    name="Rosenbrock23",
    order=2,
    embedded_order=3,
    gamma=_d,
    # a = alpha Gamma^{-1}, with Gamma^{-1} = (1/d) [[1, 0, 0], [1, 1, 0], [2, e32, 1]]
    a=((), (1 / (2 * _d),), (1 / _d, 1 / _d)),
    # C = diag(1/d) - Gamma^{-1}
    C=((), (-1 / _d,), (-2 / _d, -_e32 / _d)),
    c=(0.0, 0.5, 1.0),
    d=(_d, 0.0, -_d),
    # m = b Gamma^{-1}; the last stage is f(t + h, y1): FSAL
    m=(1 / _d, 1 / _d, 0.0),
    # m_hat = b_hat Gamma^{-1}, b_hat = (1/6, 2/3, 1/6)
    m_embedded=(7 / (6 * _d), (4 + _e32) / (6 * _d), 1 / (6 * _d)),
    # y(theta) = y + theta (1-theta)/(1-2d) h k1 + theta (theta-2d)/(1-2d) h k2, rewritten
    H=((0.0, -1 / (_d * (1 - 2 * _d)), 0.0),),
    dense_order=2,
)


# ---- Rodas4 ------------------------------------------------------------------------------
_R4_A5 = (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950)

RODAS4 = RosenbrockTableau(
    name="Rodas4",
    order=4,
    embedded_order=3,
    gamma=0.25,
    a=(
        (),
        (1.544000000000000,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        _R4_A5,
        (*_R4_A5, 1.0),
    ),
    C=(
        (),
        (-5.668800000000000,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (
            8.083246795921522,
            -7.981132988064893,
            -31.52159432874371,
            16.31930543123136,
            -6.058818238834054,
        ),
    ),
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.03620000000000023, 0.0, 0.0),
    m=(*_R4_A5, 1.0, 1.0),
    m_embedded=(*_R4_A5, 1.0, 0.0),
    H=(
        (
            10.12623508344586,
            -7.487995877610167,
            -34.80091861555747,
            -7.992771707568823,
            1.025137723295662,
            0.0,
        ),
        (
            -0.6762803392801253,
            6.087714651680015,
            16.43084320892478,
            24.76722511418386,
            -6.594389125716872,
            0.0,
        ),
    ),
    dense_order=3,
    # rodas.f prints 16 significant digits; sums of terms up to ~40 keep ~1e-14
    atol_check=1e-12,
)


# ---- Rodas5P -----------------------------------------------------------------------------
_R5P_A6 = (
    -7.502846399306121,
    2.561846144803919,
    -11.627539656261098,
    -0.18268767659942256,
    0.030198172008377946,
)

RODAS5P = RosenbrockTableau(
    name="Rodas5P",
    order=5,
    embedded_order=4,
    gamma=0.21193756319429014,
    a=(
        (),
        (3.0,),
        (2.849394379747939, 0.45842242204463923),
        (-6.954028509809101, 2.489845061869568, -10.358996098473584),
        (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
        _R5P_A6,
        (*_R5P_A6, 1.0),
        (*_R5P_A6, 1.0, 1.0),
    ),
    C=(
        (),
        (-14.155112264123755,),
        (-17.97296035885952, -2.859693295451294),
        (147.12150275711716, -1.41221402718213, 71.68940251302358),
        (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
        (
            24.854864614690072,
            -3.0009227002832186,
            47.4931110020768,
            5.5814197821558125,
            -0.6610691825249471,
        ),
        (
            30.91273214028599,
            -3.1208243349937974,
            77.79954646070892,
            34.28646028294783,
            -19.097331116725623,
            -28.087943162872662,
        ),
        (
            37.80277123390563,
            -3.2571969029072276,
            112.26918849496327,
            66.9347231244047,
            -40.06618937091002,
            -54.66780262877968,
            -9.48861652309627,
        ),
    ),
    c=(
        0.0,
        0.6358126895828704,
        0.4095798393397535,
        0.9769306725060716,
        0.4288403609558664,
        1.0,
        1.0,
        1.0,
    ),
    d=(
        0.21193756319429014,
        -0.42387512638858027,
        -0.3384627126235924,
        1.8046452872882734,
        2.325825639765069,
        0.0,
        0.0,
        0.0,
    ),
    m=(*_R5P_A6, 1.0, 1.0, 1.0),
    m_embedded=(*_R5P_A6, 1.0, 1.0, 0.0),
    H=(
        (
            25.948786856663858,
            -2.5579724845846235,
            10.433815404888879,
            -2.3679251022685204,
            0.524948541321073,
            1.1241088310450404,
            0.4272876194431874,
            -0.17202221070155493,
        ),
        (
            -9.91568850695171,
            -0.9689944594115154,
            3.0438037242978453,
            -24.495224566215796,
            20.176138334709044,
            15.98066361424651,
            -6.789040303419874,
            -6.710236069923372,
        ),
        (
            11.419903575922262,
            2.8879645146136994,
            72.92137995996029,
            80.12511834622643,
            -52.072871366152654,
            -59.78993625266729,
            -0.15582684282751913,
            4.883087185713722,
        ),
    ),
    dense_order=4,
    atol_check=1e-12,
)

#: name -> tableau, for the registry
STIFF_TABLEAUS = {t.name: t for t in (ROSENBROCK23, RODAS4, RODAS5P)}
