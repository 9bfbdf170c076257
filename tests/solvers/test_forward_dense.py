"""The forward solution kept for the interpolating adjoint: the recorder wraps any method,
leaves the solve unchanged, and its dense output reproduces the solve's own save points."""

from __future__ import annotations

import pytest
import torch

from ude_bridge.backends.torch_backend import method_object
from ude_bridge.solvers.batch_loop import integrate_batch
from ude_bridge.solvers.forward_dense import DenseRecorder
from ude_bridge.solvers.loop import LoopOptions, integrate

F64 = torch.float64
CPU = torch.device("cpu")
TS = torch.linspace(0.0, 1.0, 7, dtype=F64)


def stiffish(t, u, p):
    x, y = u[..., 0:1], u[..., 1:2]
    return torch.cat([-p[0] * x + y * y, p[0] * x - 30.0 * y + 0.1 * torch.sin(t)], -1)


P = torch.tensor([200.0], dtype=F64)  # stiff enough for the composite to switch
# Vern7 fills interpolation-only stages; the composite keeps (member, stages) per step
METHODS = ["Rodas5P", "Tsit5", "Vern7", "AutoTsit5(Rosenbrock23)"]
OPTS = LoopOptions(rtol=1e-6, atol=1e-8)
DENSE = LoopOptions(rtol=1e-6, atol=1e-8, dense=True)


@pytest.mark.parametrize("method", METHODS)
def test_the_recorded_dense_output_of_one_trajectory_reproduces_its_save_points(method):
    u0 = torch.tensor([1.0, 0.5], dtype=F64)
    plain = integrate(method_object(method, F64, CPU), stiffish, P, u0, 0.0, 1.0, TS, DENSE)
    rec = DenseRecorder(method_object(method, F64, CPU))
    res = integrate(rec, stiffish, P, u0, 0.0, 1.0, TS, DENSE)
    assert torch.equal(res.u, plain.u)  # recording changes nothing
    dense = rec.solution(0.0, 1.0, u0.shape, res.t_reached)
    got = torch.stack([dense(float(t)) for t in TS])
    # the same continuous extension on the same steps: equal to round-off
    torch.testing.assert_close(got, res.u, rtol=1e-13, atol=1e-15)
    assert 0 < dense.step_size(0.5) < 1.0


@pytest.mark.parametrize("method", METHODS)
def test_the_recorded_dense_output_of_a_batch_follows_each_rows_own_steps(method):
    u0 = torch.tensor([[1.0, 0.5], [0.3, 0.2], [2.0, 0.0]], dtype=F64)
    rec = DenseRecorder(method_object(method, F64, CPU))
    res = integrate_batch(rec, stiffish, P, u0, 0.0, 1.0, TS, OPTS)
    dense = rec.solution(0.0, 1.0, u0.shape, res.t_reached)
    got = torch.stack([dense(float(t)) for t in TS], 1)
    torch.testing.assert_close(got, res.u, rtol=1e-13, atol=1e-15)
    # between save points: each row equals its own single-trajectory dense output
    tq = 0.4321
    for b in range(3):
        one = DenseRecorder(method_object(method, F64, CPU))
        r1 = integrate(one, stiffish, P, u0[b], 0.0, 1.0, TS, DENSE)
        d1 = one.solution(0.0, 1.0, u0[b].shape, r1.t_reached)
        # rows step independently but not identically to a lone solve: tolerance-level
        torch.testing.assert_close(dense(tq)[b], d1(tq), rtol=1e-4, atol=1e-6)
