"""The interface every sharing architecture implements, and the representation cut they all report.

A sharing architecture decides which computation the tasks share: given the featurizer's tensors
it returns every task's word states, one tensor per layer (``TaskStates``), which the task's head
reads exactly as it would read a shared encoder's layers. It also says which of its parameters
belong to one task alone (``task_parameters``): everything else trainable is shared, and only the
shared parameters are what balancing methods act on.

The *representation cut* is the set of shared tensors that task-specific modules read (a gate
reading a token's state, a head reading a shared layer, a task's tower reading the shared bottom).
Each such read goes through ``RepresentationCut.read``, which returns an alias (a view) of the
tensor: the aliases separate the shared computation from the task-specific one, none of them
depends on another, and every shared parameter reaches a task's loss only through them. That is
what the gradient engine needs in its two-stage (``representation``) products: gradients at the
aliases are the partial derivatives of each loss with respect to what it reads, so the stage from
the aliases to the shared parameters counts every path once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from polytask.config import SharingConfig
from polytask.models.encoders.base import Encoder


class RepresentationCut:
    """Collects the shared tensors task-specific modules read, each behind one alias (a view).

    Without gradients (evaluation, prediction) the tensors are returned as they are.
    """

    def __init__(self) -> None:
        self.tensors: list[Tensor] = []
        self._aliases: dict[int, Tensor] = {}

    def read(self, tensor: Tensor) -> Tensor:
        """``tensor`` as a task-specific module should read it (the same alias for every such reader)."""
        if not torch.is_grad_enabled() or not tensor.requires_grad:
            return tensor
        alias = self._aliases.get(id(tensor))
        if alias is None:
            alias = self._aliases[id(tensor)] = tensor.view_as(tensor)
            self.tensors.append(alias)
        return alias


@dataclass
class TaskStates:
    """One task's word states: ``layers[i]`` is what its head reads as layer i.

    ``shared[i]`` says whether layer i was computed by shared modules only (a head reading it
    reads it through the representation cut) or by modules of the task's own.
    """

    layers: list[Tensor]
    shared: list[bool]
    mask: Tensor
    segments: Tensor | None = None
    """which sentence of a pair each word is in (hard sharing only; ``EncoderOutput.segments``)"""


class SharingArchitecture(nn.Module, ABC):
    """How the tasks share the encoder: every task's word states from one batch.

    Lifecycle: ``__init__(encoder, config, tasks)`` lays out the structure (``build_sharing`` restores the
    random state after it, so the heads, created next, start as they would under hard sharing), then
    ``build()`` draws the initial weights of everything new (experts, blocks); copies of the encoder's
    layers keep its weights. The encoder stays the
    model's ``encoder`` (it owns the featurizer and its vocabularies); an architecture holds a
    reference to it, not a second registration, and keeps its own modules as submodules.
    Adding an architecture is one file and one ``register_sharing`` line (``models.sharing``).
    """

    exportable: bool = False
    """True when ``polytask export`` can trace the model (the encoder's export twin plus the heads)."""
    task_conditioned_encoders: bool = False
    """True when it works with an encoder that encodes differently per task (per-task adapters)."""

    def __init__(self, encoder: Encoder, config: SharingConfig, tasks: Sequence[str]):
        super().__init__()
        object.__setattr__(self, "encoder", encoder)  # the model's encoder: a reference, not a submodule
        self.config = config
        self.tasks = list(tasks)
        self.added = [task for task in config.added_tasks if task in self.tasks]
        self.original = [task for task in self.tasks if task not in self.added]

    @property
    @abstractmethod
    def layer_dims(self) -> list[int]:
        """The size of every layer of a task's states (what ``heads.TASK.layer`` indexes)."""

    def build(self) -> None:
        """Draw the initial weights of the architecture's new modules (called once, after the heads)."""

    @abstractmethod
    def forward(self, inputs: Mapping[str, Tensor], tasks: Sequence[str], cut: RepresentationCut) -> dict[str, TaskStates]:
        """The states of every task in ``tasks``; task-specific modules read shared tensors through ``cut``."""

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """The parameters only ``task`` uses besides its head (its gate, its tower); none for hard sharing."""
        return []

    def penalty(self) -> Tensor | None:
        """A regulariser added to every step's loss outside balancing (soft sharing's L2 pull), or None."""
        return None

    def extend_layer_groups(self, groups: list[list[nn.Parameter]]) -> None:
        """Add the architecture's own modules' parameters to ``groups`` (the encoder's, bottom to top) by depth.

        Why: layer-wise learning rates and gradual unfreezing treat a copy of encoder layer k like
        layer k. Task-specific parameters may be added too; the model removes them.
        """


def reinitialise(module: nn.Module) -> None:
    """Draw fresh initial weights for every submodule that knows how (``reset_parameters``)."""
    for child in module.modules():
        reset = getattr(child, "reset_parameters", None)
        if callable(reset):
            reset()


def parameters_of(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for module in modules for p in module.parameters()]
