"""UPGrad: project every task gradient onto the dual cone of all of them, then average.

Why: the update conflicts with no task (⟨update, gᵢ⟩ ≥ 0) and is linear under scaling of the rows.
Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization, arXiv:2406.16232.
Weights from TorchJD's ``UPGradWeighting`` (quadprog) on the trace-normalised Gramian with a
``reg_eps`` ridge (1e-6; TorchJD's default 1e-4 lets conflicts of that order through).
Identical gradients g: update = g.
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


@register_method("upgrad", kind="gradient aggregator", needs="gramian",
                 paper="Quinton & Rey 2024, Jacobian Descent for Multi-Objective Optimization, arXiv:2406.16232")
class UPGrad(GramianWeighting):
    """Mean of the task gradients each projected onto the dual cone of all task gradients."""

    promises = frozenset({NON_CONFLICTING, PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, reg_eps: float = 1e-6):
        self._weighting = torchjd_weighting(
            "UPGradWeighting", "UPGrad", quadprog={"norm_eps": 0.0, "reg_eps": reg_eps}
        )

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        if float(gramian.diagonal().sum()) <= 0:  # all gradients zero: any weights give a zero update
            return gramian.new_full((gramian.shape[0],), 1.0 / gramian.shape[0])
        return self._weighting(trace_normalized(gramian))
