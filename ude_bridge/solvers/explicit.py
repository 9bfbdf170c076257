"""Explicit Runge-Kutta methods: one step for any `ButcherTableau`, as a function of tensors.

`ExplicitRK` implements the method protocol the loops use (see `ude_bridge.solvers.method`).

The step is pure: ``(t, h, y, k1) -> (y1, err, K)`` with the tableau as constants, static
shapes and no Python control flow on tensor values, so it can run eagerly, be compiled or be
differentiated. Stage combinations are one matrix product on the stacked stages
(``K`` has shape ``(S, N)`` with ``N = y.numel()``), not a Python sum of scaled tensors.

Two flavours of ``h``: a Python float (one trajectory, control in Python floats) or a
``(B, 1)`` tensor (a batch, each trajectory with its own step).

A batch keeps its stages multiplied by their row's step, $\\hat k_i = h\\,k_i$ (one
multiply as each stage is stored, in place of the copy): a stage argument is then one
`torch.addmm`, $y + \\hat K_{:i}^T a_i$, where $h$ per row would otherwise need a separate
product and an `torch.addcmul` pass, and the error estimate and the dense-output
coefficients need no scaling. ``f``'s own values for the next step's first stage are kept
aside (``raw``). A single trajectory keeps plain stages (its ``h`` is one scalar, folded
into `torch.addmv`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .method import horner_slots
from .tableau import ButcherTableau, TableauTensors

__all__ = [
    "ExplicitRK",
    "dense_eval",
    "extra_stages",
    "rk_step",
    "rk_step_scalar",
    "stage_slices",
]

Field = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


class ExplicitRK:
    """An explicit Runge-Kutta method ready for one dtype/device.

    Attributes:
        tableau: the method's data (with a Hermite interpolant filled in if it had none).
        tt: the tableau as tensors; ``rows[i]`` is ``A[i:i+1, :i]`` (a ``(1, i)`` view).
        extra0_is_next_k1: the first extra stage is $f(t+h, y_1)$, the next step's first stage.
    """

    def __init__(self, tableau: ButcherTableau, dtype: torch.dtype, device: torch.device) -> None:
        if tableau.dense is None:
            tableau = tableau.with_hermite()
        self.tableau = tableau
        self.tt: TableauTensors = tableau.tensors(dtype, device)
        A = self.tt.A
        self.rows = [A[i : i + 1, :i] for i in range(A.shape[0])]
        self.b = self.tt.b.view(1, -1)
        self.e = None if self.tt.e is None else self.tt.e.view(1, -1)
        # 1-D copies for torch.addmv / torch.mv in the one-trajectory step
        self.avec = [A[i, :i].contiguous() for i in range(A.shape[0])]
        self.bvec = self.tt.b.contiguous()
        self.evec = None if self.tt.e is None else self.tt.e.contiguous()
        self.s = tableau.stages
        self.S = A.shape[0]
        self.fsal = tableau.fsal
        self.order = tableau.order
        self.adaptive = tableau.adaptive
        self.error_order = (
            min(tableau.order, tableau.embedded_order or tableau.order) + 1
            if tableau.adaptive
            else tableau.order + 1
        )
        self.extra0_is_next_k1 = bool(
            tableau.extra_a
            and tableau.extra_c[0] == 1
            and list(self.tt.a_rows[self.s][: self.s]) == [float(x) for x in tableau.b]
        )
        D = self.tt.D
        self.Q = D.shape[1]
        self.DT = D.t().contiguous()  # (Q, S)
        self.name = tableau.name
        self.stiff = False

    # ---- the method protocol (see solvers/method.py) --------------------------------
    def stages(self, k1: torch.Tensor, fresh: bool, st: Any = None) -> _Stages:
        """A stage buffer whose row 0 holds ``k1`` (reused unless ``fresh``)."""
        N = k1.numel()
        if fresh:
            # autograd records the steps: stages stay separate tensors (stacked when
            # combined) -- in-place writes into a buffer would make every stage a
            # CopySlices node, measured ~20 % slower forward + backward
            return _GraphStages([k1 if k1.dim() == 1 else k1.reshape(-1)])
        if st is None:
            K = torch.empty(self.S, N, dtype=k1.dtype, device=k1.device)
            st = _Stages(K, *stage_slices(self, K))
        st.rows[0].copy_(k1.reshape(-1))
        return st

    def step(self, f: Field, p: Any, t: float, h: float, y: torch.Tensor, st: _Stages):
        """One step of one trajectory: ``(y1, error estimate)``."""
        if isinstance(st, _GraphStages):
            y1, err = _graph_step(self, f, p, t, h, y, st)
        else:
            y1, err = rk_step_scalar(self, f, p, t, h, y, (st.rows, st.KT))
        return y1, (None if err is None else err * abs(h))

    def step_batch(self, f: Field, p: Any, t: torch.Tensor, h: torch.Tensor, y, st: _Stages):
        """One step of a batch: ``t`` float64 ``(B, 1)``, ``h`` ``(B, 1)`` in the state dtype."""
        if isinstance(st, _GraphStages):
            return _graph_step(self, f, p, t, h, y, st)
        y1, err, _, st.raw[self.s - 1] = rk_step(self, f, p, t, h, y, st.K)
        return y1, err

    def next_k1(self, st: _Stages, have_extra: bool) -> torch.Tensor | None:
        """The next step's first stage if this step computed it, else None."""
        if self.fsal:
            i = self.s - 1
        elif have_extra and self.extra0_is_next_k1:
            i = self.s
        else:
            return None
        # a batch's stages are scaled by h: f's own value was kept aside
        return st.raw[i] if st.raw else st.stage(i)

    @property
    def has_extra(self) -> bool:
        """Whether dense output needs extra stage evaluations."""
        return self.S > self.s

    def extra(self, f: Field, p: Any, t, h, y: torch.Tensor, st: _Stages) -> None:
        """Fill the interpolation-only stages (floats or ``(B, 1)`` tensors for t, h)."""
        if isinstance(st, _GraphStages):
            _graph_stages(self, f, p, t, h, y, st, self.s, self.S)
        elif isinstance(h, torch.Tensor):
            st.raw[self.s] = extra_stages(self, f, p, t, h, y, st.K)
        else:
            extra_stages(self, f, p, t, h, y, st.K)

    def dense(self, theta: list[float], h: float, y, y1, st: _Stages) -> torch.Tensor:
        """``(M, n)`` values at ``theta`` inside the step of one trajectory."""
        return dense_eval(self, theta, h, y, st.K)

    def dense_slots(self, theta: torch.Tensor, h: torch.Tensor, y, y1, st):
        """``(M, B, n)`` dense output of a batch at float64 ``theta`` ``(M, B)`` (``M`` points
        per row): $y_r + \\sum_q \\theta^q c_{q,r}$ by Horner, with the per-row polynomial
        coefficients $c_q = \\sum_s d_{sq} \\hat k_s$ made by one matrix product (the
        stages $\\hat k_s = h k_s$ of a batch carry the step)."""
        B, n = y.shape
        C = torch.mm(self.DT, st.K).view(self.Q, B, n)
        return horner_slots(C, y, theta)

    def keep(self, st: _Stages) -> torch.Tensor:
        """What dense output over the whole solve must keep of this step (a copy of a
        reused buffer; recorded stages are separate tensors already)."""
        return st.K if isinstance(st, _GraphStages) else st.K.clone()


