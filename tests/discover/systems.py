"""Test systems for discovery: Lotka-Volterra data and UDEs whose 'network' is set by hand."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

import ude_bridge as ub
from ude_bridge.train import FitResult

#: The UDE paper's Lotka-Volterra set-up (Rackauckas et al. 2020): x' = ax - bxy, y' = cxy - dy.
LV = {"alpha": 1.3, "beta": 0.9, "gamma": 0.8, "delta": 1.8}
LV_U0 = (0.44249296, 4.6280594)


def lv_rhs(t, u, p=None):
    x, y = u[..., 0], u[..., 1]
    return torch.stack(
        [LV["alpha"] * x - LV["beta"] * x * y, LV["gamma"] * x * y - LV["delta"] * y], dim=-1
    )


@functools.lru_cache(maxsize=16)  # Trajectories are immutable; solves cost time
def lv_data(noise: float = 0.0, seed: int = 0, n: int = 21, t1: float = 5.0) -> ub.Trajectories:
    """LV on [0, t1] at n points, with Gaussian noise of ``noise`` times each state's mean."""
    t = torch.linspace(0.0, t1, n, dtype=torch.float64)
    u0 = torch.tensor(LV_U0, dtype=torch.float64)
    u = ub.solve(ub.ODEProblem(lv_rhs, u0, (0.0, t1)), saveat=t, rtol=1e-10, atol=1e-10).u
    rng = np.random.default_rng(seed)
    u = u + torch.as_tensor(noise * u.mean(0).numpy() * rng.standard_normal(tuple(u.shape)))
    return ub.Trajectories(t, u, states=["x", "y"])


def lv_paper_data(noise: float = 0.0, seed: int = 0) -> ub.Trajectories:
    """The UDE paper's LV data (Rackauckas et al. 2020): t in [0, 3] every 0.1, 31 points."""
    return lv_data(noise, seed, n=31, t1=3.0)


class Interaction(nn.Module):
    """A stand-in for a trained network: (x, y) -> (-0.9 xy, 0.8 xy) + a smooth error."""

    def __init__(self, error: float = 0.0) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.error = error

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x, y = z[..., 0], z[..., 1]
        bump = self.error * torch.sin(x) * torch.cos(0.7 * y)  # smooth, not in the library
        return torch.stack(
            [-LV["beta"] * x * y * self.scale + bump, LV["gamma"] * x * y - 0.5 * bump], dim=-1
        )


def lv_ude(network: nn.Module | None = None) -> ub.UDE:
    """The LV UDE with known linear parts (fixed) and the interactions as a network."""
    net = ub.Network(network or Interaction(), ["x", "y"], ["U1", "U2"])
    return ub.UDE(
        {"x": "alpha*x + U1", "y": "-delta*y + U2"},
        params={"alpha": LV["alpha"], "delta": LV["delta"]},
        fixed=("alpha", "delta"),
        network=net,
    )


def hand_result(error: float = 0.0, noise: float = 0.0) -> FitResult:
    """A `FitResult` as if `fit` had trained the LV UDE's network to the true interactions."""
    data = lv_data(noise)
    model = lv_ude(Interaction(error))
    u0 = data.first_observed()
    return FitResult(model, data, [], 0.0, u0, {"method": "Tsit5", "rtol": 1e-8, "atol": 1e-8})


#: A damped pendulum theta'' = -(g/L) sin(theta) - c theta', the friction -c*omega unknown.
PENDULUM = {"w2": 4.0, "c": 0.3}
PENDULUM_U0 = ((1.2, 0.0), (-0.6, 2.5), (2.0, -1.0))


def pendulum_rhs(t, u, p=None):
    theta, omega = u[..., 0], u[..., 1]
    return torch.stack([omega, -PENDULUM["w2"] * torch.sin(theta) - PENDULUM["c"] * omega], dim=-1)


@functools.lru_cache(maxsize=4)
def pendulum_data(noise: float = 0.0, seed: int = 0, n: int = 41, t1: float = 8.0):
    """Three swings of the damped pendulum, ``noise`` times each state's spread added."""
    t = torch.linspace(0.0, t1, n, dtype=torch.float64)
    u0 = torch.tensor(PENDULUM_U0, dtype=torch.float64)
    u = ub.solve(ub.ODEProblem(pendulum_rhs, u0, (0.0, t1)), saveat=t, rtol=1e-10, atol=1e-10).u
    rng = np.random.default_rng(seed)
    spread = u.reshape(-1, 2).std(0).numpy()
    u = u + torch.as_tensor(noise * spread * rng.standard_normal(tuple(u.shape)))
    return ub.Trajectories(t, u, states=["theta", "omega"])


class Friction(nn.Module):
    """A stand-in for a trained network: (theta, omega) -> -c*omega + a smooth error."""

    def __init__(self, error: float = 0.0) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.error = error

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        theta, omega = z[..., 0], z[..., 1]
        wobble = self.error * torch.tanh(omega) * torch.cos(theta)
        return (-PENDULUM["c"] * omega * self.gain + wobble).unsqueeze(-1)


def pendulum_ude(network: nn.Module | None = None) -> ub.UDE:
    """The pendulum with gravity known (w2 = g/L fixed) and the friction as a network."""
    net = network if network is not None else Friction()
    if not isinstance(net, ub.model.AbstractNetwork):
        net = ub.Network(net, ["theta", "omega"], ["F"])
    return ub.UDE(
        {"theta": "omega", "omega": "-w2*sin(theta) + F"},
        params={"w2": PENDULUM["w2"]},
        fixed=("w2",),
        network=net,
    )


def warm_start(model: ub.UDE, data: ub.Trajectories, iterations: int = 60) -> float:
    """Collocation pre-training of the networks (Roesch et al. 2021), so that a short `fit`
    suffices: the outputs recovered from spline derivatives of the data
    (`sample_derivatives`) are the targets of an L-BFGS fit of the networks alone, no solves.

    Returns:
        The final normalised loss.
    """
    from ude_bridge.discover.sampling import sample_derivatives

    samples = sample_derivatives(data, model)
    states = [str(s) for s in model.system().states]
    outputs = list(samples.outputs)
    t = torch.as_tensor(samples.variables["t"])
    u = torch.stack([torch.as_tensor(samples.variables[s]) for s in states], dim=-1)
    target = torch.stack([torch.as_tensor(samples.outputs[o]) for o in outputs], dim=-1)
    scale = target.std(dim=0)
    weights = [w for net in model.networks for w in net.weight_tensors()]
    opt = torch.optim.LBFGS(weights, max_iter=iterations, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        out = model.network_outputs(t, u)
        pred = torch.stack([out[o] for o in outputs], dim=-1)
        return (((pred - target) / scale) ** 2).mean()

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = loss()
        value.backward()
        return value

    opt.step(closure)
    with torch.no_grad():
        return float(loss())
