"""GradDrop: per coordinate, keep only the task gradients of one sign, drawn by sign purity.

Why: stochastic sign consistency pushes the shared layers towards joint minima of all tasks.
Chen et al. 2020, Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout,
NeurIPS. The paper applies it to the gradients at the shared activations (mode
"representation"); mode "exact" applies it to the shared parameters' gradients as TorchJD does.
Identical gradients g: update = T·g (every coordinate has purity 0 or 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from polytask.balancing.aggregation import Aggregator
from polytask.balancing.registry import register_method


@register_method("graddrop", kind="aggregator", needs="gradients",
                 paper="Chen et al. 2020, Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign "
                       "Dropout, NeurIPS")
class GradDrop(Aggregator):
    """Masked sum of the task gradients; ``leak`` lets that fraction of every gradient through."""

    def __init__(self, leak: float = 0.0):
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        self.leak = float(leak)

    def aggregate(self, jacobian: Tensor, tasks: Sequence[str]) -> Tensor:
        total, magnitude = jacobian.sum(0), jacobian.abs().sum(0)
        purity = 0.5 * (1 + torch.where(magnitude > 0, total / magnitude.clamp(min=torch.finfo(jacobian.dtype).tiny), 0))
        draw = torch.rand_like(purity)
        keep = torch.where(jacobian > 0, purity > draw, (jacobian < 0) & (purity < draw))
        if self.leak > 0:
            return ((self.leak + (1 - self.leak) * keep.to(jacobian.dtype)) * jacobian).sum(0)
        return (keep * jacobian).sum(0)
