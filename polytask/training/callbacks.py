"""Training-loop callbacks: observers called before and after every optimisation step.

Why: tools that watch training (task-affinity measurement, ...) hook in here instead of
adding their own branches to the trainer. A callback may read the trainer and the batch; it
must leave the model's parameters, gradients and random state as it found them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polytask.data.batching import Batch
    from polytask.training.trainer import Trainer


class Callback:
    """Does nothing by default; override the hooks you need."""

    def before_step(self, trainer: Trainer, batch: Batch) -> None:
        """Called with the step's batch before its forward pass; ``trainer.step`` is the step about to be taken."""

    def after_step(self, trainer: Trainer, batch: Batch, record: dict[str, Any]) -> None:
        """Called after the optimizer step with the step's diagnostics; ``trainer.step`` is already incremented."""
