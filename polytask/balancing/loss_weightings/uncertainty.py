"""Uncertainty weighting (UW): learned homoscedastic task uncertainty scales each loss."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import Combination, LossWeighting, check_option
from polytask.balancing.methods import register_method


@register_method(
    "uw",
    kind="loss weighting",
    needs="losses",
    paper="Kendall, Gal & Cipolla, Multi-Task Learning Using Uncertainty to Weigh Losses "
    "for Scene Geometry and Semantics, CVPR 2018",
)
class UncertaintyWeighting(LossWeighting):
    """Back-propagate ``Σ_t exp(-s_t) L_t + s_t`` with a learned ``s_t = log σ_t²`` per task.

    Why: tasks whose loss stays high (noisy, or on a larger scale) are down-weighted by a
    learned variance instead of a hand-tuned constant.
    Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
    Geometry and Semantics", CVPR 2018.

    Variant: the paper's regression objective (its Eq. 7) is ``exp(-s) L / 2 + s / 2``, the
    form LibMTL uses; polytask back-propagates twice that. Both have the same minimiser
    ``exp(s) = L`` and the same gradient directions; this form starts at weight 1 (EW) for
    ``s = 0`` instead of 1/2. ``∂/∂s_t = 1 - exp(-s_t) L_t``.

    Option ``init_log_variance`` (initial ``s_t``, default 0). State: ``s_t`` per task, a
    parameter the trainer optimises with the model; an absent task's ``s_t`` gets no gradient.
    """

    name = "uw"

    def __init__(self, task_names: Sequence[str], *, init_log_variance: float = 0.0) -> None:
        super().__init__(task_names)
        check_option(isinstance(init_log_variance, (int, float)), "init_log_variance must be a number")
        self._learn_scalars(dict.fromkeys(self.task_names, init_log_variance))

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        weights = {task: torch.exp(-self.scalars[task]) for task in losses}
        total = sum(weights[task] * loss + self.scalars[task] for task, loss in losses.items())
        return Combination(
            loss=total,
            weights=weights,
            diagnostics={"log_variances": {task: self.scalars[task].item() for task in losses}},
        )
