"""Multi-gate mixture of experts (Ma et al. 2018, "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts", KDD), for text.

Why: tasks that conflict can use different experts instead of fighting over one encoder, and tasks that
agree can share them; each task's gate learns the mixture. Here the experts sit on a shared bottom
(``shared_layers``, default 0: only the input representation is shared, as the paper's experts read the
input; with ``blocks: copy`` an expert is a copy of the encoder layers above it, expert 0 being the
encoder's own, the others freshly initialised; with ``blocks: ffn`` a feed-forward block on the whole
encoder, e.g. a transformer), and one softmax gate per task mixes them per token, from the
token's state below the experts (``gates.TokenGate``). Every layer of the experts is mixed with the
token's gate weights, so heads read any layer as usual. With one expert the model is hard sharing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates
from polytask.models.sharing.gates import TokenGate, mix
from polytask.models.sharing.layers import Split, UpperLayers


class MultiGateMixtureOfExperts(SharingArchitecture):
    """``experts`` experts above a shared bottom, mixed per token by one gate per task (the gates are task-specific)."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__(encoder, config, tasks)
        self.split = Split.resolve(encoder, config, default_shared=0)  # experts read the input (Ma et al.)
        first = self.split.upper_layers(encoder, own=self.split.copy)
        others = [self.split.upper_layers(encoder) for _ in range(config.experts - 1)]
        if self.split.copy:
            object.__setattr__(self, "_first_expert", first)  # the encoder's own upper layers
            self.experts = nn.ModuleList(others)
        else:
            self.experts = nn.ModuleList([first, *others])
        width = self.split.dims[self.split.top_shared]
        self.gates = nn.ModuleDict({task: TokenGate(width, config.experts) for task in self.tasks})

    @property
    def layer_dims(self) -> list[int]:
        return list(self.split.dims)

    def all_experts(self) -> list[UpperLayers]:
        return [self._first_expert, *self.experts] if self.split.copy else list(self.experts)

    def build(self) -> None:
        for expert in self.experts:
            expert.reinitialise()

    def gate_weights(self, states: Tensor, tasks: Sequence[str]) -> dict[str, Tensor]:
        """Each task's ``[batch, words, experts]`` mixture weights from the token states below the experts."""
        return {task: self.gates[task](states) for task in tasks}

    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        mask = inputs["mask"]
        bottom = self.split.run_bottom(self.encoder, inputs)
        below = bottom[-1]
        outputs = [expert.run(self.encoder, below, mask, inputs) for expert in self.all_experts()]
        layers = [[cut.read(expert[j]) for expert in outputs] for j in range(self.split.upper)]
        weights = self.gate_weights(cut.read(below), tasks)
        flags = [True] * len(bottom) + [False] * self.split.upper
        return {task: TaskStates([*bottom, *(mix(weights[task], layer) for layer in layers)], flags, mask)
                for task in tasks}

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.gates[task].parameters())

    def extend_layer_groups(self, groups: list[list[nn.Parameter]]) -> None:
        for expert in self.experts:  # the first expert of a copy split is the encoder's own: in its groups already
            for index in range(expert.count):
                groups[expert.depth(index)].extend(expert.layer_parameters(index))
