"""Geometric loss strategy (GLS): back-propagate the geometric mean of the task losses."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import Combination, LossWeighting
from polytask.balancing.methods import register_method


@register_method(
    "gls",
    kind="loss weighting",
    needs="losses",
    paper="Chennupati et al., MultiNet++: Multi-Stream Feature Aggregation and Geometric "
    "Loss Strategy for Multi-Task Learning, CVPR Workshops 2019",
)
class GeometricLossStrategy(LossWeighting):
    """Back-propagate ``(Π_t L_t)^(1/T)`` over the T tasks present in the step.

    Why: the geometric mean is invariant to each loss's scale, so a task with a large loss
    does not dominate; its gradient weighs ``L_t`` by ``(Π L)^(1/T) / (T L_t)``.
    S. Chennupati, G. Sistu, S. Yogamani, S. Rawashdeh, "MultiNet++: Multi-Stream Feature
    Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019.

    Computed as ``exp(mean log L_t)``; losses must be strictly positive. Stateless, no options.
    """

    name = "gls"

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        stacked = torch.stack(list(losses.values()))
        if bool((stacked.detach() <= 0).any()):
            raise ValueError(f"gls needs strictly positive losses, got {dict(zip(losses, stacked.tolist()))}")
        total = torch.exp(torch.log(stacked).mean())
        scale = total.detach() / len(losses)
        return Combination(loss=total, weights={task: scale / loss.detach() for task, loss in losses.items()})