class _GraphStages:
    """Stages as separate flat tensors, for solves that autograd records."""

    __slots__ = ("ks", "counts", "raw")

    def __init__(self, ks: list[torch.Tensor]):
        self.ks = ks
        self.counts: dict[str, int] = {}
        #: a batch: f's own values of stages kept scaled in ``ks`` (see the module docstring)
        self.raw: dict[int, torch.Tensor] = {}

    @property
    def K(self) -> torch.Tensor:
        return torch.stack(self.ks)

    @property
    def k1(self) -> torch.Tensor:
        return self.ks[0]

    def stage(self, i: int) -> torch.Tensor:
        return self.ks[i]


def _graph_stages(m: ExplicitRK, f: Field, p: Any, t, h, y, st: _GraphStages, lo: int, hi: int):
    """Append stages ``lo..hi-1`` to ``st.ks``; returns the last stage argument.

    One trajectory (float ``t``, ``h``): stages are ``(n,)`` and each combination is one
    `torch.addmv` on the stacked stages, so autograd records two nodes per stage besides
    ``f``'s own. A batch: ``(B*n,)`` stages scaled by their row's ``h`` as they are made
    (``ks[0]`` when ``lo == 1``), each combination one `torch.addmm`.
    """
    shape = y.shape
    if not isinstance(h, torch.Tensor):
        yi = y
        for i in range(lo, hi):
            yi = torch.addmv(y, torch.stack(st.ks, 1), m.avec[i], alpha=h)
            ti = torch.scalar_tensor(t + m.tt.c[i] * h, dtype=torch.float64)
            st.ks.append(f(ti, yi, p))
        return yi
    yf = y.reshape(1, -1)
    hf = h.expand(shape).reshape(-1)
    ht = h.to(torch.float64)
    if lo == 1:
        st.ks[0] = st.ks[0] * hf
    yi = y
    for i in range(lo, hi):
        yi = torch.addmm(yf, m.rows[i], torch.stack(st.ks)).view(shape)
        fi = f(torch.add(t, ht, alpha=m.tt.c[i]), yi, p).reshape(-1)
        if i == m.s - 1 or i == m.s:
            st.raw[i] = fi.view(shape)
        st.ks.append(fi * hf)
    return yi


