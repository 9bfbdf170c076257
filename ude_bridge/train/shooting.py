"""Multiple shooting: segments with learned starting states and a continuity penalty.

Each trajectory's time grid is split into $K$ segments $[t_{b_k}, t_{b_{k+1}}]$. Segment
$k > 0$ starts from a learned state $s_k$ (initialised from the model's prediction, with the
observed components replaced by the data), so a long or oscillatory series no longer has to
be matched by one solve from $u_0$. The loss adds a continuity penalty

$$ \\frac{\\lambda}{K-1} \\sum_{k \\ge 1}
   \\operatorname{mean}\\big( (u_{k-1}(t_{b_k}) - s_k)^2 / s^2 \\big) , $$

which drives the segments to join into one trajectory as training proceeds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..problem import ODEProblem
from ..solve import solve
from .losses import masked_mse

__all__ = ["Segments", "segments"]


class Segments:
    """The segments of every trajectory and their learned starting states."""

    def __init__(self, P: Any, bounds: list[list[int]], nodes: list[torch.nn.Parameter]):
        self.P = P
        self.bounds = bounds
        self.nodes = nodes

    def loss(self, solve_traj, pt, continuity: float) -> tuple[torch.Tensor, bool]:
        """Data misfit over all segments plus the continuity penalty; ``(loss, ok)``."""
        P = self.P
        total, count, jump, njump, ok = 0.0, 0.0, 0.0, 0, True
        inv_s2 = P.inv_scale2
        for r, b in enumerate(self.bounds):
            ts, target, mask = P.ts[r], P.targets[r], P.masks[r]
            for k in range(len(b) - 1):
                start = P.u0[r] if k == 0 else self.nodes[r][k - 1]
                i0, i1 = b[k], b[k + 1]
                u, good = solve_traj(start, ts[i0 : i1 + 1], pt)
                ok = ok and good
                pred = u.index_select(-1, P.obs_idx)
                m = mask[i0 : i1 + 1]
                total = total + masked_mse(pred, target[i0 : i1 + 1], m, inv_s2) * m.sum()
                count += float(m.sum())
                if k + 1 < len(b) - 1:
                    d = (u[-1] - self.nodes[r][k]).index_select(-1, P.obs_idx)
                    jump = jump + (d * d * inv_s2).mean()
                    njump += 1
        loss = total / max(count, 1.0)
        if njump:
            loss = loss + continuity * jump / njump
        return loss, ok


def segments(P: Any, K: int, model: Any, dtype: torch.dtype, device: Any) -> Segments:
    """Split every trajectory of ``P`` into ``K`` segments and initialise their starts."""
    bounds, nodes = [], []
    for r, ts in enumerate(P.ts):
        T = ts.shape[0]
        b = sorted(set(np.linspace(0, T - 1, min(K, T - 1) + 1).round().astype(int).tolist()))
        bounds.append(b)
        with torch.no_grad():
            prob = ODEProblem(
                model.rhs, P.u0[r].detach(), (float(ts[0]), float(ts[-1])), model.param_tensors()
            )
            sol = solve(prob, "Tsit5", saveat=ts, max_steps=20_000)
            guess = (
                torch.nan_to_num(sol.u.to(dtype))
                if sol.success
                else P.u0[r].detach().expand(T, -1).clone()
            )
            starts = guess[b[1:-1]].clone()
            obs = P.masks[r][b[1:-1]] > 0
            data_vals = P.targets[r][b[1:-1]]
            cols = starts[:, P.obs_idx]
            starts[:, P.obs_idx] = torch.where(obs, data_vals, cols)
        nodes.append(torch.nn.Parameter(starts.to(device)))
    return Segments(P, bounds, nodes)
