"""Losses over observed components: NaN-masked, per-state normalised, weighted.

$$ L = \\frac{1}{\\sum_{r,t,i} m_{rti}} \\sum_{r,t,i} m_{rti}\\, w_i
       \\Big(\\frac{\\hat u_{rti} - u_{rti}}{s_i}\\Big)^2 \\; + \\; \\lambda \\sum_W \\|W\\|^2 , $$

with $m$ the mask of observed values, $s_i$ the scale of state $i$ (its standard deviation
in the data when ``normalize=True``, else 1), $w_i$ optional weights and $\\lambda$ the L2
penalty on network weights.
"""

from __future__ import annotations

import torch

__all__ = ["masked_mse", "weight_penalty"]


def masked_mse(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, inv_scale2: torch.Tensor
) -> torch.Tensor:
    """Mean of ``mask * inv_scale2 * (pred - target)^2`` over the observed entries.

    Args:
        pred, target: ``(..., n)``; ``target`` has zeros where ``mask`` is 0.
        mask: float 0/1 tensor of the same shape.
        inv_scale2: ``(n,)`` weights $w_i / s_i^2$.
    """
    diff = (pred - target) * mask
    return (diff * diff * inv_scale2).sum() / mask.sum().clamp_min(1.0)


def weight_penalty(tensors: list[torch.Tensor]) -> torch.Tensor:
    """$\\sum \\|W\\|^2$ over the given tensors."""
    return sum((w * w).sum() for w in tensors)
