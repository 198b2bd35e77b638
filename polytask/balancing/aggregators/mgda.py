"""MGDA: the minimum-norm point of the convex hull of the task gradients.

Why: a direction that decreases every task's loss, zero exactly at Pareto-stationary points.
Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization, NeurIPS.
Solved exactly as a T-variable QP on the Gramian (quadprog) instead of the paper's Frank-Wolfe
iterations. With mode "representation" this is MGDA-UB. Identical gradients g: update = g
(normalization "l2": g/‖g‖).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from polytask.balancing.aggregation import (
    NON_CONFLICTING,
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    GramianWeighting,
)
from polytask.balancing.methods import register_method
from polytask.dependencies import require


@register_method("mgda", kind="gradient aggregator", needs="gramian",
                 paper="Sener & Koltun 2018, Multi-Task Learning as Multi-Objective Optimization, NeurIPS")
class MGDA(GramianWeighting):
    """Weights on the simplex minimising ‖Σ wᵢ gᵢ‖ (gradients first scaled to unit norm if "l2")."""

    promises = frozenset({NON_CONFLICTING, PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, normalization: str = "none"):
        if normalization not in ("none", "l2"):
            raise ValueError(f"normalization must be 'none' or 'l2', got {normalization!r}")
        self.normalization = normalization
        self._quadprog = require("quadprog", "MGDA", "balancing")

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        g = gramian.detach().cpu().double().numpy()
        t = g.shape[0]
        scale = np.ones(t)
        if self.normalization == "l2":
            norms = np.sqrt(np.clip(np.diag(g), 0.0, None))
            scale = np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)
            g = g * np.outer(scale, scale)
        w = min_norm_weights(g, self._quadprog) * scale
        if self.normalization == "l2" and w.sum() == 0:
            w = np.full(t, 1.0 / t)
        return torch.as_tensor(w, dtype=gramian.dtype, device=gramian.device)


def min_norm_weights(gramian: np.ndarray, quadprog) -> np.ndarray:
    """argmin_{w ∈ simplex} wᵀ G w, for a PSD Gramian (trace-normalised, lightly regularised)."""
    t = gramian.shape[0]
    trace = float(np.trace(gramian)) / t
    if t == 1 or trace <= 0:
        return np.full(t, 1.0 / t)
    g = gramian / trace + 1e-9 * np.eye(t)
    constraints = np.concatenate([np.ones((t, 1)), np.eye(t)], axis=1)
    bounds = np.concatenate([[1.0], np.zeros(t)])
    w = quadprog.solve_qp(g, np.zeros(t), constraints, bounds, meq=1)[0]
    w = np.clip(w, 0.0, None)
    return w / w.sum()