def _graph_step(m: ExplicitRK, f: Field, p: Any, t, h, y, st: _GraphStages):
    """`rk_step` for recorded solves (``t``, ``h`` floats for one trajectory).

    The error estimate is computed without autograd: step control needs no gradient.
    It is scaled by ``h`` for batches only (the caller scales it for one trajectory).
    """
    shape = y.shape
    scalar = not isinstance(h, torch.Tensor)
    yi = _graph_stages(m, f, p, t, h, y, st, 1, m.s)
    if m.fsal:
        y1 = yi
    elif scalar:
        y1 = torch.addmv(y, torch.stack(st.ks, 1), m.bvec, alpha=h)
    else:
        y1 = torch.addmm(y.reshape(1, -1), m.b, torch.stack(st.ks)).view(shape)
    err = None
    if m.e is not None:
        with torch.no_grad():
            if scalar:
                err = torch.mv(torch.stack(st.ks, 1), m.evec)
            else:
                err = torch.mm(m.e, torch.stack(st.ks)).view(shape)
    return y1, err


class _Stages:
    """The stage buffer ``K`` ``(S, N)`` of one solve and its precomputed views."""

    __slots__ = ("K", "rows", "KT", "counts", "raw")

    def __init__(self, K: torch.Tensor, rows: list[torch.Tensor], KT: list[torch.Tensor]):
        self.K, self.rows, self.KT = K, rows, KT
        self.counts: dict[str, int] = {}
        #: a batch: f's own values of stages kept scaled in ``K`` (see the module docstring)
        self.raw: dict[int, torch.Tensor] = {}

    @property
    def k1(self) -> torch.Tensor:
        """The step's first stage (row 0), valid after a rejected step."""
        return self.rows[0]

    def stage(self, i: int) -> torch.Tensor:
        """Stage ``i`` (a view into the buffer)."""
        return self.rows[i]


