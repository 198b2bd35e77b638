"""IMTL-G: the update whose projections on every task's unit gradient are equal.

Why: impartial to gradient magnitudes; no task dominates the shared update.
Liu et al. 2021, Towards Impartial Multi-task Learning, ICLR. Weights from TorchJD's
``IMTLGWeighting`` (w ∝ G⁺ ‖g‖, normalised to sum 1; the pseudo-inverse extends the paper's
closed form to linearly dependent gradients). Identical gradients g: update = g.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from polytask.balancing.aggregation import (
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    GramianWeighting,
)
from polytask.balancing.aggregators._deps import torchjd_weighting
from polytask.balancing.methods import register_method


@register_method("imtl_g", kind="gradient aggregator", needs="gramian",
                 paper="Liu et al. 2021, Towards Impartial Multi-task Learning, ICLR")
class IMTLG(GramianWeighting):
    """Weights summing to 1 that give the update equal cosine-scaled projections on all tasks."""

    promises = frozenset({PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self):
        self._weighting = torchjd_weighting("IMTLGWeighting", "IMTL-G")

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        return self._weighting(gramian)
