"""Soft parameter sharing (Duong et al. 2015, "Low Resource Dependency Parsing: Cross-lingual Parameter
Sharing in a Neural Network Parser", ACL): one encoder per task, an L2 penalty pulls them together.

Why: nothing is forced to be shared, so a task with nothing in common with the others is not hurt by
them, while related tasks' encoders stay close: the penalty ``strength · Σ_{s<t} ‖θₛ − θₜ‖²`` over every
pair of task encoders' trainable parameters is added to each step's loss outside balancing. Task 0's
encoder is the model's encoder; the others start as copies of it (the penalty starts at zero). Every
encoder type works, a pretrained transformer included (T copies of it).

Each encoder is its task's own parameters, so no parameter is shared: balancing methods have nothing
to act on and every method trains as its loss weighting alone would (``freeze_encoder`` freezes nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates


def encoder_copy(encoder: Encoder) -> Encoder:
    """A copy of ``encoder``'s modules and weights that uses the same featurizer (vocabularies are not copied)."""
    featurizer = encoder.featurizer
    encoder.featurizer = None
    try:
        twin = copy.deepcopy(encoder)
    finally:
        encoder.featurizer = featurizer
    twin.featurizer = featurizer
    return twin


class SoftSharing(SharingArchitecture):
    """One encoder per task (task 0's is the model's encoder) and the pairwise L2 distance penalty."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__(encoder, config, tasks)
        self.towers = nn.ModuleList(encoder_copy(encoder) for _ in self.tasks[1:])

    def tower(self, task: str) -> Encoder:
        index = self.tasks.index(task)
        return self.encoder if index == 0 else self.towers[index - 1]

    @property
    def layer_dims(self) -> list[int]:
        return list(self.encoder.layer_dims)

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        per_task = {}
        for task in tasks:
            encoded = self.tower(task)(**inputs)
            per_task[task] = TaskStates(encoded.layers, [False] * len(encoded.layers), encoded.mask)
        return per_task

    def penalty(self) -> Tensor | None:
        if self.config.strength == 0 or len(self.tasks) < 2:
            return None
        params = [list(self.tower(task).parameters()) for task in self.tasks]
        total = None
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                for a, b in zip(params[i], params[j]):
                    if a.requires_grad or b.requires_grad:
                        term = (a - b).pow(2).sum()
                        total = term if total is None else total + term
        return None if total is None else self.config.strength * total

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.tower(task).parameters())
