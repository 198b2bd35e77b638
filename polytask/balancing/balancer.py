"""The one place where a training step's per-task losses become parameter gradients.

The trainer knows only this interface: it computes the per-task losses of a step, calls
``Balancer.backward`` (which must leave ``.grad`` set on every trainable parameter that
received gradient), steps the optimizer, then calls ``after_optimizer_step``. Weightings,
gradient aggregators and the per-task gradient engine all live behind it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.reduce import GradientReduce


@dataclass
class StepContext:
    """What a balancer may use in one step besides the losses.

    ``shared_parameters`` are the encoder's trainable parameters by qualified name (methods
    act on them); every other trainable parameter is task-specific. ``representation`` holds the shared
    tensors the heads read (the tapped encoder layers), for representation-gradient modes.
    ``recompute_losses`` re-runs the forward pass on the same batch without gradient, for
    methods that look at the losses after the optimizer step (FAMO). ``row_lookups`` are the
    step's embedding-table lookups in the shared encoder (``RowLookupRecorder``): with them the
    gradient engine takes those tables' per-task gradients at the rows read, not as dense tables.
    """

    shared_parameters: dict[str, nn.Parameter]
    representation: list[Tensor] = field(default_factory=list)
    step: int = 0
    epoch: int | None = None
    recompute_losses: Callable[[], dict[str, Tensor]] | None = None
    row_lookups: list[Any] = field(default_factory=list)


class Balancer(ABC):
    """Turns per-task losses into gradients; stateful methods expose their state.

    ``reduce`` is the balancer's reduce hook (``balancing.reduce.GradientReduce``): every backward
    pass and every statistic a method reads across data-parallel ranks goes through it, so that N
    processes give the update of one process on the union batch. The trainer sets it; it defaults to
    one process without a loss scale.
    """

    name: str = ""
    _reduce: GradientReduce | None = None

    @property
    def reduce(self) -> GradientReduce:
        if self._reduce is None:
            self._reduce = GradientReduce()
        return self._reduce

    @reduce.setter
    def reduce(self, value: GradientReduce) -> None:
        self._reduce = value

    @abstractmethod
    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        """Back-propagate the step's losses; return JSON-able diagnostics (weights, norms, ...).

        ``losses`` holds only the tasks present in this step (partial labels).
        """

    def parameters(self) -> Iterable[nn.Parameter]:
        """Learnable parameters of the method itself (e.g. UW log-variances), optimised with the model."""
        return ()

    def after_optimizer_step(self, losses: Mapping[str, Tensor], context: StepContext) -> None:
        """Hook called after ``optimizer.step()``; ``losses`` are the (detached) pre-step losses."""

    def to(self, device: torch.device) -> Balancer:
        """Move the method's parameters and tensor state to ``device`` (before the optimizer is built)."""
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
