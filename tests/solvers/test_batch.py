"""Batches: per-trajectory step control gives each trajectory its solo accuracy."""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub
from tests.helpers import ADAPTIVE_METHODS, lotka_volterra


def lv_params(t, u, p):
    x, y = u[..., 0], u[..., 1]
    a, b, c, d = p.unbind(-1)
    return torch.stack([a * x - b * x * y, c * x * y - d * y], -1)


def test_batch_of_64_equals_64_single_solves():
    g = torch.Generator().manual_seed(1)
    u0 = 0.5 + 3 * torch.rand(64, 2, generator=g, dtype=torch.float64)
    ts = torch.linspace(0, 3, 7, dtype=torch.float64)
    batch = ub.solve(ub.ODEProblem(lotka_volterra, u0, (0, 3)), "Tsit5", saveat=ts)
    assert batch.u.shape == (64, 7, 2)
    singles = torch.stack(
        [ub.solve(ub.ODEProblem(lotka_volterra, u, (0, 3)), "Tsit5", saveat=ts).u for u in u0]
    )
    # same steps, same arithmetic order up to the batched matmul: agreement to round-off
    assert torch.allclose(batch.u, singles, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method", ADAPTIVE_METHODS)
def test_batched_solve_equals_per_sample_solves_for_every_method(method):
    u0 = torch.tensor([[0.44249296, 4.6280594], [1.0, 1.0], [3.0, 0.2]], dtype=torch.float64)
    ts = torch.tensor([0.0, 0.7, 2.0], dtype=torch.float64)
    batch = ub.solve(ub.ODEProblem(lotka_volterra, u0, (0, 2)), method, saveat=ts)
    for i in range(3):
        one = ub.solve(ub.ODEProblem(lotka_volterra, u0[i], (0, 2)), method, saveat=ts)
        assert torch.allclose(batch.u[i], one.u, rtol=1e-9, atol=1e-11)


def test_per_trajectory_parameters_of_shape_b_by_k_are_used_row_by_row():
    p = torch.tensor([[1.3, 0.9, 0.8, 1.8], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64)
    u0 = torch.tensor([[1.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    batch = ub.solve(ub.ODEProblem(lv_params, u0, (0, 2), p), saveat=[2.0])
    for i in range(2):
        one = ub.solve(ub.ODEProblem(lv_params, u0[i], (0, 2), p[i]), saveat=[2.0])
        assert torch.allclose(batch.u[i], one.u, rtol=1e-9)


def test_each_trajectory_in_a_batch_keeps_its_own_accuracy():
    # a fast and a slow trajectory: a shared step would over-resolve one of them; the
    # per-row error norm keeps both at their solo accuracy
    p = torch.tensor([[1.0], [8.0]], dtype=torch.float64)
    u0 = torch.ones(2, 1, dtype=torch.float64)
    f = lambda t, u, p: -p * u  # noqa: E731
    sol = ub.solve(ub.ODEProblem(f, u0, (0, 1), p), rtol=1e-6, atol=1e-12, saveat=[1.0])
    exact = torch.exp(-p)
    rel = ((sol.u[:, -1] - exact) / exact).abs()
    assert (rel < 1e-4).all()


def test_time_reaches_f_as_a_b_by_1_column_in_a_batch():
    seen = []

    def f(t, u, p):
        seen.append(tuple(t.shape))
        return torch.cos(t) * torch.ones_like(u)

    u0 = torch.zeros(3, 2, dtype=torch.float64)
    sol = ub.solve(ub.ODEProblem(f, u0, (0, 1)), saveat=[1.0])
    assert set(seen) == {(3, 1)}
    assert torch.allclose(
        sol.u[:, -1],
        torch.full((3, 2), torch.sin(torch.tensor(1.0)).item(), dtype=torch.float64),
        atol=1e-6,
    )


def test_float32_batches_stay_float32_and_accurate_to_their_precision():
    u0 = torch.tensor([[0.44249296, 4.6280594]] * 5, dtype=torch.float32)
    sol = ub.solve(ub.ODEProblem(lotka_volterra, u0, (0, 3)), saveat=[3.0], rtol=1e-5, atol=1e-5)
    assert sol.u.dtype == torch.float32
    ref = torch.tensor([1.606351205698, 0.067606042572])
    assert (sol.u[:, -1] - ref).abs().max() < 1e-3


def test_a_blow_up_in_one_trajectory_does_not_stop_the_others():
    p = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    f = lambda t, u, p: p * u**2  # noqa: E731  (u' = u^2 blows up at t = 1)
    u0 = torch.ones(2, 1, dtype=torch.float64)
    sol = ub.solve(ub.ODEProblem(f, u0, (0, 2), p), saveat=[0.5, 2.0])
    assert not sol.success
    assert sol.retcodes[1] == "Success" and sol.retcodes[0] != "Success"
    assert abs(sol.u[1, -1, 0].item() - 1 / 3) < 1e-5  # u = 1/(1+t)
    assert abs(sol.u[0, 0, 0].item() - 2.0) < 1e-5  # reached before the blow-up
    assert torch.isnan(sol.u[0, -1, 0])


# ---- dense output of a batch: sol(t) -------------------------------------------------
@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "BS3", "Rodas5P"])
def test_batch_dense_output_equals_each_rows_own_dense_output(method):
    # no saveat: dense output is kept; every row is interpolated on its own steps
    u0 = torch.tensor([[0.44249296, 4.6280594], [1.0, 1.0], [3.0, 0.2]], dtype=torch.float64)
    p = torch.tensor([[1.3, 0.9, 0.8, 1.8], [1.0, 1.0, 1.0, 1.0], [1.5, 1.0, 3.0, 1.0]])
    p = p.to(torch.float64)
    sol = ub.solve(ub.ODEProblem(lv_params, u0, (0.0, 3.0), p), method, rtol=1e-8, atol=1e-8)
    tq = torch.tensor([0.0, 0.37, 1.5, 2.99, 3.0], dtype=torch.float64)
    got = sol(tq)
    assert got.shape == (3, 5, 2) and sol(1.5).shape == (3, 2)
    for i in range(3):
        one = ub.solve(
            ub.ODEProblem(lv_params, u0[i], (0.0, 3.0), p[i]), method, rtol=1e-8, atol=1e-8
        )
        torch.testing.assert_close(got[i], one(tq), rtol=1e-9, atol=1e-11)


def test_batch_dense_output_agrees_with_saveat_and_carries_gradients():
    u0 = torch.tensor([[0.44249296, 4.6280594], [1.0, 1.0]], dtype=torch.float64)
    p = torch.tensor([[1.3, 0.9, 0.8, 1.8], [1.5, 1.0, 3.0, 1.0]], dtype=torch.float64)
    p.requires_grad_(True)
    tq = torch.tensor([0.25, 1.0, 2.5], dtype=torch.float64)
    prob = ub.ODEProblem(lv_params, u0, (0.0, 3.0), p)
    dense = ub.solve(prob, "Tsit5", rtol=1e-8, atol=1e-8)(tq)
    saved = ub.solve(prob, "Tsit5", saveat=tq, rtol=1e-8, atol=1e-8).u
    torch.testing.assert_close(dense, saved, rtol=1e-12, atol=1e-12)
    (g_dense,) = torch.autograd.grad(dense.square().sum(), p)
    (g_saved,) = torch.autograd.grad(saved.square().sum(), p)
    torch.testing.assert_close(g_dense, g_saved, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "Vern9"])
def test_batch_stats_count_every_evaluation_of_f_with_dense_output(method):
    # Vern7/Vern9 evaluate interpolation-only stages for the kept dense output
    calls = []

    def counted(t, u, p):
        calls.append(1)
        return lotka_volterra(t, u, p)

    u0 = torch.tensor([[0.44249296, 4.6280594], [1.0, 1.0]], dtype=torch.float64)
    sol = ub.solve(ub.ODEProblem(counted, u0, (0.0, 3.0)), method)
    assert sol.stats["nfev"] == len(calls)


@pytest.mark.parametrize(
    "saveat",
    [
        torch.linspace(0, 3, 101, dtype=torch.float64),
        torch.tensor([0.0, 1e-3, 0.5, 0.5 + 1e-6, 2.9, 3.0], dtype=torch.float64),
        torch.tensor([0.0, 1e-9, 3.0], dtype=torch.float64),  # too close: binary search
        torch.tensor([0.0, 1.0, 1.0, 3.0], dtype=torch.float64),  # repeated: binary search
    ],
)
def test_save_index_counts_save_times_like_searchsorted(saveat):
    from ude_bridge.solvers.batch_loop import _SaveIndex

    index = _SaveIndex(saveat, 3.0)
    g = torch.Generator().manual_seed(0)
    x = torch.cat(
        [
            torch.rand(4096, generator=g, dtype=torch.float64) * 3.0,
            saveat,  # exactly at the save times, and one ulp either side
            torch.nextafter(saveat, torch.full_like(saveat, -1.0)).clamp_min(0.0),
            torch.nextafter(saveat, torch.full_like(saveat, 4.0)),
            torch.tensor([0.0, 3.0 * (1 + 1e-14)], dtype=torch.float64),
        ]
    )
    assert torch.equal(index(x), torch.searchsorted(saveat, x, right=True))


def _forced_lv(t, u, p):
    """Lotka-Volterra with a time-dependent forcing: ``t`` reaches f as ``(B, 1)`` in a batch
    and as a scalar for one trajectory."""
    x, y = u[..., 0], u[..., 1]
    force = 0.1 * torch.sin(t.reshape(-1)) if u.dim() == 2 else 0.1 * torch.sin(t)
    return torch.stack([1.3 * x - 0.9 * x * y + force, 0.8 * x * y - 1.8 * y], -1)


@pytest.mark.parametrize("tspan", [(3.0, 0.5), (0.5, 3.0), (-1.0, 2.0)])
@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "Rodas5P"])
def test_a_batch_equals_single_solves_backwards_and_from_any_start(tspan, method):
    """Backward time, a start other than 0 and a non-autonomous f: each row of a batch is its
    own single solve (the batch loop hands f the row times itself only for t0 = 0 forwards)."""
    u0 = torch.tensor([[1.0, 0.5], [0.8, 1.2], [1.5, 0.3]], dtype=torch.float64)
    ts = torch.linspace(*tspan, 7, dtype=torch.float64)
    opts = {"saveat": ts, "rtol": 1e-9, "atol": 1e-9}
    batch = ub.solve(ub.ODEProblem(_forced_lv, u0, tspan), method, **opts).u
    single = torch.stack(
        [ub.solve(ub.ODEProblem(_forced_lv, u, tspan), method, **opts).u for u in u0]
    )
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-9)
