"""Annealed sampling: from proportional towards uniform over the course of training."""

from __future__ import annotations

import math
from collections.abc import Mapping

from polytask.data.samplers.base import (
    TaskSampler,
    check_step,
    option_error,
    power_probabilities,
)


class AnnealedSampler(TaskSampler):
    """p_i ∝ n_i^α with α = 1 − decay · (e − 1)/(E − 1), epoch e = 1 … E (α = 1 when E = 1).

    Why: large tasks dominate early, while the shared layers form, and the small tasks catch up
    late, so they are not forgotten by the end of training. Stickland & Murray 2019, "BERT and
    PALs: Projected Attention Layers for Efficient Adaptation in Multi-Task Learning", ICML,
    §4 "annealed sampling" (decay = 0.8: α goes 1 → 0.2).

    With ``steps_per_epoch = S`` (0-based) step s is in epoch e = ⌊s/S⌋ + 1 of
    E = ⌈total_steps/S⌉ and α is constant within an epoch, exactly as in the paper. Without it
    (None) every step is its own epoch, e = s + 1 and E = total_steps, so α falls linearly from
    1 at step 0 to 1 − decay at the last step. Steps past the end keep the final α.
    """

    name = "annealed"

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        *,
        steps_per_epoch: int | None = None,
        decay: float = 0.8,
        cap: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        if steps_per_epoch is not None and (
            isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1
        ):
            raise option_error("steps_per_epoch", f"must be a positive integer or null, not {steps_per_epoch!r}")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay <= 1.0:
            raise option_error("decay", f"must be a number from 0 to 1, not {decay!r}")
        super().__init__(task_sizes, cap=cap, seed=seed)
        self.steps_per_epoch = steps_per_epoch
        self.decay = float(decay)

    def alpha(self, step: int, total_steps: int) -> float:
        """The exponent α at ``step`` of ``total_steps``."""
        check_step(step, total_steps)
        per_epoch = self.steps_per_epoch or 1
        epochs = math.ceil(total_steps / per_epoch)
        if epochs == 1:
            return 1.0
        epoch = min(step // per_epoch + 1, epochs)
        return 1.0 - self.decay * (epoch - 1) / (epochs - 1)

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        return power_probabilities(self.counted_sizes, self.alpha(step, total_steps))
