"""Rosenbrock methods (stiff, linearly implicit): one step for any `RosenbrockTableau`.

`Rosenbrock` implements the method protocol the loops use (see `ude_bridge.solvers.method`).
Per step it builds the Jacobian $J$ (and $f_t$ when $f$ depends on $t$), factorises
$W = I - h\\gamma J$ once with `torch.linalg.lu_factor_ex`, and reuses the factorisation
for every stage (see `ude_bridge.solvers.rosenbrock_tableau` for the stage equations): for
small systems ($n \\le$ `INVERSE_MAX_N`) as $W^{-1}$, formed once from the LU factors, so
that a stage costs one matrix-vector product (on the CPU without a graph the inverse comes
from numpy, a third of the cost); for larger ones by `torch.linalg.lu_solve`.
For a batch ``(B, n)`` the Jacobians ``(B, n, n)`` and the factorisations are batched, and
every trajectory keeps its own ``t`` and ``h``.

$J$ comes from ``problem.jac``, the complex step, autograd or differences, chosen once per
solve (see `ude_bridge.solvers.jacobians`). It is reused after a rejected step (only $h$
changed), and for a non-FSAL method the next step's Jacobian is built as soon as a step is
accepted: its evaluation of ``f`` also gives the next first stage $f(t + h, y_1)$, one
evaluation saved per step. Under ``sensealg="backprop"`` every quantity keeps its graph, so
gradients through the solve are exact for the discrete scheme. Without a graph, the stages
run under `torch.inference_mode` when ``f`` allows it (see `_probe_inference`).

A small system ($n \\le$ `INVERSE_MAX_N`) on the CPU without a graph takes a lean path,
`Rosenbrock._step_np`: the same arithmetic in numpy on a buffer the stage tensor views,
$W^{-1}$ from LAPACK, since at this size every operation costs its dispatch (~1 us for
numpy, ~3.5 us for torch), not its flops; ``f`` still gets and returns tensors
(`torch.from_numpy` shares memory). When ``f`` is an equation model's generated right-hand
side and offers ``f.make_numpy()`` (`ude_bridge.codegen.to_numpy`: no networks, no inputs),
the stages, $J$ and $f_t$ come from that generated numpy code instead, and the torch ``f``
is not called inside a step: same formulas, same steps, ~4x less time per step on ROBER.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .jacobians import JacobianState, jacobian, jacobian_batch, time_derivative
from .method import horner_slots
from .rosenbrock_tableau import RosenbrockTableau

__all__ = ["Rosenbrock", "check_precision"]

Field = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]
F64 = torch.float64


def check_precision(dtype: torch.dtype, rtol: float, method: str, stacklevel: int = 4) -> None:
    """Warn when a stiff method runs in float32 at a tolerance float32 cannot honour.

    The linear systems of a stiff problem are ill-conditioned ($\\|hJ\\| \\gg 1$), so float32
    loses several digits in every solve; below ``rtol = 1e-5`` the step-size control then
    fights round-off.
    """
    if dtype in (torch.float32, torch.float16, torch.bfloat16) and rtol < 1e-5:
        warnings.warn(
            f"solve: stiff method {method!r} in {str(dtype).replace('torch.', '')} with "
            f"rtol={rtol:g}: stiff problems at tight tolerance need float64 (the linear "
            "solves lose digits); pass u0 as float64, or use rtol >= 1e-5.",
            UserWarning,
            stacklevel=stacklevel,
        )


#: a time derivative not computed yet (it needs the step size)
_PENDING = object()


# ---------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------


class Rosenbrock:
    """A Rosenbrock method ready for one dtype/device (see the module docstring).

    Attributes:
        tableau: the method's data. jac: the user's Jacobian, or None (autograd); set per
            solve with `bind`, since method objects are cached and shared.
    """

    stiff = True
    adaptive = True
    has_extra = False

    def __init__(self, tableau: RosenbrockTableau, dtype: torch.dtype, device: torch.device):
        tt = tableau.tensors(dtype, device)
        s = tableau.stages
        self.tableau = tableau
        self.name = tableau.name
        self.s = self.S = s
        self.fsal = tableau.fsal
        self.order = tableau.order
        self.error_order = min(tableau.order, tableau.embedded_order) + 1
        self.gamma = tt.gamma
        self.c, self.gd = tt.c, tt.gd
        # 1-D rows for torch.addmv (one trajectory), (1, i) rows for torch.mm (a batch)
        self.avec = [tt.A[i, :i].contiguous() for i in range(s)]
        self.gcvec = [tt.GC[i, :i].contiguous() for i in range(s)]
        self.arow = [tt.A[i : i + 1, :i].contiguous() for i in range(s)]
        self.gcrow = [tt.GC[i : i + 1, :i].contiguous() for i in range(s)]
        self.m, self.e = tt.m, tt.e
        self.mrow, self.erow = tt.m.view(1, -1), tt.e.view(1, -1)
        self.DT = tt.D.t().contiguous()  # (Q, s)
        self.Q = self.DT.shape[0]
        self.jac: Callable | None = None
        # the lean path's rows (see `_step_np`): CPU, float32/float64 only
        self.np_tab: _NumpyTableau | None = None
        if torch.device(device).type == "cpu" and dtype in (torch.float64, torch.float32):
            self.np_tab = _NumpyTableau(tt, s)

    def bind(self, jac: Callable | None) -> Rosenbrock:
        """A shallow copy using ``jac(t, u, p)`` for the Jacobian (None: autograd)."""
        if jac is None:
            return self
        new = copy.copy(self)
        new.jac = jac
        return new

    # ---- the method protocol (see solvers/method.py) --------------------------------
    def stages(self, k1: torch.Tensor, fresh: bool, st: Any = None) -> _RStages:
        """Stage storage for the next step, holding ``k1``.

        A reused ``(s, N)`` buffer with precomputed views, or, when ``fresh`` (autograd
        records the steps), a list of separate stage tensors stacked where combined: in-place
        writes into a buffer would tie every stage to one CopySlices node.
        """
        if fresh or st is None:
            # separate tensors only when autograd records the steps
            graph = fresh and torch.is_grad_enabled() and k1.requires_grad
            new = _RStages(k1, self.s, graph=graph)
            if st is not None:  # statistics and the Jacobian state live for the whole solve
                new.extra_counts, new.nsolve, new.jc = st.extra_counts, st.nsolve, st.jc
            # the lean path (see `_step_np`) for a small trajectory whose buffer is reused
            if not fresh and self.np_tab is not None and k1.dim() == 1:
                if 0 < k1.shape[0] <= INVERSE_MAX_N:
                    new.use_lean(self.np_tab, self.s)
            st = new
        st.k1 = k1
        return st

    def _jacobian(self, f: Field, p: Any, t: float, h: float, y: torch.Tensor, st: _RStages):
        """``(J, f_t)`` at ``(t, y)``, reused when built there already (see `step`)."""
        jc = st.jc
        # J is reused when it was built at this (t, y): by `next_k1`, or before a rejected
        # step (then only h changed). The loop passes back the very tensor y1 it got.
        if jc.y is not y:
            J, _, nf = jacobian(f, p, t, y, st.k1, jc, self.jac)
            jc.t, jc.y, jc.J, jc.ft = t, y, J, _PENDING
            _count(st, "njac", 1)
            _count(st, "nfev", nf)
        if jc.ft is _PENDING:
            if jc.autonomous:  # no f_t (inline: this runs every step)
                jc.ft = None
            else:
                jc.ft = time_derivative(f, p, t, h, y, st.k1, jc)
                _count(st, "nfev", jc.ft is not None)
        return jc.J, jc.ft

    def step(self, f: Field, p: Any, t: float, h: float, y: torch.Tensor, st: _RStages):
        """One step of one trajectory ``(n,)``: ``(y1, error estimate)``."""
        lean = st.lean
        if lean is not None:
            if lean.field is _UNSET:
                lean.resolve(f, p, self.jac)
            if lean.field is not None:  # an equation model's generated numpy functions
                with np.errstate(all="ignore"):
                    return self._step_np(f, p, t, h, y, st, *_jacobian_np(t, y, st))
        J, ft = self._jacobian(f, p, t, h, y, st)
        if st.jc.inference is None:
            _probe_inference(f, p, t, y, st)
        # the lean path reads J as an array: not one with a graph (a user's Jacobian can be)
        if st.lean is not None and not J.requires_grad:
            # numpy must not warn where torch is silent (a NaN step is simply rejected)
            Jn, ftl = J.numpy(), None if ft is None else ft.tolist()
            with np.errstate(all="ignore"):
                if _inference_ok(st):
                    with st.jc.inference_mode:
                        return self._step_np(f, p, t, h, y, st, Jn, ftl)
                return self._step_np(f, p, t, h, y, st, Jn, ftl)
        if _inference_ok(st):
            with st.jc.inference_mode:
                return self._step(f, p, t, h, y, st, J, ft)
        return self._step(f, p, t, h, y, st, J, ft)

    def _step(self, f: Field, p: Any, t: float, h: float, y, st: _RStages, J, ft):
        """The stages of `step`, given ``J`` and ``f_t``."""
        hg = h * self.gamma
        solve = _Solver.of_jacobian(J, hg, st.jc.eye)
        Wi = solve.Wi
        c, gd, avec, gcvec = self.c, self.gd, self.avec, self.gcvec
        graph, us, rows, KT = st.graph, st.us, st.rows, st.KT
        addmv, mv = torch.addmv, torch.mv
        fi = st.k1
        yi = y
        ti = None
        for i in range(self.s):
            if i:
                KTi = torch.stack(us, -1) if graph else KT[i]  # (n, i)
                yi = addmv(y, KTi, avec[i])
                if ti is None or c[i] != c[i - 1]:  # stages at one node share t
                    ti = torch.scalar_tensor(t + c[i] * h, dtype=F64)
                fi = f(ti, yi, p)
                rhs = addmv(fi, KTi, gcvec[i], beta=hg)
            else:
                rhs = fi * hg
            if ft is not None and gd[i] != 0.0:
                rhs = rhs.add(ft, alpha=gd[i] * h * h)
            if graph:
                us.append(solve(rhs))
            elif Wi is not None:
                mv(Wi, rhs, out=rows[i])
            else:
                solve(rhs, rows[i])
        st.nsolve += self.s
        st.f_last = fi
        KTs = torch.stack(us, -1) if graph else KT[self.s]
        y1 = yi if self.fsal else addmv(y, KTs, self.m)
        if not self.fsal:
            grad = torch.is_grad_enabled() and (y1.requires_grad or fi.requires_grad)
            # the last stage ran at t + h when c_s = 1: its time tensor serves the next J
            st.pending = (f, p, t + h, y1, grad, ti if self.c[-1] == 1.0 else None)
        return y1, mv(KTs, self.e)

    def _step_np(self, f: Field, p: Any, t: float, h: float, y, st: _RStages, J, ft):
        """`_step` in numpy, for a small system on the CPU without a graph; ``J`` an array,
        ``ft`` a list or None.

        Every combination of stages is one ``ndarray.dot`` with a row of coefficients, over
        the buffer ``Z`` of `_Lean`: rows $y$, $f_i$ (the stage just evaluated), $f_t$,
        then $u_0, \\dots, u_{s-1}$ (``st.K`` is a view of those rows, which the dense
        output reads). Stage $i$:

        $$ y_i = [1, 0, 0, \\alpha_{i,:i}] \\cdot Z_{:3+i}, \\qquad
           u_i = W^{-1}\\big([0, h\\gamma, h^2\\gamma d_i, \\gamma C_{i,:i}]
                 \\cdot Z_{:3+i}\\big). $$

        At $n \\le 32$ an operation costs its dispatch, not its flops: ~4k instructions
        for ``ndarray.dot`` against ~24k for ``torch.addmv`` (callgrind), so the three torch
        operations of a stage become two dots; vectors enter ``Z`` by ``tolist`` (cheaper
        than ``.numpy()`` at this size). Measured on Van der Pol and Robertson: ~40 % less
        solver overhead per step (the user's ``f`` excluded). ``f`` gets
        ``torch.from_numpy`` views of fresh arrays (never written afterwards: ``f`` may keep
        them) and a fresh float64 time tensor per node. The arithmetic is the torch path's,
        in another summation order.

        For an equation model, ``lean.field`` holds its generated numpy functions
        (`ude_bridge.codegen.to_numpy`): the stages then call those on the arrays directly,
        and ``f`` (torch) is not called in the step at all."""
        lean = st.lean
        Z, K, Zi, A, G, s, c = lean.Z, lean.K, lean.Zi, lean.A, lean.G, self.s, self.c
        hg = h * self.gamma
        Wi = _inverse_w(J, hg, Z.dtype)
        lean.set_step(hg, h * h, y.tolist(), ft)
        from_numpy, array = torch.from_numpy, np.array
        field = lean.field
        fi = st.k1
        Z[1] = fi.tolist()
        Wi.dot(G[0].dot(Zi[0]), K[0])
        yi = y
        ti = None
        for i in range(1, s):
            if field is not None:
                yi = A[i].dot(Zi[i])
                Z[1] = field.f(t + c[i] * h, yi, lean.pv)
            else:
                yi = from_numpy(A[i].dot(Zi[i]))
                if ti is None or c[i] != c[i - 1]:  # stages at one node share t
                    ti = from_numpy(array(t + c[i] * h))
                fi = f(ti, yi, p)
                Z[1] = fi.tolist()
            Wi.dot(G[i].dot(Zi[i]), K[i])
        st.nsolve += s
        if field is not None:
            yi = from_numpy(yi)
            fi = from_numpy(Z[1].copy()) if self.fsal else None
        st.f_last = fi
        Zs = Zi[s]
        if self.fsal:
            y1 = yi
        else:
            y1 = from_numpy(lean.m.dot(Zs))
            # the last stage ran at t + h when c_s = 1: its time tensor serves the next J
            st.pending = (f, p, t + h, y1, False, ti if c[-1] == 1.0 else None)
        return y1, from_numpy(lean.e.dot(Zs))

    def step_batch(self, f: Field, p: Any, t: torch.Tensor, h: torch.Tensor, y, st: _RStages):
        """One step of a batch ``(B, n)``; ``t`` float64 ``(B, 1)``, ``h`` ``(B, 1)``."""
        B, n = y.shape
        jc = st.jc
        J, nf = jacobian_batch(f, p, t, y, st.k1, jc, self.jac)
        jc.J, jc.y = J, None
        ft = time_derivative(f, p, t, h, y, st.k1, jc)
        _count(st, "njac", 1)
        _count(st, "nfev", nf + (ft is not None))
        hg = h * self.gamma  # (B, 1); h = 0 (a finished row) gives W = I and u = 0
        solve = _Solver(torch.addcmul(jc.eye, hg.unsqueeze(-1), J, value=-1.0), jc.eye)
        graph = st.graph
        yf = y.reshape(1, -1)
        ht = h.to(F64)
        h2 = h * h if ft is not None else None
        fi = st.k1
        yi = y
        for i in range(self.s):
            if i:
                Ki = torch.stack(st.us) if graph else st.K[:i]  # (i, B*n)
                yi = torch.addmm(yf, self.arow[i], Ki).view(B, n)
                fi = f(t + self.c[i] * ht, yi, p)
                rhs = torch.addcmul(torch.mm(self.gcrow[i], Ki).view(B, n), hg, fi)
            else:
                rhs = fi * hg
            if ft is not None and self.gd[i] != 0.0:
                rhs = torch.addcmul(rhs, h2, ft, value=self.gd[i])
            if graph:
                st.us.append(solve.batch(rhs).reshape(-1))
            else:
                st.K[i] = solve.batch(rhs).reshape(-1)
        st.nsolve += self.s
        st.f_last = fi
        st.pending = None
        K = st.K
        y1 = yi if self.fsal else torch.addmm(yf, self.mrow, K).view(B, n)
        return y1, torch.mm(self.erow, K).view(B, n)

    def next_k1(self, st: _RStages, have_extra: bool) -> torch.Tensor | None:
        """The next first stage $f(t + h, y_1)$: the last stage when FSAL; otherwise, for
        one trajectory whose Jacobian mode evaluates ``f`` on copies of $y_1$ (complex step,
        autograd), the next step's Jacobian is built now and gives $f(t + h, y_1)$ for free."""
        if self.fsal:
            return st.f_last
        lean = st.lean
        if lean is not None and lean.field not in (None, _UNSET) and st.pending is not None:
            t1, y1 = st.pending[2], st.pending[3]
            st.pending = None
            _count(st, "nfev", 1)
            return torch.from_numpy(np.array(lean.field.f(t1, y1.numpy(), lean.pv), lean.Z.dtype))
        jc = st.jc
        if st.pending is None or jc.mode not in ("complex", "copies") or self.jac is not None:
            return None
        f, p, t1, y1, graph, tt = st.pending
        st.pending = None
        if not graph and _inference_ok(st):
            with jc.inference_mode:
                J, fy, nf = jacobian(f, p, t1, y1, None, jc, None, graph, tt)
        else:
            J, fy, nf = jacobian(f, p, t1, y1, None, jc, None, graph, tt)
        _count(st, "njac", 1)
        _count(st, "nfev", nf)
        jc.t, jc.y, jc.J, jc.ft = t1, y1, J, _PENDING
        return fy

    def extra(self, f: Field, p: Any, t: Any, h: Any, y: torch.Tensor, st: _RStages) -> None:
        """No interpolation-only stages: the dense output uses the step's own stages."""

    def dense(self, theta: list[float], h: float, y, y1, st: Any) -> torch.Tensor:
        """``(M, n)``: $y + \\sum_i b_i(\\theta) u_i$ inside one step of one trajectory."""
        K = st.K
        pw = torch.tensor(
            [[th**q for q in range(1, self.Q + 1)] for th in theta], dtype=K.dtype, device=K.device
        )
        return torch.addmm(y.reshape(1, -1).expand(len(theta), -1), pw @ self.DT, K)

    def dense_slots(self, theta: torch.Tensor, h: torch.Tensor, y, y1, st) -> torch.Tensor:
        """``(M, B, n)`` dense output of a batch at float64 ``theta`` ``(M, B)``:
        $y_r + \\sum_q \\theta^q c_{q,r}$ by Horner, $c_q = \\sum_i D_{iq} u_i$ (one product)."""
        B, n = y.shape
        C = (self.DT @ st.K).view(self.Q, B, n)
        return horner_slots(C, y, theta)

    def keep(self, st: _RStages) -> torch.Tensor:
        """The stages, all the dense output needs of an accepted step (a copy of a reused
        buffer)."""
        return st.K if st.graph else st.K.clone()


#: up to this size W is inverted once per step and each stage costs one matrix-vector
#: product; above it, each stage is an `lu_solve` with the step's LU factors. For small
#: systems the per-call overhead of `lu_solve` (~25 us) dominates, and the explicit inverse
#: (formed from the same LU factorisation) has the same forward error bound,
#: $O(\kappa(W)\,\varepsilon)$ (Higham, *Accuracy and Stability*, Sec. 14.1).
INVERSE_MAX_N = 32


class _NumpyTableau:
    """The coefficients of `Rosenbrock._step_np` as numpy rows over its buffer ``Z`` (rows
    $y$, $f_i$, $f_t$, $u_0, \\dots$)."""

    __slots__ = ("A", "G", "m", "e", "gd")

    def __init__(self, tt: Any, s: int) -> None:
        dtype = tt.A.numpy().dtype
        # A[i] = [1, 0, 0, a_i], G[i] = [0, (h gamma), (h^2 gamma d_i), gamma C_i]: the
        # bracketed entries depend on h, filled per step (see `_Lean.set_step`)
        self.A = np.zeros((s, s + 3), dtype=dtype)
        self.G = np.zeros((s, s + 3), dtype=dtype)
        self.A[:, 0] = 1.0
        self.A[:, 3:] = tt.A.numpy()
        self.G[:, 3:] = tt.GC.numpy()
        self.m = np.concatenate([np.array([1.0, 0.0, 0.0], dtype=dtype), tt.m.numpy()])
        self.e = np.concatenate([np.zeros(3, dtype=dtype), tt.e.numpy()])
        self.gd = np.array(tt.gd, dtype=dtype)


class _Lean:
    """Per-solve buffers of `Rosenbrock._step_np`: ``Z`` ``(3 + s, n)`` (rows $y$, $f_i$,
    $f_t$, then the stages, ``K`` being a view of those), its leading blocks
    ``Zi[i] = Z[:3 + i]``, and the coefficient rows of `_NumpyTableau` cut to them."""

    __slots__ = ("Z", "K", "Zi", "A", "G", "Gfull", "m", "e", "gd", "has_ft", "field", "pv")

    def __init__(self, tab: _NumpyTableau, s: int, n: int) -> None:
        self.Z = np.zeros((s + 3, n), dtype=tab.A.dtype)
        self.K = self.Z[3:]
        self.Zi = [self.Z[: 3 + i] for i in range(s + 1)]
        self.Gfull = tab.G.copy()  # its h-dependent columns change per step
        self.A = [tab.A[i, : 3 + i] for i in range(s)]
        self.G = [self.Gfull[i, : 3 + i] for i in range(s)]
        self.m, self.e, self.gd = tab.m, tab.e, tab.gd
        self.has_ft = False
        #: an equation model's `NumpyField` and its parameter values (see `resolve`)
        self.field: Any = _UNSET
        self.pv: tuple = ()

    def resolve(self, f: Field, p: Any, jac: Callable | None) -> None:
        """Take ``f.make_numpy()`` (generated for an equation model with no networks or
        inputs: `ude_bridge.codegen.to_numpy`) for this solve when it describes this very
        problem: ``p`` is the model's parameter tuple, and the Jacobian is not the user's
        own (a ``problem.jac`` other than the model's generated one is kept, with ``f``)."""
        self.field = None
        make = getattr(f, "make_numpy", None)
        field = make() if make is not None else None
        if field is None:
            return
        if jac is not None:
            make_jac = getattr(f, "make_jac", None)
            if make_jac is None or make_jac() is not jac:
                return
        pv = field.bind(p, self.Z.dtype)
        if pv is not None:
            self.field, self.pv = field, pv

    def set_step(self, hg: float, h2: float, y: list, ft: list | None) -> None:
        """Load $y$, $f_t$ and the step's coefficients $h\\gamma$, $h^2\\gamma d_i$."""
        self.Z[0] = y
        self.Gfull[:, 1] = hg
        if ft is not None:
            self.Z[2] = ft
            np.multiply(self.gd, h2, out=self.Gfull[:, 2])
            self.has_ft = True
        elif self.has_ft:  # f_t gone (not expected within a solve): zero its column
            self.Gfull[:, 2] = 0.0
            self.has_ft = False


_UNSET = object()


def _jacobian_np(t: float, y: torch.Tensor, st: _RStages) -> tuple[np.ndarray, list | None]:
    """``(J, f_t)`` at ``(t, y)`` from the lean path's generated numpy functions (``J`` an
    array, ``f_t`` a list or None): exact, by sympy; reused when built at this ``y``."""
    jc, lean = st.jc, st.lean
    field = lean.field
    if jc.y is not y:
        yn = y.numpy()
        J = np.array(field.jac(t, yn, lean.pv), dtype=lean.Z.dtype)
        jc.t, jc.y, jc.J, jc.mode = t, y, torch.from_numpy(J), "numpy"
        jc.ft = None if field.ft is None else field.ft(t, yn, lean.pv)
        _count(st, "njac", 1)
    return jc.J.numpy(), jc.ft


@functools.cache
def _lapack_inverse(dtype: np.dtype, n: int) -> tuple[Any, Any, np.ndarray]:
    """LAPACK's ``getrf`` and ``getri`` for ``dtype``, and the ``(n, n)`` identity in Fortran
    order (scipy.linalg is imported on first use: ~0.4 s)."""
    from scipy.linalg import lapack

    getrf, getri = lapack.get_lapack_funcs(("getrf", "getri"), dtype=dtype)
    return getrf, getri, np.eye(n, dtype=dtype, order="F")


def _inverse_w(J: np.ndarray, hg: float, dtype: np.dtype) -> np.ndarray:
    """$W^{-1}$ for $W = I - h\\gamma J$, ``J`` ``(n, n)``, in ``dtype``: NaN when $W$ is
    exactly singular (NaN stages: the step is rejected).

    LAPACK's ``getrf``/``getri`` directly: ~2.5 us at $n = 3$ against ~8 us for
    `numpy.linalg.inv`, whose Python wrapper (checks, error state) costs more than the
    factorisation; the same algorithm, LU with partial pivoting. ``W`` is a new array
    (Fortran order, as the identity: LAPACK factorises it in place, no copy)."""
    n = J.shape[0]
    getrf, getri, eye = _lapack_inverse(np.dtype(dtype), n)
    lu, piv, info = getrf(eye - hg * J, overwrite_a=True)
    if info == 0:
        Wi, info = getri(lu, piv, overwrite_lu=True)
    if info != 0:
        return np.full((n, n), np.nan, dtype=dtype)
    return Wi


class _Solver:
    """Solves with one matrix ``W`` (``(n, n)``, or ``(B, n, n)`` for a batch), factorised once."""

    __slots__ = ("Wi", "LU", "piv")

    @classmethod
    def of_jacobian(cls, J: torch.Tensor, hg: float, eye: torch.Tensor) -> _Solver:
        """The solver of $W = I - h\\gamma J$ for one trajectory's ``J`` ``(n, n)``.

        A small ``J`` without a graph, on the CPU, is inverted by `_inverse_w` (LAPACK,
        LU with partial pivoting, the algorithm of the torch path): a few us against
        ~20 us for ``lu_factor_ex`` + ``lu_solve`` at ``n = 3``, paid once per step."""
        n = J.shape[-1]
        if (
            n > INVERSE_MAX_N
            or J.requires_grad
            or J.device.type != "cpu"
            or J.dtype not in (torch.float64, torch.float32)
        ):
            return cls(torch.add(eye, J, alpha=-hg), eye)
        Jn = J.numpy()
        new = cls.__new__(cls)
        new.Wi, new.LU, new.piv = torch.from_numpy(_inverse_w(Jn, hg, Jn.dtype)), None, None
        return new

    def __init__(self, W: torch.Tensor, eye: torch.Tensor) -> None:
        self.Wi = self.LU = self.piv = None
        if W.shape[-1] > INVERSE_MAX_N:
            self.LU, self.piv, _ = torch.linalg.lu_factor_ex(W)
        elif W.dim() == 2:
            LU, piv, _ = torch.linalg.lu_factor_ex(W)
            self.Wi = torch.linalg.lu_solve(LU, piv, eye)
        else:  # batched: one call (measured 3x faster than lu_factor_ex + lu_solve at n = 3)
            self.Wi = torch.linalg.inv_ex(W)[0]

    def __call__(self, rhs: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """$W^{-1}$ ``rhs`` for ``rhs`` ``(n,)``, written into ``out`` when given."""
        if self.Wi is not None:
            return torch.mv(self.Wi, rhs) if out is None else torch.mv(self.Wi, rhs, out=out)
        x = torch.linalg.lu_solve(self.LU, self.piv, rhs.unsqueeze(-1)).squeeze(-1)
        return x if out is None else out.copy_(x)

    def batch(self, rhs: torch.Tensor) -> torch.Tensor:
        """$W_b^{-1}$ ``rhs[b]`` for ``rhs`` ``(B, n)``: ``(B, n, 1)``."""
        if self.Wi is not None:
            return torch.bmm(self.Wi, rhs.unsqueeze(-1))
        return torch.linalg.lu_solve(self.LU, self.piv, rhs.unsqueeze(-1))


def _inference_ok(st: _RStages) -> bool:
    """Whether the stages may run under `torch.inference_mode` (see `_probe_inference`)."""
    return not st.graph and st.jc.inference is True and st.jc.mode in ("complex", "fd")


def _probe_inference(f: Field, p: Any, t: float, y: torch.Tensor, st: _RStages) -> None:
    """Decide once per solve whether the stages run under `torch.inference_mode`.

    The mode skips autograd's per-operation bookkeeping: ~10 % of the cost of a step of a
    small system, most of it in the user's ``f``. It needs: nothing recorded (no graph); a
    Jacobian mode that needs no autograd on the states, which are then inference tensors
    (the complex step, differences); and an ``f`` that works in the mode, checked here by
    one evaluation (counted in ``nfev``) that must reproduce $f(t, y)$ (an ``f`` that
    calls autograd itself, as an adjoint's augmented system does, fails). Inference tensors
    work as inputs to ordinary operations (the loop's norm, dense output); what the solve
    hands back is built outside the mode (``torch.cat``, dense output): ordinary tensors.
    """
    jc = st.jc
    if st.graph:
        return
    if jc.mode not in ("complex", "fd"):
        jc.inference = False
        return
    ok = False
    try:
        with torch.inference_mode():
            fy = f(torch.scalar_tensor(t, dtype=F64), y, p)
        k1 = st.k1
        ok = (
            isinstance(fy, torch.Tensor)
            and fy.shape == k1.shape
            and fy.dtype == k1.dtype
            and bool(torch.allclose(fy, k1, rtol=1e-12, atol=0.0, equal_nan=True))
        )
    except Exception:  # any failure in the mode: keep autograd's dispatch
        ok = False
    jc.inference = ok
    _count(st, "nfev", 1)


def _count(st: _RStages, key: str, v: int) -> None:
    st.extra_counts[key] = st.extra_counts.get(key, 0) + v


class _RStages:
    """The stages of one step and the solve's state (statistics, Jacobian cache).

    Buffer mode: ``K`` ``(s, N)`` reused across steps, with views ``rows[i]`` and
    ``KT[i] = K[:i].T``. Graph mode (autograd records the steps): the list ``us``.
    """

    __slots__ = (
        "graph",
        "_K",
        "rows",
        "KT",
        "us",
        "k1",
        "extra_counts",
        "nsolve",
        "jc",
        "f_last",
        "pending",
        "lean",
    )

    def __init__(self, k1: torch.Tensor, s: int, graph: bool) -> None:
        self.graph = graph
        self.us: list[torch.Tensor] = []
        if graph:
            self._K = None
            self.rows = self.KT = []
        else:
            K = torch.empty(s, k1.numel(), dtype=k1.dtype, device=k1.device)
            self._K = K
            self.rows = [K[i] for i in range(s)]
            self.KT = [K[:i].t() for i in range(s + 1)]
        self.k1: Any = k1
        self.f_last: Any = None
        self.pending: Any = None  # (f, p, t + h, y1, graph, t + h as a tensor or None)
        self.extra_counts: dict[str, int] = {}  # njac, nfev (Jacobians, f_t)
        self.nsolve = 0
        self.jc = JacobianState()
        self.lean: _Lean | None = None  # the buffers of `Rosenbrock._step_np`, if it runs

    @property
    def counts(self) -> dict[str, int]:
        """Statistics the loop adds to ``sol.stats``: ``njac``, ``nlinsolve``, and the
        evaluations of ``f`` made for Jacobians and time derivatives (``nfev``)."""
        return {**self.extra_counts, "nlinsolve": self.nsolve}

    @property
    def K(self) -> torch.Tensor:
        """All stages, ``(s, N)``."""
        return torch.stack(self.us) if self.graph else self._K

    def use_lean(self, tab: _NumpyTableau, s: int) -> None:
        """Switch to the buffers of `Rosenbrock._step_np`: ``K`` becomes a view of its
        ``Z`` (the torch path is still taken for a step it does not fit, as with a user
        Jacobian that has a graph)."""
        self.lean = _Lean(tab, s, self._K.shape[1])
        K = torch.from_numpy(self.lean.K)
        self._K = K
        self.rows = [K[i] for i in range(s)]
        self.KT = [K[:i].t() for i in range(s + 1)]
