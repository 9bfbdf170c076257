"""A stand-in for the ``UDEBridge`` Julia module, for testing the Python half without Julia.

It implements the calls `julia_backend` makes, with the same argument order, keyword names
and return shapes as ``julia/UDEBridge.jl`` documents, and returns arrays in Julia's
column-major layout (numpy Fortran order, ``(n, T)`` / ``(n, T, B)``) as juliacall would.
The right-hand side is the *generated Julia code*, run by the tree-sitter interpreter, and
integrated by scipy's DOP853 at tight tolerances; so a forward solve through the fake
checks code generation and array marshalling together against the torch engine.

Gradients are not computed: ``pullback`` returns fixed linear maps of ``ybar`` (see
`FakeUDEBridge.solve_and_pullback`) so that tests can check that every number lands in
the right slot of ``u0.grad`` and of each parameter tensor's ``.grad``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from .julia_subset import Array1, Interpreter

KEYWORDS = {"rtol", "atol", "dt", "adaptive", "max_steps", "dtmin"}


@dataclass
class FakeModel:
    interp: Interpreter
    nstates: int
    nparams: int

    def rhs(self, p: np.ndarray):
        f = self.interp["rhs!"]
        pa = Array1(np.asarray(p, dtype=float))

        def rhs(t, u):
            du = np.zeros(self.nstates)
            f(Array1(du), Array1(np.asarray(u, dtype=float)), pa, float(t))
            return du

        return rhs


@dataclass
class FakeUDEBridge:
    calls: list = field(default_factory=list)

    # -- models
    def load_model(self, code: str, name: str) -> FakeModel:
        self.calls.append("load_model")
        it = Interpreter(code)
        return FakeModel(it, int(it["N_STATES"]), int(it["N_PARAMETERS"]))

    # -- helpers
    def _check(self, model, u0, p, kw):
        assert set(kw) <= KEYWORDS | {"saveat", "dense", "ensemble", "sensealg", "vjp"}, kw
        assert np.shape(u0) == (model.nstates,), np.shape(u0)
        assert np.shape(p) == (model.nparams,), np.shape(p)

    def _integrate(self, model, u0, p, tspan, saveat, dense=False, kw=None):
        kw = kw or {}
        sol = solve_ivp(
            model.rhs(p), tspan, np.asarray(u0, dtype=float), method="DOP853",
            t_eval=None if saveat is None else np.asarray(saveat, dtype=float),
            rtol=1e-11, atol=1e-11, dense_output=dense,
        )  # fmt: skip
        return sol

    @staticmethod
    def _stats(sol):
        return {"nfev": int(sol.nfev), "naccept": 0, "nreject": 0, "nsteps": 0, "njac": 0,
                "nlinsolve": 0}  # fmt: skip

    # -- the UDEBridge API
    def solve_arrays(self, model, u0, p, tspan, method, *, saveat=None, dense=None, **kw):
        self.calls.append(("solve_arrays", method, kw))
        self._check(model, u0, p, kw)
        sol = self._integrate(model, u0, p, tspan, saveat, dense=bool(dense))
        return {
            "t": np.asarray(sol.t, dtype=float),
            "u": np.asfortranarray(sol.y),
            "retcode": "Success" if sol.success else "Failure",
            "success": bool(sol.success),
            "t_reached": float(sol.t[-1]),
            "stats": self._stats(sol),
            "solution": sol,
        }

    def interpolate(self, result, ts):
        return np.asfortranarray(result["solution"].sol(np.asarray(ts, dtype=float)))

    def solve_ensemble(self, model, U0, P, tspan, method, *, saveat, ensemble, **kw):
        self.calls.append(("solve_ensemble", method, ensemble, kw))
        U0 = np.asarray(U0)
        P = np.asarray(P)
        n, B = U0.shape
        out = np.zeros((n, len(saveat), B), order="F")
        for i in range(B):
            p = P if P.ndim == 1 else P[:, i]
            self._check(model, U0[:, i], p, kw)
            out[:, :, i] = self._integrate(model, U0[:, i], p, tspan, saveat).y
        return {
            "u": out,
            "retcodes": ["Success"] * B,
            "t_reached": np.full(B, float(tspan[1])),
            "stats": {"nfev": 1, "naccept": 0, "nreject": 0, "nsteps": 0, "njac": 0,
                      "nlinsolve": 0},
        }  # fmt: skip

    def solve_and_pullback(self, model, u0, p, tspan, method, saveat, *, sensealg, vjp, **kw):
        """``pullback(ybar) = (ybar.sum(axis=1), ybar.sum() * [1, 2, ..., np])``."""
        self.calls.append(("solve_and_pullback", method, sensealg, vjp, kw))
        self._check(model, u0, p, kw)
        sol = self._integrate(model, u0, p, tspan, saveat)
        nparams = model.nparams

        def pullback(ybar):
            ybar = np.asarray(ybar)
            assert ybar.shape == (model.nstates, len(saveat)), ybar.shape
            return ybar.sum(axis=1), ybar.sum() * np.arange(1.0, nparams + 1.0)

        return {
            "u": np.asfortranarray(sol.y),
            "retcode": "Success",
            "success": True,
            "t_reached": float(tspan[1]),
            "stats": self._stats(sol),
            "pullback": pullback,
        }

    def solve_and_pullback_batch(self, model, U0, P, tspan, method, saveat, **kw):
        """Per trajectory as `solve_and_pullback`; ``P̄`` summed when ``P`` is shared."""
        U0 = np.asarray(U0)
        P = np.asarray(P)
        n, B = U0.shape
        parts = [
            self.solve_and_pullback(
                model, U0[:, i], P if P.ndim == 1 else P[:, i], tspan, method, saveat, **kw
            )
            for i in range(B)
        ]
        U = np.zeros((n, len(saveat), B), order="F")
        for i, part in enumerate(parts):
            U[:, :, i] = part["u"]

        def pullback(Ybar):
            Ybar = np.asarray(Ybar)
            assert Ybar.shape == (n, len(saveat), B), Ybar.shape
            grads = [part["pullback"](Ybar[:, :, i]) for i, part in enumerate(parts)]
            dU0 = np.asfortranarray(np.stack([g[0] for g in grads], axis=1))
            if P.ndim == 1:
                dP = sum(g[1] for g in grads)
            else:
                dP = np.asfortranarray(np.stack([g[1] for g in grads], axis=1))
            return dU0, dP

        return {
            "u": U,
            "retcodes": ["Success"] * B,
            "t_reached": np.full(B, float(tspan[1])),
            "stats": parts[0]["stats"],
            "pullback": pullback,
        }

    def versions(self) -> dict[str, Any]:
        return {"julia": "fake", "threads": 1}
