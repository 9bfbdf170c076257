"""Method data for the torch engine: one module per family of explicit Runge-Kutta methods.

Each module holds frozen `ButcherTableau` constants (coefficients with their citation):
``basic`` (Euler, Midpoint, Heun, RK4), ``bs3`` (BS3), ``dp5`` (DP5), ``tsit5`` (Tsit5) and
``verner`` (Vern7, Vern9). `ude_bridge.solvers.registry` maps method names to them.
"""
