"""Aligned-MTL: align the principal components of the task gradients before summing them.

Why: removes conflicts and dominance by making the gradient system well conditioned.
Senushkin et al. 2023, Independent Component Alignment for Multi-Task Learning, CVPR.
Weights from TorchJD's ``AlignedMTLWeighting`` (mean preference; ``scale_mode`` "min" rescales
by the smallest singular value, "median"/"rmse" as in the official code). Identical gradients g:
update = g.
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


@register_method("aligned_mtl", kind="gradient aggregator", needs="gramian",
                 paper="Senushkin et al. 2023, Independent Component Alignment for Multi-Task Learning, CVPR")
class AlignedMTL(GramianWeighting):
    """Weights B·(1/T) where B whitens the gradient system and rescales it by one singular value."""

    promises = frozenset({PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, scale_mode: str = "min"):
        if scale_mode not in ("min", "median", "rmse"):
            raise ValueError(f"scale_mode must be 'min', 'median' or 'rmse', got {scale_mode!r}")
        self._weighting = torchjd_weighting("AlignedMTLWeighting", "Aligned-MTL", scale_mode=scale_mode)

    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        return self._weighting(gramian)
