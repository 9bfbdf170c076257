"""Automatic stiffness detection: ``AutoTsit5(Rosenbrock23)`` and friends.

For users who do not know whether their problem is stiff. The solve starts with the explicit
method (``Tsit5``) and switches to the stiff one (``Rosenbrock23``, ``Rodas4`` or
``Rodas5P``) when the step size is limited by stability rather than accuracy; it switches
back when the problem stops being stiff. Named as in DifferentialEquations.jl
(``AutoTsit5(Rosenbrock23())``): ``method="AutoTsit5(Rosenbrock23)"``, or the object
``AutoTsit5("Rosenbrock23", maxstiffstep=...)``.

**Stiffness estimate.** After an explicit step, two stages evaluated at the same time
($c_i = c_j = 1$; Tsit5's stages 6 and 7, the second at $y_1$) give Hairer's estimate of the
dominant eigenvalue (Hairer & Wanner, *Solving ODEs II*, Sec. IV.2, as in DOPRI5):

$$ h|\\lambda| \\approx \\frac{\\|k_j - k_i\\|}{\\|\\sum_l (a_{jl} - a_{il}) k_l\\|}
   \\;=\\; h\\,\\frac{\\|f(Y_j) - f(Y_i)\\|}{\\|Y_j - Y_i\\|}. $$

The problem counts as stiff at that step when $h|\\lambda|$ exceeds ``stifftol`` times the
explicit method's real stability boundary (3.5 for Tsit5, computed from its tableau).
After a stiff step, $h\\|J\\|_\\infty$ (the Jacobian is at hand) is compared with
``nonstifftol`` times the same boundary. ``maxstiffstep`` consecutive stiff accepted steps
switch to the stiff method, ``maxnonstiffstep`` consecutive non-stiff ones switch back
(DifferentialEquations.jl's defaults: 10, 3, 9/10, 9/10). A batch switches as a whole: to
stiff when any trajectory is stiff, back when none is.

The composite follows the method protocol (`ude_bridge.solvers.method`); its attributes
(``s``, ``error_order``, ``fsal``, ...) are those of the member that takes the next step, so
one object is built per solve. ``sol.stats["nswitch"]`` counts the switches.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from ..errors import UnknownMethodError
from .method import Kept
from .registry import STIFF

__all__ = ["AutoSwitch", "AutoTsit5", "stability_boundary"]


class AutoTsit5(str):
    """``AutoTsit5(stiffalg)``: Tsit5 with automatic switching to a stiff method.

    The object *is* its method name (``"AutoTsit5(Rosenbrock23)"``, a ``str``), so it can be
    passed wherever a method name is accepted; it also carries the switching settings.

    Args:
        stiffalg: ``"Rosenbrock23"`` (default), ``"Rodas4"`` or ``"Rodas5P"``.
        maxstiffstep: consecutive stiff steps before switching to ``stiffalg``.
        maxnonstiffstep: consecutive non-stiff steps before switching back to Tsit5.
        stifftol, nonstifftol: fractions of Tsit5's stability boundary that count as stiff
            (explicit phase) and as non-stiff (stiff phase).

    Raises:
        UnknownMethodError: ``stiffalg`` is not a stiff method of the torch engine.
    """

    stiffalg: str
    maxstiffstep: int
    maxnonstiffstep: int
    stifftol: float
    nonstifftol: float

    def __new__(
        cls,
        stiffalg: Any = "Rosenbrock23",
        *,
        maxstiffstep: int = 10,
        maxnonstiffstep: int = 3,
        stifftol: float = 0.9,
        nonstifftol: float = 0.9,
    ) -> AutoTsit5:
        name = str(stiffalg)
        if name not in STIFF:
            raise UnknownMethodError(
                f"AutoTsit5: unknown stiff method {name!r}; choose one of {', '.join(STIFF)}."
            )
        for key, v in (("maxstiffstep", maxstiffstep), ("maxnonstiffstep", maxnonstiffstep)):
            if not isinstance(v, int) or v < 1:
                raise UnknownMethodError(f"AutoTsit5: {key} must be an integer >= 1; got {v!r}.")
        obj = super().__new__(cls, f"AutoTsit5({name})")
        obj.stiffalg = name
        obj.maxstiffstep, obj.maxnonstiffstep = maxstiffstep, maxnonstiffstep
        obj.stifftol, obj.nonstifftol = float(stifftol), float(nonstifftol)
        return obj

    def __repr__(self) -> str:
        return f"AutoTsit5({self.stiffalg!r})"


@lru_cache(maxsize=16)
def stability_boundary(a_rows: tuple, b: tuple) -> float:
    """Largest $r$ with $|R(-x)| \\le 1$ on $[0, r]$ for an explicit RK method.

    $R(z)$ is the stability function: one step of $y' = \\lambda y$, $y_0 = 1$, $z = h\\lambda$.
    """

    def R(z: float) -> float:
        Y: list[float] = []
        for row in a_rows:
            Y.append(1.0 + z * sum(a * Yj for a, Yj in zip(row, Y, strict=False)))
        return 1.0 + z * sum(bi * Yi for bi, Yi in zip(b, Y, strict=True))

    x, dx = 0.0, 0.01
    while x < 50.0 and abs(R(-(x + dx))) <= 1.0 + 1e-12:
        x += dx
    lo, hi = x, x + dx
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if abs(R(-mid)) <= 1.0 + 1e-12 else (lo, mid)
    return lo


class AutoSwitch:
    """A non-stiff explicit method and a stiff Rosenbrock method, switching automatically.

    Built once per solve (it keeps the switching state); see the module docstring.
    """

    adaptive = True
    stiff = True

    def __init__(
        self,
        name: str,
        nonstiff: Any,
        stiff: Any,
        *,
        maxstiffstep: int = 10,
        maxnonstiffstep: int = 3,
        stifftol: float = 0.9,
        nonstifftol: float = 0.9,
    ) -> None:
        self.name = str(name)
        self.methods = (nonstiff, stiff)
        self.maxstiffstep, self.maxnonstiffstep = maxstiffstep, maxnonstiffstep
        tab = nonstiff.tableau
        rows = tuple(tuple(float(x) for x in r) for r in tab.a)
        self.boundary = stability_boundary(rows, tuple(float(x) for x in tab.b))
        self.stiff_limit = stifftol * self.boundary
        self.nonstiff_limit = nonstifftol * self.boundary
        # two main stages at the same node (the last two with c = 1 for Tsit5, DP5)
        c = [float(x) for x in tab.c]
        pair = None
        for j in range(len(c) - 1, 0, -1):
            for i in range(j - 1, -1, -1):
                if c[i] == c[j] and c[j] > 0:
                    pair = (i, j)
                    break
            if pair:
                break
        self.pair = pair
        if pair is not None:
            A = nonstiff.tt.A
            i, j = pair
            self.dA = (A[j] - A[i]).contiguous()  # (S,): Y_j - Y_i = h * dA @ K
        self.which = 0
        self._count = 0
        self.nswitch = 0

    @classmethod
    def from_spec(cls, spec: str, nonstiff: Any, stiff: Any) -> AutoSwitch:
        """From a method name, or an `AutoTsit5` object carrying its settings."""
        kw = {}
        if isinstance(spec, AutoTsit5):
            kw = {
                "maxstiffstep": spec.maxstiffstep,
                "maxnonstiffstep": spec.maxnonstiffstep,
                "stifftol": spec.stifftol,
                "nonstifftol": spec.nonstifftol,
            }
        return cls(str(spec), nonstiff, stiff, **kw)

    # ---- attributes of the active member -----------------------------------------------
    @property
    def active(self) -> Any:
        return self.methods[self.which]

    @property
    def s(self) -> int:
        return self.active.s

    @property
    def S(self) -> int:
        return self.active.S

    @property
    def fsal(self) -> bool:
        return self.active.fsal

    @property
    def order(self) -> int:
        return self.active.order

    @property
    def error_order(self) -> int:
        return self.active.error_order

    @property
    def has_extra(self) -> bool:
        return self.active.has_extra

    # ---- the method protocol --------------------------------------------------------------
    def stages(self, k1: torch.Tensor, fresh: bool, st: Any = None) -> _AutoStages:
        if st is None:  # a new solve
            self.which, self._count, self.nswitch = 0, 0, 0
            st = _AutoStages(self)
        st.subs[self.which] = self.active.stages(k1, fresh, st.subs[self.which])
        return st

    def step(self, f, p, t: float, h: float, y: torch.Tensor, st: _AutoStages):
        sub = st.subs[self.which]
        y1, err = self.active.step(f, p, t, h, y, sub)
        st.hrho = self._stiffness(sub, h, y.shape)
        return y1, err

    def step_batch(self, f, p, t, h, y, st: _AutoStages):
        sub = st.subs[self.which]
        y1, err = self.active.step_batch(f, p, t, h, y, sub)
        st.hrho = self._stiffness(sub, h, y.shape)
        return y1, err

    def _stiffness(self, sub: Any, h: Any, shape) -> torch.Tensor | None:
        """$h|\\lambda|$ estimate of the step just taken (a tensor; one value per row)."""
        with torch.no_grad():
            if self.which == 0:
                if self.pair is None:
                    return None
                K = sub.K
                i, j = self.pair
                num = (K[j] - K[i]).view(shape)
                den = (self.dA @ K[: self.dA.shape[0]]).view(shape)
                r = torch.linalg.vector_norm(num, dim=-1) / torch.linalg.vector_norm(den, dim=-1)
                return torch.nan_to_num(r, nan=0.0, posinf=0.0)
            J = sub.jc.J
            if J is None:
                return None
            norm = J.detach().abs().sum(-1).amax(-1)
            hh = h.view(-1).abs() if isinstance(h, torch.Tensor) else abs(h)
            return norm * hh

    def next_k1(self, st: _AutoStages, have_extra: bool) -> torch.Tensor | None:
        k1 = self.active.next_k1(st.subs[self.which], have_extra)
        if st.hrho is not None:
            v = float(st.hrho.max())
            if self.which == 0:
                stiff_now = v > self.stiff_limit
                limit = self.maxstiffstep
            else:
                stiff_now = not (v < self.nonstiff_limit)
                limit = self.maxnonstiffstep
            # count consecutive accepted steps that call for the other method
            self._count = self._count + 1 if stiff_now == (self.which == 0) else 0
            if self._count >= limit:
                self.which = 1 - self.which
                self._count = 0
                self.nswitch += 1
        return k1

    def extra(self, f, p, t, h, y, st: _AutoStages) -> None:
        self.active.extra(f, p, t, h, y, st.subs[self.which])

    def dense(self, theta, h, y, y1, st: Any) -> torch.Tensor:
        if isinstance(st, _AutoStages):
            return self.active.dense(theta, h, y, y1, st.subs[self.which])
        which, K = st.K  # a step kept by `keep`
        return self.methods[which].dense(theta, h, y, y1, Kept(K))

    def dense_slots(self, theta, h, y, y1, st: _AutoStages) -> torch.Tensor:
        return self.active.dense_slots(theta, h, y, y1, st.subs[self.which])

    def keep(self, st: _AutoStages) -> tuple[int, Any]:
        return self.which, self.active.keep(st.subs[self.which])


class _AutoStages:
    """The members' stage objects, and the stiffness estimate of the last step."""

    __slots__ = ("owner", "subs", "hrho")

    def __init__(self, owner: AutoSwitch) -> None:
        self.owner = owner
        self.subs: list[Any] = [None, None]
        self.hrho: torch.Tensor | None = None

    @property
    def k1(self) -> torch.Tensor:
        return self.subs[self.owner.which].k1

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for sub in self.subs:
            if sub is not None:
                for key, v in sub.counts.items():
                    out[key] = out.get(key, 0) + v
        out["nswitch"] = self.owner.nswitch
        return out
