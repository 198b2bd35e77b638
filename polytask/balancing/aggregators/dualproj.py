"""DualProj: project the mean task gradient onto the dual cone of the task gradients.

Why: the smallest change to the mean gradient that conflicts with no task.
Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization, arXiv:2406.16232
(the projection of Lopez-Paz & Ranzato 2017, GEM). Weights from TorchJD's ``DualProjWeighting``
on the trace-normalised Gramian with a ``reg_eps`` ridge (1e-6). Identical gradients g: update = g.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from polytask.balancing.aggregation import (
    NON_CONFLICTING,
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    GramianWeighting,
)
from polytask.balancing.aggregators._deps import torchjd_weighting, trace_normalized
from polytask.balancing.methods import register_method


@register_method("dualproj", kind="gradient aggregator", needs="gramian",
                 paper="Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization, arXiv:2406.16232")
class DualProj(GramianWeighting):
    """The mean gradient projected onto the dual cone of the task gradients."""

    promises = frozenset({NON_CONFLICTING, PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, reg_eps: float = 1e-6):
        self._weighting = torchjd_weighting(
            "DualProjWeighting", "DualProj", quadprog={"norm_eps": 0.0, "reg_eps": reg_eps}
        )

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        if float(gramian.diagonal().sum()) <= 0:  # all gradients zero: any weights give a zero update
            return gramian.new_full((gramian.shape[0],), 1.0 / gramian.shape[0])
        return self._weighting(trace_normalized(gramian))
