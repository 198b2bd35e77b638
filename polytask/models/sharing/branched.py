"""Branched sharing: the bottom encoder layers shared by every task, one copy of the upper layers per task group.

Why: a grouping of tasks that help each other (Standley et al. 2020, "Which Tasks Should Be Learned
Together in Multi-task Learning?", ICML; Fifty et al. 2021, "Efficiently Identifying Task Groupings for
Multi-Task Learning", NeurIPS) becomes one model: the groups share what is common at the bottom and
stop competing above it. ``groups: {from: AFFINITY_DIR}`` takes the grouping ``polytask affinity``
recommended. Group 0's tower is the encoder's own upper layers, the others start as copies of them
(the model starts as hard sharing); ``shared_input: false`` shares nothing, not even the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates
from polytask.models.sharing.layers import Split, Towers, UpperLayers


class BranchedSharing(Towers, SharingArchitecture):
    """Shared bottom ``split.top_shared`` layers, then one tower of upper layers per group of tasks."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__(encoder, config, tasks)
        self.split = Split.resolve(encoder, config, unshared_input=True)
        self.groups = [list(group) for group in config.groups or [list(tasks)]]
        self.group_of = {task: g for g, group in enumerate(self.groups) for task in group}
        self.lay_out_towers(encoder, len(self.groups))

    def build(self) -> None:
        self.initialise_towers()

    def tower(self, group: int) -> UpperLayers:
        return self.tower_at(group)

    @property
    def layer_dims(self) -> list[int]:
        return list(self.split.dims)

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        mask = inputs["mask"]
        bottom = self.split.run_bottom(self.encoder, inputs)
        below = bottom[-1] if bottom else None
        per_task: dict[str, TaskStates] = {}
        for g in sorted({self.group_of[t] for t in tasks}):
            own = self._owner(g) is not None
            start = cut.read(below) if own and below is not None else below
            upper = self.tower(g).run(self.encoder, start, mask, inputs)
            states = TaskStates([*bottom, *upper], [True] * len(bottom) + [not own] * len(upper), mask)
            per_task.update({t: states for t in self.groups[g] if t in tasks})
        return per_task

    def _owner(self, group: int) -> str | None:
        """The one task of a single-task group (whose tower is then its own), else None (a shared tower)."""
        members = self.groups[group]
        return members[0] if len(members) == 1 else None

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        group = self.group_of[task]
        return self._tower_parameters(group) if self._owner(group) == task else []

    def _tower_parameters(self, group: int) -> list[nn.Parameter]:
        tower = self.tower(group)
        return [p for index in range(tower.count) for p in tower.layer_parameters(index)]

    def extend_layer_groups(self, groups: list[list[nn.Parameter]]) -> None:
        first = 1 if self.split.copy else 0  # group 0's tower of a copy split is the encoder's: in its groups already
        for g in range(first, len(self.groups)):
            tower = self.tower(g)
            for index in range(tower.count):
                groups[tower.depth(index)].extend(tower.layer_parameters(index))
