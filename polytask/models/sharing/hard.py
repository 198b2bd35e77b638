"""Hard parameter sharing (Caruana 1997, "Multitask Learning", Machine Learning 28): one encoder for every task.

Why: the default and the baseline of every other architecture; each task's head reads the shared
encoder's layers. A task-conditioned encoder (per-task LoRA adapters) encodes once per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor

from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates


class HardSharing(SharingArchitecture):
    """Every task reads the same encoder states (one encoder pass per batch)."""

    exportable = True
    task_conditioned_encoders = True

    @property
    def layer_dims(self) -> list[int]:
        return list(self.encoder.layer_dims)

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        if not self.encoder.task_conditioned:
            encoded = self.encoder(**inputs)
            states = TaskStates(encoded.layers, [True] * len(encoded.layers), encoded.mask, encoded.segments)
            return dict.fromkeys(tasks, states)
        per_task = {}
        for task in tasks:
            encoded = self.encoder(**inputs, task=task)
            per_task[task] = TaskStates(encoded.layers, [True] * len(encoded.layers), encoded.mask, encoded.segments)
        return per_task
