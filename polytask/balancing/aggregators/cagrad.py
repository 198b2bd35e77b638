"""CAGrad: the update maximising the worst task improvement within a ball around the mean gradient.

Why: conflict-averse like MGDA, yet still converging to a minimum of the average loss (c < 1).
Liu et al. 2021, Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS.
Solves the paper's dual over the simplex with SLSQP as the official code does (scipy) on the
trace-normalised Gramian. Update d = g₀ + (c‖g₀‖/‖g_w‖) g_w with g₀ the mean gradient, then
divided by (1+c²) (``rescale=1``, the official default), by (1+c) (``rescale=2``) or not
(``rescale=0``). Identical gradients g: update = (1+c)·g / (1+c²) (≈ 1.207·g for c = 0.4).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from polytask.balancing.aggregation import (
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    GramianWeighting,
)
from polytask.balancing.methods import register_method
from polytask.dependencies import require


@register_method("cagrad", kind="gradient aggregator", needs="gramian",
                 paper="Liu et al. 2021, Conflict-Averse Gradient Descent for Multi-task Learning, NeurIPS")
class CAGrad(GramianWeighting):
    """Weights of g₀ + λ g_w, the conflict-averse update of radius c‖g₀‖."""

    promises = frozenset({PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, c: float = 0.4, rescale: int = 1):
        if c < 0:
            raise ValueError(f"c must be non-negative, got {c}")
        if rescale not in (0, 1, 2):
            raise ValueError(f"rescale must be 0, 1 or 2, got {rescale}")
        self.c, self.rescale = float(c), rescale
        self._optimize = require("scipy", "CAGrad", "balancing")
        from scipy.optimize import minimize

        self._minimize = minimize

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        g = gramian.detach().cpu().double().numpy()
        t = g.shape[0]
        mean = np.full(t, 1.0 / t)
        scale = float(np.trace(g)) / t
        weights = mean.copy()
        if scale > 0 and self.c > 0:
            a = g / scale
            ab = a @ mean
            radius = self.c * np.sqrt(max(float(mean @ ab), 0.0)) + 1e-8

            def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
                ax = a @ x
                norm = np.sqrt(max(float(x @ ax), 0.0) + 1e-8)
                return float(x @ ab) + radius * norm, ab + radius * ax / norm

            result = self._minimize(
                objective, mean, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * t,
                constraints=({"type": "eq", "fun": lambda x: 1.0 - x.sum(), "jac": lambda x: -np.ones_like(x)},),
            )
            w = np.clip(result.x, 0.0, None)
            gw_norm = np.sqrt(max(float(w @ a @ w), 0.0))
            weights = mean + radius / (gw_norm + 1e-8) * w
        weights = weights / {0: 1.0, 1: 1.0 + self.c**2, 2: 1.0 + self.c}[self.rescale]
        return torch.as_tensor(weights, dtype=gramian.dtype, device=gramian.device)
