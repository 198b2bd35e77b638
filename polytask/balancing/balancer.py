"""The one place where a training step's per-task losses become parameter gradients.

The trainer knows only this interface: it ``attach``es the balancer to the shared encoder once,
runs each step's forward pass inside ``watch_forward``, computes the per-task losses, calls
``Balancer.backward`` (which must leave ``.grad`` set on every trainable parameter that
received gradient), steps the optimizer, then calls ``after_optimizer_step``. Loss weightings,
gradient aggregators and the per-task gradient engine all live behind it.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.reduce import GradientReduce


@dataclass(frozen=True)
class RepresentationRows:
    """Where one representation tensor's rows sit in the whole step (every rank and micro-batch).

    ``layer`` says which of the model's representation tensors it is (the same on every rank);
    ``examples`` holds the step-wide index of each row's example (int64). Methods that draw per
    coordinate (GradDrop) key their draws by these, so every split of a step draws alike.
    """

    layer: int
    examples: Tensor


@dataclass
class StepContext:
    """What a balancer may use in one step besides the losses.

    ``shared_parameters`` are the encoder's trainable parameters by qualified name (methods
    act on them); every other trainable parameter is task-specific. ``representation`` holds the shared
    tensors the heads read (the tapped encoder layers), for representation-gradient modes, and
    ``representation_rows`` where their rows sit in the whole step (default: one micro-batch,
    tensor i is layer i, row j example j). ``recompute_losses`` re-runs the forward pass on the
    same batch without gradient, for methods that look at the losses after the optimizer step (FAMO).
    """

    shared_parameters: dict[str, nn.Parameter]
    representation: list[Tensor] = field(default_factory=list)
    step: int = 0
    epoch: int | None = None
    recompute_losses: Callable[[], dict[str, Tensor]] | None = None
    representation_rows: list[RepresentationRows] = field(default_factory=list)

    def rows_of_representation(self) -> list[RepresentationRows]:
        """``representation_rows``, or the default for one micro-batch when none were given."""
        if self.representation_rows:
            return list(self.representation_rows)
        return [RepresentationRows(i, torch.arange(r.shape[0])) for i, r in enumerate(self.representation)]


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

    def attach(self, shared: nn.Module) -> None:
        """Called once with the shared encoder before training: a method that watches its forward passes hooks it here."""

    def watch_forward(self) -> contextlib.AbstractContextManager:
        """The context of a step's forward pass (the gradient engine records the embedding rows read in it)."""
        return contextlib.nullcontext()

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
