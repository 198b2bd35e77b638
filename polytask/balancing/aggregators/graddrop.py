"""GradDrop: per coordinate, keep only the task gradients of one sign, drawn by sign purity.

Why: stochastic sign consistency pushes the shared layers towards joint minima of all tasks.
Chen et al. 2020, Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout,
NeurIPS. The paper applies it to the gradients at the shared activations (mode
"representation"); mode "exact" applies it to the shared parameters' gradients as TorchJD does.
Identical gradients g: update = T·g (every coordinate has purity 0 or 1).

Exact across data-parallel ranks and micro-batches: each coordinate's draw comes from
``TaskJacobian.uniform``, which gives a coordinate of the union step the same draw on any split
(parameter blocks: the same generator state on every rank; representation blocks, whose rows are
each rank's own examples: a hash of the step's seed, the layer, the example and the position).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from polytask.balancing.aggregation import (
    PERMUTATION_INVARIANT,
    POSITIVELY_HOMOGENEOUS,
    Aggregator,
)
from polytask.balancing.jacobian import TaskJacobian
from polytask.balancing.methods import register_method


@register_method("graddrop", kind="gradient aggregator", needs="gradients",
                 paper="Chen et al. 2020, Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign "
                       "Dropout, NeurIPS")
class GradDrop(Aggregator):
    """Masked sum of the task gradients; ``leak`` lets that fraction of every gradient through.

    Per coordinate, with S = Σᵢ gᵢ and M = Σᵢ |gᵢ|: purity P = (1 + S/M)/2 and one uniform draw
    U; the positive parts (Σᵢ max(gᵢ, 0) = (S + M)/2) are kept where P > U and the negative parts
    ((S − M)/2) where P < U. The update needs only S and M, so it is computed one parameter block
    at a time from the task gradients without stacking the T×P Jacobian.
    """

    promises = frozenset({PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS})

    def __init__(self, leak: float = 0.0):
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        self.leak = float(leak)

    def aggregate(self, jacobian: Tensor, tasks: Sequence[str]) -> Tensor:
        total = jacobian.sum(0)
        return self._drop(total, jacobian.abs().sum(0), torch.rand_like(total))

    def aggregate_jacobian(self, jacobian: TaskJacobian) -> list[Tensor]:
        updates = []
        for k in range(len(jacobian.targets)):
            blocks = [row[k] for row in jacobian.rows]
            updates.append(self._drop(_sum(blocks), _sum([b.abs() for b in blocks]), jacobian.uniform(k)))
        return updates

    def _drop(self, total: Tensor, magnitude: Tensor, uniform: Tensor) -> Tensor:
        # Arithmetic only (no torch.where or boolean masks, several times slower per element on
        # CPU). With s = sign(P − U): positive parts kept where s = 1, negative where s = −1, none
        # at a tie (s = 0); (|s|·S + s·M)/2 is exactly that, since S = pos + neg and M = pos − neg.
        # Where M = 0, S = 0 too: the clamp makes P = ½ and the update 0.
        tiny = torch.finfo(total.dtype).tiny
        purity = total.div(magnitude.clamp(min=tiny)).add_(1).mul_(0.5)
        sign = purity.sub_(uniform).sign_()
        kept = sign.abs().mul_(total).addcmul_(sign, magnitude).mul_(0.5)
        if self.leak > 0:
            return kept.mul_(1 - self.leak).add_(total, alpha=self.leak)
        return kept


def _sum(blocks: list[Tensor]) -> Tensor:
    total = blocks[0].clone()
    for block in blocks[1:]:
        total.add_(block)
    return total
