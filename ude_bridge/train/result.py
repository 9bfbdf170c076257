"""`FitResult`: the trained model, its history, and what a user does next with them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..model.serialize import model_config, model_from_config
from ..solve import solve
from .checkpoint import atomic_save

__all__ = ["FitResult", "load"]


@dataclass(eq=False)
class FitResult:
    """What `ude_bridge.fit` returns.

    Attributes:
        model: the trained `UDE` (parameters and networks at their final values).
        data: the training `Trajectories`.
        history: one dict per iteration: ``iteration, stage, optimizer, loss, val_loss,
            time, failed`` (``failed`` counts solver failures in that iteration).
        loss: the final training loss.
        u0: the initial conditions used per trajectory, ``(R, n)`` (learned or from data).
        options: the fit options (method, tolerances, sensealg, ...).
        failures: how many iterations had a failed solve.
    """

    model: Any
    data: Any
    history: list[dict[str, Any]]
    loss: float
    u0: torch.Tensor
    options: dict[str, Any] = field(default_factory=dict)
    failures: int = 0

    def predict(self, t: Any, u0: Any = None, *, trajectory: int = 0) -> torch.Tensor:
        """The model's solution at times ``t`` ``(T,)`` from ``u0`` (default: the fitted
        initial condition of ``trajectory``); returns ``(T, n)`` (or ``(B, T, n)``)."""
        ts = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
        if u0 is None:
            u0 = self.u0[trajectory]
        t0 = float(self.data.t[min(trajectory, len(self.data.t) - 1)][0])
        t1 = float(ts.max())
        if t1 <= t0:
            raise InputError(f"FitResult.predict: t must reach beyond t0={t0}; got max {t1}.")
        with torch.no_grad():
            prob = self.model.problem(u0, (t0, t1))
            sol = solve(
                prob,
                self.options.get("method", "Tsit5"),
                saveat=ts,
                rtol=self.options.get("rtol", 1e-6),
                atol=self.options.get("atol", 1e-6),
            )
        return sol.u

    def save(self, path: str | os.PathLike) -> None:
        """Write model configuration, weights, data, history and options (atomically)."""
        atomic_save(
            {
                "format": "ude_bridge.FitResult/1",
                "model_config": model_config(self.model),
                "state_dict": self.model.state_dict(),
                "data": {
                    "t": [x.cpu().numpy() for x in self.data.t],
                    "u": [x.cpu().numpy() for x in self.data.u],
                    "states": list(self.data.states),
                },
                "history": self.history,
                "loss": self.loss,
                "u0": self.u0.detach().cpu(),
                "options": {k: v for k, v in self.options.items() if _plain(v)},
                "failures": self.failures,
            },
            path,
        )

    def plot(self, path: str | os.PathLike | None = None, *, trajectory: int = 0):
        """Data vs fit per state and the loss curve (matplotlib); saved to ``path`` if given."""
        import matplotlib

        if path is not None:
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        t = self.data.t[trajectory]
        u = self.data.u[trajectory]
        tt = torch.linspace(float(t[0]), float(t[-1]), 200, dtype=torch.float64)
        pred = self.predict(tt, trajectory=trajectory).cpu().numpy()
        names = list(self.model.system().states)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        ax = axes[0]
        for i, name in enumerate(names):
            line = ax.plot(tt.numpy(), pred[:, i], label=f"{name} (fit)")[0]
            if str(name) in self.data.states:
                j = list(self.data.states).index(str(name))
                ax.plot(
                    t.numpy(),
                    u[:, j].numpy(),
                    "o",
                    color=line.get_color(),
                    ms=4,
                    label=f"{name} (data)",
                )
        ax.set_xlabel("t")
        ax.set_ylabel("state")
        ax.set_title("data vs fit")
        ax.legend()
        ax = axes[1]
        its = [h["iteration"] for h in self.history]
        ax.semilogy(its, [h["loss"] for h in self.history], label="training loss")
        vals = [
            (h["iteration"], h["val_loss"]) for h in self.history if h.get("val_loss") is not None
        ]
        if vals:
            ax.semilogy(*zip(*vals, strict=True), label="validation loss")
        ax.set_xlabel("iteration")
        ax.set_ylabel("loss")
        ax.set_title("loss")
        ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path, dpi=110)
            plt.close(fig)
        return fig


def _plain(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool, type(None), list, tuple))


def load(path: str | os.PathLike) -> FitResult:
    """Load a `FitResult` written by `FitResult.save`."""
    from ..data import Trajectories

    obj = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(obj, dict) or obj.get("format") != "ude_bridge.FitResult/1":
        raise InputError(f"load: {os.fspath(path)!r} is not a saved ude_bridge FitResult.")
    model = model_from_config(obj["model_config"])
    model.load_state_dict(obj["state_dict"])
    d = obj["data"]
    data = Trajectories(
        [np.asarray(x) for x in d["t"]], [np.asarray(x) for x in d["u"]], states=d["states"]
    )
    return FitResult(
        model, data, obj["history"], obj["loss"], obj["u0"], obj["options"], obj.get("failures", 0)
    )
