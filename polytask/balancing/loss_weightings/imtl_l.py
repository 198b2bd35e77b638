"""IMTL-L: the loss-balancing half of Impartial Multi-Task Learning, with learned loss scales."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import Combination, LossWeighting, check_option
from polytask.balancing.methods import register_method


@register_method(
    "imtl_l",
    kind="loss weighting",
    needs="losses",
    paper="Liu et al., Towards Impartial Multi-task Learning (IMTL-L), ICLR 2021",
)
class ImpartialLossWeighting(LossWeighting):
    """Back-propagate ``Σ_t exp(s_t) L_t - s_t`` with a learned scale ``s_t`` per task.

    Why: at the optimum of ``s_t`` every scaled loss ``exp(s_t) L_t`` equals 1, so all tasks
    contribute on the same scale whatever their raw loss magnitude.
    L. Liu, Y. Li, Z. Kuang, J.-H. Xue, Y. Chen, W. Yang, Q. Liao, W. Zhang, "Towards
    Impartial Multi-task Learning", ICLR 2021 (IMTL-L, Section 3.2). ``∂/∂s_t = exp(s_t) L_t - 1``.

    Option ``init_log_scale`` (initial ``s_t``, default 0). State: ``s_t`` per task, a
    parameter the trainer optimises with the model; an absent task's ``s_t`` gets no gradient.
    """

    name = "imtl_l"

    def __init__(self, task_names: Sequence[str], *, init_log_scale: float = 0.0) -> None:
        super().__init__(task_names)
        check_option(isinstance(init_log_scale, (int, float)), "init_log_scale must be a number")
        self._learn_scalars(dict.fromkeys(self.task_names, init_log_scale))

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        weights = {task: torch.exp(self.scalars[task]) for task in losses}
        total = sum(weights[task] * loss - self.scalars[task] for task, loss in losses.items())
        return Combination(
            loss=total,
            weights=weights,
            diagnostics={"log_scales": {task: self.scalars[task].item() for task in losses}},
        )
