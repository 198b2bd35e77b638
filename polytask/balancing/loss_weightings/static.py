"""Static weighting: fixed per-task weights chosen by the user."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import (
    Combination,
    LossWeighting,
    per_task_option,
    weighted_sum,
)
from polytask.balancing.methods import register_method


@register_method("static", kind="loss weighting", needs="losses", paper="fixed per-task weights (baseline)")
class StaticWeighting(LossWeighting):
    """Back-propagate ``Σ w_t L_t`` with the configured weights (unlisted tasks: 1).

    Why: the hand-tuned baseline every adaptive method is compared with.
    Option ``weights: {task: w}``. Stateless; an absent task simply contributes nothing.
    """

    name = "static"

    def __init__(self, task_names: Sequence[str], *, weights: Mapping[str, float] | None = None) -> None:
        super().__init__(task_names)
        self.weights = per_task_option(weights or {}, self.task_names, "weights", default=1.0)

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        return weighted_sum(losses, {task: self.weights[task] for task in losses})
