"""Random loss weighting (RLW): weights drawn afresh every step."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import (
    Combination,
    LossWeighting,
    check_option,
    weighted_sum,
)
from polytask.balancing.methods import register_method


@register_method(
    "rlw",
    kind="loss weighting",
    needs="losses",
    paper="Lin, Ye, Zhang & Tsang, Reasonable Effectiveness of Random Weighting: "
    "A Litmus Test for Multi-Task Learning, TMLR 2022",
)
class RandomLossWeighting(LossWeighting):
    """Back-propagate ``Σ_t λ_t L_t`` with ``λ = softmax(z)``, ``z ~ N(0, I)`` drawn each step.

    Why: a random convex combination is a strong, cost-free baseline that escapes the
    local optima a fixed weighting can settle in.
    B. Lin, F. Ye, Y. Zhang, I. W. Tsang, "Reasonable Effectiveness of Random Weighting:
    A Litmus Test for Multi-Task Learning", TMLR 2022. Weights sum to 1, as in the paper.

    ``z`` is drawn from a generator seeded by ``(seed, context.step)``, one value per
    configured task in ``task_names`` order, so a step's weights are reproducible and resume
    exactly with no state; the softmax runs over the tasks present. Option ``seed`` (default 0).
    """

    name = "rlw"

    def __init__(self, task_names: Sequence[str], *, seed: int = 0) -> None:
        super().__init__(task_names)
        check_option(type(seed) is int and seed >= 0, "seed must be an int >= 0")
        self.seed = seed

    def draw(self, step: int) -> dict[str, float]:
        """The standard-normal logits of ``step``, one per configured task."""
        z = np.random.default_rng([self.seed, step]).standard_normal(len(self.task_names))
        return dict(zip(self.task_names, z.tolist()))

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        z = self.draw(context.step)
        logits = np.array([z[task] for task in losses])
        weights = np.exp(logits - logits.max())
        weights /= weights.sum()
        return weighted_sum(losses, dict(zip(losses, weights.tolist())))