def stage_slices(m: ExplicitRK, K: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Views made once per ``(S, n)`` buffer (each view is a dispatch): rows ``K[i]`` and
    transposed leading blocks ``K[:i].T`` for `torch.addmv`."""
    return [K[i] for i in range(m.S)], [K[:i].t() for i in range(m.S + 1)]


def rk_step_scalar(
    m: ExplicitRK,
    f: Field,
    p: Any,
    t: float,
    h: float,
    y: torch.Tensor,
    views: tuple[list[torch.Tensor], list[torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step for one trajectory: ``y`` is ``(n,)``; ``t``, ``h`` are Python floats.

    Each stage is one `torch.addmv` on the stacked stages:
    $y_i = y + h\\,K_{:i}^T a_i$.

    Args:
        views: `stage_slices` of the ``(S, n)`` stage buffer whose row 0 already holds
            $k_1 = f(t, y)$; rows ``1..s-1`` are overwritten.

    Returns:
        ``y1`` and the *unscaled* error combination $\\sum (b_i - \\hat b_i) k_i$ (multiply
        by ``|h|`` for the error estimate), or None without an embedded method.
        The buffer holds the ``s`` main stages.
    """
    rows, KT = views
    c = m.tt.c
    a = m.avec
    yi = y
    for i in range(1, m.s):
        yi = torch.addmv(y, KT[i], a[i], alpha=h)
        rows[i].copy_(f(torch.scalar_tensor(t + c[i] * h, dtype=torch.float64), yi, p))
    if m.fsal:
        y1 = yi  # the last stage is evaluated at y1 itself
    else:
        y1 = torch.addmv(y, KT[m.s], m.bvec, alpha=h)
    err = None if m.evec is None else torch.mv(KT[m.s], m.evec)
    return y1, err


def rk_step(
    m: ExplicitRK,
    f: Field,
    p: Any,
    t: torch.Tensor,
    h: torch.Tensor,
    y: torch.Tensor,
    K: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """One step for a batch: ``y`` is ``(B, n)``, ``t`` float64 ``(B, 1)``, ``h`` ``(B, 1)``.

    Each stage is $y_i = y + \\hat K_{:i}^T a_i$ (one `torch.addmm`) on the stages scaled
    by their row's step, $\\hat k_i = h\\,k_i$.

    Args:
        K: a ``(S, B*n)`` stage buffer whose row 0 holds $k_1$ (unscaled; scaled here in
            place); rows ``1..s-1`` are overwritten.

    Returns:
        ``y1``, the error estimate $\\sum (b_i - \\hat b_i) \\hat k_i$ (None without an
        embedded method), ``K`` holding the ``s`` main stages times ``h``, and the last
        stage's own $f$ value (the next first stage of an FSAL method).
    """
    shape = y.shape
    yf = y.reshape(1, -1)
    # h spread over the flat (B*n) axis once: a (B, 1) factor broadcast over n = 2 is ~2x
    # slower
    hf = h.expand(shape).reshape(1, -1)
    ht = h.to(t.dtype)
    c = m.tt.c
    K[:1].mul_(hf)
    yi = y
    fi = K[0]
    for i in range(1, m.s):
        yi = torch.addmm(yf, m.rows[i], K[:i]).view(shape)
        fi = f(torch.add(t, ht, alpha=c[i]), yi, p)
        torch.mul(fi.reshape(1, -1), hf, out=K[i : i + 1])
    if m.fsal:
        y1 = yi
    else:
        y1 = torch.addmm(yf, m.b, K[: m.s]).view(shape)
    err = None
    if m.e is not None:
        err = torch.mm(m.e, K[: m.s]).view(shape)
    return y1, err, K, fi


def extra_stages(
    m: ExplicitRK,
    f: Field,
    p: Any,
    t: float | torch.Tensor,
    h: float | torch.Tensor,
    y: torch.Tensor,
    K: torch.Tensor,
) -> torch.Tensor:
    """Evaluate the extra (interpolation-only) stages into ``K[s:]``.

    ``t`` and ``h`` are floats for one trajectory (plain stages; returns ``K``), ``(B, 1)``
    tensors for a batch (stages scaled by ``h``, see `rk_step`; returns the first extra
    stage's own $f$ value).
    """
    shape = y.shape
    yf = y.reshape(1, -1)
    if not isinstance(h, torch.Tensor):
        for i in range(m.s, m.S):
            yi = torch.addmm(yf, m.rows[i], K[:i], alpha=h).view(shape)
            ti = torch.scalar_tensor(t + m.tt.c[i] * h, dtype=torch.float64)
            K[i] = f(ti, yi, p).reshape(-1)
        return K
    hf = h.expand(shape).reshape(1, -1)
    ht = h.to(t.dtype)
    first = None
    for i in range(m.s, m.S):
        yi = torch.addmm(yf, m.rows[i], K[:i]).view(shape)
        fi = f(torch.add(t, ht, alpha=m.tt.c[i]), yi, p)
        torch.mul(fi.reshape(1, -1), hf, out=K[i : i + 1])
        first = fi if first is None else first
    return first


def dense_eval(m: ExplicitRK, theta: list[float], h: float, y: torch.Tensor, K: torch.Tensor):
    """The interpolant at ``theta`` (M floats in [0, 1]) inside one step of one trajectory.

    Returns ``(M, N)``: $y + h \\sum_i b_i(\\theta) k_i$ with all ``S`` stages of ``K``.
    """
    pw = torch.tensor(
        [[th**q for q in range(1, m.Q + 1)] for th in theta], dtype=K.dtype, device=K.device
    )
    bt = torch.mm(pw, m.DT)
    return torch.addmm(y.unsqueeze(0).expand(len(theta), -1), bt, K, alpha=h)
