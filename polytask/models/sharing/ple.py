"""Progressive layered extraction and its one-level form, customized gate control (Tang et al. 2020,
"Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized
Recommendations", RecSys), for text.

Why: MMoE's experts are all shared, so a task that conflicts with the others still pulls on every
expert; PLE gives every task experts of its own beside the shared ones. At each extraction level a
task's gate mixes its own experts and the shared experts (per token, from the task's state below:
``gates.TokenGate``) into the task's state for the next level, and a shared gate mixes every expert
into the shared state for the next level; the last level has no shared gate. With ``blocks: copy``
each level is one encoder layer above ``shared_layers`` (the first shared expert of a level is the
encoder's own layer, every other expert a freshly initialised copy); with ``blocks: ffn`` each level is
a feed-forward block on the whole encoder. ``cgc`` is one level.

A task's own parameters are its last level's experts and gate (earlier ones feed the shared gates,
so every task reaches them). A task added later (``polytask finetune``) owns its experts and gates
at every level; the shared gates do not read its experts, so the trained tasks compute as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.errors import ConfigError
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates
from polytask.models.sharing.gates import TokenGate, mix
from polytask.models.sharing.layers import FeedForwardLayers, Split, StackLayers, UpperLayers


class ProgressiveLayeredExtraction(SharingArchitecture):
    """``levels`` extraction levels of shared and task-specific experts above a shared bottom."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__(encoder, config, tasks)
        top = len(encoder.layer_dims) - 1
        self.split = Split.resolve(encoder, config, default_shared=self.default_shared(top))
        self.check_levels(self.split.upper)
        dims = self.split.dims
        levels = range(self.split.upper)
        own_first = [self._expert(encoder, level, own=True) for level in levels] if self.split.copy else []
        object.__setattr__(self, "_encoder_experts", own_first)  # the encoder's own layers: registered there
        self.shared_experts = nn.ModuleList(
            nn.ModuleList(self._expert(encoder, level) for _ in range(config.shared_experts - len(own_first[:1])))
            for level in levels)
        self.task_experts = nn.ModuleDict({task: nn.ModuleList(
            nn.ModuleList(self._expert(encoder, level) for _ in range(config.task_experts)) for level in levels)
            for task in self.tasks})
        mixed = config.shared_experts + config.task_experts
        self.task_gates = nn.ModuleDict({task: nn.ModuleList(
            TokenGate(dims[self.split.top_shared + level], mixed) for level in levels) for task in self.tasks})
        every = config.shared_experts + config.task_experts * len(self.original)
        self.shared_gates = nn.ModuleList(TokenGate(dims[self.split.top_shared + level], every)
                                          for level in list(levels)[:-1])

    @staticmethod
    def default_shared(top: int) -> int:
        return max(0, top - 2)  # two extraction levels where the encoder has the layers

    def check_levels(self, levels: int) -> None:
        """Any number of levels (``cgc`` allows one)."""

    def _expert(self, encoder: Encoder, level: int, own: bool = False) -> UpperLayers:
        if self.split.copy:
            return StackLayers(encoder, self.split.top_shared + 1 + level, 1, own)
        return FeedForwardLayers(self.split.dims[-1], 1, self.split.hidden)

    @property
    def layer_dims(self) -> list[int]:
        return list(self.split.dims)

    @property
    def levels(self) -> int:
        return self.split.upper

    def build(self) -> None:
        for module in (self.shared_experts, self.task_experts):
            for expert in module.modules():
                if isinstance(expert, UpperLayers):
                    expert.reinitialise()

    def level_shared_experts(self, level: int) -> list[UpperLayers]:
        own = self._encoder_experts[level : level + 1]
        return [*own, *self.shared_experts[level]]

    def owns(self, task: str, level: int) -> bool:
        """Whether ``task``'s experts and gate at ``level`` are its own (no shared gate reads what they make)."""
        return task in self.added or level == self.levels - 1

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        mask = inputs["mask"]
        bottom = self.split.run_bottom(self.encoder, inputs)
        shared_in = bottom[-1]
        task_in = dict.fromkeys(self.tasks, shared_in)
        wanted = list(tasks)
        feeding = [t for t in self.original if t not in wanted]  # their experts feed the shared gates
        layers: dict[str, list[Tensor]] = {task: [] for task in wanted}

        def run(expert: UpperLayers, states: Tensor) -> Tensor:
            return expert.run_one(0, self.encoder, states, mask, inputs)

        for level in range(self.levels):
            last = level == self.levels - 1
            shared_out = [run(expert, shared_in) for expert in self.level_shared_experts(level)]
            own_out: dict[str, list[Tensor]] = {}
            next_in: dict[str, Tensor] = {}
            for task in wanted + ([] if last else feeding):
                own = self.owns(task, level)
                below_shared = level == 0 or not self.owns(task, level - 1)
                states = cut.read(task_in[task]) if own and below_shared else task_in[task]
                own_out[task] = [run(expert, states) for expert in self.task_experts[task][level]]
                reads = [cut.read(s) for s in shared_out] if own else shared_out
                next_in[task] = mix(self.task_gates[task][level](states), [*own_out[task], *reads])
                if task in layers:
                    layers[task].append(next_in[task])
            if not last:
                everything = [*shared_out, *(out for t in self.original for out in own_out[t])]
                shared_in = mix(self.shared_gates[level](shared_in), everything)
            task_in.update(next_in)
        return {task: TaskStates([*bottom, *layers[task]],
                                 [True] * len(bottom) + [not self.owns(task, level) for level in range(self.levels)],
                                 mask) for task in wanted}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return [p for level in range(self.levels) if self.owns(task, level)
                for module in (self.task_experts[task][level], self.task_gates[task][level]) for p in module.parameters()]

    def extend_layer_groups(self, groups: list[list[nn.Parameter]]) -> None:
        for level in range(self.levels):
            depth = self.split.top_shared + 1 + level if self.split.copy else -1
            modules = [*self.shared_experts[level], *(self.task_experts[t][level] for t in self.tasks),
                       *(self.task_gates[t][level] for t in self.tasks),
                       *([self.shared_gates[level]] if level < len(self.shared_gates) else [])]
            groups[depth].extend(p for module in modules for p in module.parameters())


class CustomizedGateControl(ProgressiveLayeredExtraction):
    """CGC: one extraction level of shared and task-specific experts (PLE's building block)."""

    @staticmethod
    def default_shared(top: int) -> int:
        return top - 1

    def check_levels(self, levels: int) -> None:
        if levels != 1:
            raise ConfigError(f"cgc is one extraction level, the encoder's top layer; shared_layers leaves {levels} "
                              "(use ple for more)", field="sharing.shared_layers")
