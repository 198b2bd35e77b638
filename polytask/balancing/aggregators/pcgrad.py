"""PCGrad: project each task gradient onto the normal plane of every gradient it conflicts with.

Why: removes the conflicting components between task gradients ("gradient surgery").
Yu et al. 2020, Gradient Surgery for Multi-Task Learning, NeurIPS.
Every projected gradient is a combination of the original ones, so the method is a Gramian
weighting (TorchJD's ``PCGradWeighting``; the visiting order is drawn from torch's global RNG).
The update is the sum of the projected gradients, as in Algorithm 1. Identical gradients g:
update = T·g.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from polytask.balancing.aggregation import POSITIVELY_HOMOGENEOUS, GramianWeighting
from polytask.balancing.aggregators._deps import torchjd_weighting
from polytask.balancing.methods import register_method


@register_method("pcgrad", kind="gradient aggregator", needs="gramian",
                 paper="Yu et al. 2020, Gradient Surgery for Multi-Task Learning, NeurIPS")
class PCGrad(GramianWeighting):
    """Sum of the task gradients after pairwise projection of their conflicting components."""

    promises = frozenset({POSITIVELY_HOMOGENEOUS})

    def __init__(self):
        self._weighting = torchjd_weighting("PCGradWeighting", "PCGrad")

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        return self._weighting(gramian)
