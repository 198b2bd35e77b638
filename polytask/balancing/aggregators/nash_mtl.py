"""Nash-MTL: the Nash bargaining solution, weights α > 0 with αᵢ (G α)ᵢ = 1 for every task.

Why: scale-invariant, every task's utility gain counts; the update is Pareto-optimal within the ball.
Navon et al. 2022, Multi-Task Learning as a Bargaining Game, ICML.
The paper's equation G α = 1/α is the stationarity condition of the strictly convex
½αᵀGα − Σ log αᵢ, solved here by damped Newton steps warm-started from the previous α (kept per
task name) instead of the official sequence of cvxpy problems; a 1e-8 ridge keeps it bounded for
linearly dependent gradients. ``max_norm`` caps ‖Σ αᵢ gᵢ‖ (in the space the Gramian is taken in);
``update_weights_every`` reuses α between solves as the official code does.
Identical gradients g: update = √T·g/‖g‖ before the cap (g/‖g‖ with max_norm=1, T ≥ 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from polytask.balancing.aggregation import (
    NON_CONFLICTING,
    PERMUTATION_INVARIANT,
    GramianWeighting,
)
from polytask.balancing.methods import register_method


@register_method("nash_mtl", kind="gradient aggregator", needs="gramian",
                 paper="Navon et al. 2022, Multi-Task Learning as a Bargaining Game, ICML")
class NashMTL(GramianWeighting):
    """Bargaining weights: the positive solution of G α = 1/α."""

    promises = frozenset({NON_CONFLICTING, PERMUTATION_INVARIANT})

    def __init__(self, update_weights_every: int = 1, optim_niter: int = 20, max_norm: float = 1.0):
        if update_weights_every < 1 or optim_niter < 1 or max_norm < 0:
            raise ValueError("update_weights_every and optim_niter must be ≥ 1 and max_norm ≥ 0")
        self.update_weights_every, self.optim_niter, self.max_norm = update_weights_every, optim_niter, float(max_norm)
        self._alpha: dict[str, float] = {}
        self._calls = 0

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        g = gramian.detach().cpu().double().numpy()
        reuse = self._calls % self.update_weights_every != 0 and all(t in self._alpha for t in tasks)
        self._calls += 1
        if reuse:
            alpha = np.array([self._alpha[t] for t in tasks])
        else:
            alpha = self._solve(g, tasks)
            self._alpha.update(zip(tasks, alpha.tolist()))
        if self.max_norm > 0:
            norm = np.sqrt(max(float(alpha @ g @ alpha), 0.0))
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return torch.as_tensor(alpha, dtype=gramian.dtype, device=gramian.device)

    def _solve(self, g: np.ndarray, tasks: Sequence[str]) -> np.ndarray:
        t = g.shape[0]
        scale = float(np.linalg.norm(g))
        if scale <= 0:
            return np.ones(t)
        a = g / scale + 1e-8 * np.eye(t)
        start = np.array([self._alpha.get(task, 0.0) for task in tasks]) * np.sqrt(scale)
        x = np.where(start > 0, start, 1.0)
        return bargaining_solution(a, x, self.optim_niter) / np.sqrt(scale)

    def state_dict(self) -> dict[str, Any]:
        return {"alpha": dict(self._alpha), "calls": self._calls}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._alpha = {str(k): float(v) for k, v in state.get("alpha", {}).items()}
        self._calls = int(state.get("calls", 0))


def bargaining_solution(g: np.ndarray, x: np.ndarray, iterations: int) -> np.ndarray:
    """Damped Newton on f(α) = ½αᵀGα − Σ log αᵢ from α = x > 0; its minimiser solves G α = 1/α."""

    def f(a: np.ndarray) -> float:
        return 0.5 * float(a @ g @ a) - float(np.log(a).sum())

    for _ in range(iterations):
        gradient = g @ x - 1.0 / x
        hessian = g + np.diag(1.0 / x**2)
        step = np.linalg.solve(hessian, gradient)
        decrement = float(gradient @ step)
        if decrement < 1e-14:
            break
        size, fx = 1.0, f(x)
        while np.any(x - size * step <= 0) or f(x - size * step) > fx - 0.25 * size * decrement:
            size *= 0.5
            if size < 1e-10:
                return x
        x = x - size * step
    return x
