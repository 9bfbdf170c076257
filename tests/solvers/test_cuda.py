"""The torch engine on CUDA gives the CPU's answers: explicit and Rosenbrock methods, single
and batched solves, dense output, both adjoints with a model's generated derivatives, and a
short fit. Skipped without a CUDA device (marked ``gpu``); float64 throughout, so the two
devices agree to round-off amplified by the step control (1e-9 relative)."""

from __future__ import annotations

import pytest
import torch

import ude_bridge as ub
from tests.helpers import LV_U0, lotka_volterra, rober

pytestmark = pytest.mark.gpu

F64 = torch.float64
TOL = {"rtol": 1e-8, "atol": 1e-10}


def _both(prob_of, method, **kw):
    """The same solve on the CPU and on CUDA: ``(cpu solution, cuda solution)``."""
    return tuple(ub.solve(prob_of(dev), method, **kw) for dev in ("cpu", "cuda"))


@pytest.mark.parametrize("method", ["Tsit5", "Vern7", "Rodas5P", "AutoTsit5(Rosenbrock23)"])
@pytest.mark.parametrize("batch", [False, True])
def test_solves_on_cuda_equal_the_cpu(method, batch):
    u0 = torch.tensor(LV_U0, dtype=F64)
    if batch:
        u0 = u0 * torch.linspace(0.5, 1.5, 8, dtype=F64)[:, None]
    ts = torch.linspace(0.0, 3.0, 31, dtype=F64)
    cpu, gpu = _both(
        lambda dev: ub.ODEProblem(lotka_volterra, u0.to(dev), (0.0, 3.0)),
        method,
        saveat=ts,
        dense=True,
        rtol=1e-8,
        atol=1e-10,
    )
    assert gpu.u.device.type == "cuda" and gpu.success
    torch.testing.assert_close(gpu.u.cpu(), cpu.u, **TOL)
    tq = torch.tensor([0.05, 1.234, 2.9], dtype=F64)
    torch.testing.assert_close(gpu(tq).cpu(), cpu(tq), **TOL)


def test_a_stiff_batch_on_cuda_equals_the_cpu():
    u0 = torch.tensor([1.0, 0.0, 0.0], dtype=F64).repeat(16, 1)
    u0[:, 0] = torch.linspace(0.5, 1.5, 16, dtype=F64)
    cpu, gpu = _both(
        lambda dev: ub.ODEProblem(rober, u0.to(dev), (0.0, 1e3)),
        "Rodas5P",
        saveat=[1.0, 1e3],
        rtol=1e-7,
        atol=1e-12,
    )
    torch.testing.assert_close(gpu.u.cpu(), cpu.u, rtol=1e-7, atol=1e-14)


def _ude(device, k2):
    model = ub.UDE(
        {"x": "-k1*x + U1", "y": "k1*x - k2*y + U2"},
        params={"k1": 5.0, "k2": k2},
        positive=("k2",),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(8,), activation="tanh", seed=1),
    )
    return model.to(device)


@pytest.mark.parametrize(
    ("method", "sensealg", "k2", "rtol"),
    [
        # the backsolve's gradient is exact to about its tolerance: the two devices' round-off
        # picks different steps, so they agree to that level, not to round-off
        ("Tsit5", "adjoint", 2.0, 1e-5),
        ("Rodas5P", "adjoint", 1000.0, 1e-6),
        ("Rodas5P", "backprop", 1000.0, 1e-6),
    ],
)
def test_gradients_of_a_model_on_cuda_equal_the_cpu(method, sensealg, k2, rtol):
    grads = []
    for dev in ("cpu", "cuda"):
        model = _ude(dev, k2)
        u0 = torch.tensor([[1.0, 0.0], [0.5, 0.2]], dtype=F64, device=dev)
        ts = torch.linspace(0.0, 0.5, 6, dtype=F64)
        sol = ub.solve(model.problem(u0, (0.0, 0.5)), method, saveat=ts, sensealg=sensealg, **TOL)
        (sol.u**2).sum().backward()
        grads.append([p.grad.cpu() for p in model.param_tensors() if p.requires_grad])
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(b, a, rtol=rtol, atol=1e-12)


def test_a_short_fit_on_cuda_lowers_the_loss():
    ts = torch.linspace(0.0, 2.0, 21, dtype=F64)
    truth = ub.solve(
        ub.ODEProblem(lotka_volterra, torch.tensor(LV_U0, dtype=F64), (0.0, 2.0)),
        "Vern9",
        saveat=ts,
        rtol=1e-10,
        atol=1e-10,
    ).u
    data = ub.Trajectories(ts, truth, states=["x", "y"]).to("cuda")
    model = ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": 1.3, "delta": 1.8},
        fixed=("alpha", "delta"),
        network=ub.MLP(["x", "y"], ["U1", "U2"], hidden=(16,), seed=0),
    ).to("cuda")
    res = ub.fit(model, data, optimizers=[("adam", 1e-2, 30)], progress=False, seed=0)
    losses = [h["loss"] for h in res.history]
    assert res.loss < 0.5 * losses[0]
    assert next(model.parameters()).device.type == "cuda"
