"""Equal weighting (EW): the plain sum of the task losses, the baseline every method is compared with."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.balancer import Balancer, StepContext
from polytask.balancing.methods import register_method


@register_method("ew", kind="loss weighting", needs="losses", paper="equal weighting (baseline)")
class EqualWeighting(Balancer):
    """Equal weighting (EW): back-propagate the plain sum of task losses."""

    name = "ew"

    def __init__(self, task_names: list[str] | None = None):
        self.task_names = task_names or []

    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        self.reduce.backward(torch.stack(list(losses.values())).sum())
        return {"weights": dict.fromkeys(losses, 1.0)}
