"""Training-loop callbacks: observers called around training, every optimisation step and every metrics record.

Why: tools that watch training (task-affinity measurement, experiment loggers, ...) hook in here
instead of adding their own branches to the trainer. A callback may read the trainer and the batch;
it must leave the model's parameters, gradients and random state as it found them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polytask.data.batching import Batch
    from polytask.training.trainer import Trainer


class Callback:
    """Does nothing by default; override the hooks you need."""

    def before_fit(self, trainer: Trainer) -> None:
        """Called when ``fit`` starts (``trainer.step`` is 0, or the step a resumed run continues from)."""

    def on_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """Called on rank 0 with every record of ``metrics.jsonl`` (step diagnostics every ``training.log_every``
        steps, dev and test evaluations), also when the run has no directory."""

    def after_fit(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        """Called when ``fit`` ends: with the summary, or with None when training stopped with an error."""

    def before_step(self, trainer: Trainer, batch: Batch) -> None:
        """Called with the step's batch before its forward pass; ``trainer.step`` is the step about to be taken."""

    def after_step(self, trainer: Trainer, batch: Batch, record: dict[str, Any]) -> None:
        """Called after the optimizer step with the step's diagnostics; ``trainer.step`` is already incremented."""
