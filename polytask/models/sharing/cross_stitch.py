"""Cross-stitch networks (Misra et al. 2016, "Cross-stitch Networks for Multi-task Learning", CVPR), for text.

Why: instead of choosing which layers to share, give every task its own tower and learn how much
of the other towers' states each tower reads: after every layer, tower t continues from
Σₛ α[t, s] hₛ, a learned linear mix (one row of α per tower and layer). α starts at ``init_self`` on a
tower's own state and the rest split evenly over the others (Misra et al.: 0.9 / 0.1); at 1 the
towers are independent. Tower 0 is the encoder itself; the other towers start as copies of it.
By default nothing is shared below the towers, the input representation included (``shared_input:
true`` and ``shared_layers`` share a bottom; ``blocks: ffn`` stitches feed-forward towers on a
shared encoder, e.g. a transformer).

Every task's loss reaches every tower through the mixing, so the towers and α are shared
parameters (balancing methods act on them); a task's own parameters are its head. A task added
later (``polytask finetune``) gets a tower and α rows of its own that read the trained towers,
which do not read it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates
from polytask.models.sharing.layers import Split, Towers, UpperLayers


class CrossStitchSharing(Towers, SharingArchitecture):
    """One tower per task, their states mixed by learned cross-stitch units after every layer."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__(encoder, config, tasks)
        self.split = Split.resolve(encoder, config, default_shared=0, unshared_input=True, shared_input_default=False)
        self.lay_out_towers(encoder, len(self.tasks))
        self.stitches = nn.ModuleList(
            nn.ParameterDict({task: nn.Parameter(self._initial_row(task)) for task in self.tasks})
            for _ in range(self.split.upper))

    def _reads(self, task: str) -> list[str]:
        """The towers ``task``'s tower mixes: every trained task's (and, for a task added later, its own)."""
        return list(self.original) if task in self.original else [*self.original, task]

    def _initial_row(self, task: str) -> Tensor:
        reads = self._reads(task)
        if len(reads) == 1:
            return torch.ones(1)
        row = torch.full((len(reads),), (1.0 - self.config.init_self) / (len(reads) - 1))
        row[reads.index(task)] = self.config.init_self
        return row

    def tower(self, task: str) -> UpperLayers:
        return self.tower_at(self.tasks.index(task))

    @property
    def layer_dims(self) -> list[int]:
        return list(self.split.dims)

    def build(self) -> None:
        self.initialise_towers()

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        mask = inputs["mask"]
        bottom = self.split.run_bottom(self.encoder, inputs)
        running = [*self.original, *(t for t in self.added if t in tasks)]
        states: dict[str, Tensor | None] = dict.fromkeys(running, bottom[-1] if bottom else None)
        mixed: dict[str, list[Tensor]] = {task: [] for task in running}
        for layer in range(self.split.upper):
            out = {task: self.tower(task).run_one(layer, self.encoder, states[task], mask, inputs) for task in running}
            for task in running:
                own = task in self.added
                reads = [out[t] if t == task or not own else cut.read(out[t]) for t in self._reads(task)]
                row = self.stitches[layer][task]
                states[task] = (row.view(-1, 1, 1, 1).to(reads[0].dtype) * torch.stack(reads)).sum(0)
                mixed[task].append(states[task])
        return {task: TaskStates([*bottom, *mixed[task]], [True] * len(bottom) + [task not in self.added] *
                                 self.split.upper, mask) for task in tasks}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        if task not in self.added:
            return []
        return [*self.tower(task).parameters(), *(stitch[task] for stitch in self.stitches)]

    def extend_layer_groups(self, groups: list[list[nn.Parameter]]) -> None:
        for tower in self.towers:  # the first tower of a copy split is the encoder: in its groups already
            for index in range(tower.count):
                groups[tower.depth(index)].extend(tower.layer_parameters(index))
        for layer, stitch in enumerate(self.stitches):
            depth = self.split.top_shared + 1 + layer if self.split.copy else -1
            groups[depth].extend(stitch.values())
