"""GradVac: raise each pair's gradient cosine towards an EMA target of its past cosines.

Why: PCGrad only acts on negative cosines; related tasks also profit from keeping their usual alignment.
Wang et al. 2021, Gradient Vaccine: Investigating and Improving Multi-task Optimization in
Massively Multilingual Models, ICLR. Like PCGrad, every corrected gradient is a combination of
the original ones, so the method runs on the Gramian. EMA targets are kept per ordered pair of
task names (absent tasks keep theirs); visiting order from torch's global RNG, as in TorchJD.
Identical gradients g: update = T·g (no correction, sum of the gradients).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.aggregation import GramianWeighting
from polytask.balancing.methods import register_method

_SEPARATOR = "|"


@register_method("gradvac", kind="gradient aggregator", needs="gramian",
                 paper="Wang et al. 2021, Gradient Vaccine: Investigating and Improving Multi-task Optimization "
                       "in Massively Multilingual Models, ICLR")
class GradVac(GramianWeighting):
    """Sum of the task gradients, each corrected towards its pairs' target cosines."""

    promises = frozenset()  # order-dependent, and 0.01× the gradients does not give 0.01× the update (tested)

    def __init__(self, beta: float = 0.5, eps: float = 1e-8):
        if not 0.0 <= beta <= 1.0 or eps < 0:
            raise ValueError(f"beta must be in [0, 1] and eps ≥ 0, got beta={beta}, eps={eps}")
        self.beta, self.eps = float(beta), float(eps)
        self._targets: dict[tuple[str, str], float] = {}

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        g = gramian.detach().cpu().double()
        t = g.shape[0]
        coefficients = torch.eye(t, dtype=g.dtype)
        for i in range(t):
            dots = coefficients[i] @ g  # ⟨g_i^vac, g_j⟩ for every j
            others = [j for j in range(t) if j != i]
            for k in torch.randperm(len(others)).tolist():
                j = others[k]
                norm_i = float((dots @ coefficients[i]).clamp(min=0).sqrt())
                norm_j = float(g[j, j].clamp(min=0).sqrt())
                cosine = float(dots[j]) / (norm_i * norm_j + self.eps)
                target = self._targets.get((tasks[i], tasks[j]), 0.0)
                if cosine < target:
                    sin, sin_target = max(1 - cosine**2, 0.0) ** 0.5, max(1 - target**2, 0.0) ** 0.5
                    w = norm_i * (target * sin - cosine * sin_target) / (norm_j * sin_target + self.eps)
                    coefficients[i, j] += w
                    dots = dots + w * g[j]
                self._targets[(tasks[i], tasks[j])] = (1 - self.beta) * target + self.beta * cosine
        return coefficients.sum(0).to(dtype=gramian.dtype, device=gramian.device)

    def state_dict(self) -> dict[str, Any]:
        return {"targets": {f"{a}{_SEPARATOR}{b}": v for (a, b), v in self._targets.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._targets = {tuple(k.split(_SEPARATOR, 1)): float(v) for k, v in state.get("targets", {}).items()}
