"""Typed interfaces of gradient methods, and the balancer that runs them on the gradient engine.

A ``GramianWeighting`` maps the T×T Gramian of the present tasks' gradients to T weights (the
update is Σ wᵢ gᵢ); an ``Aggregator`` maps the T×P Jacobian itself to one update vector. Methods
are pure functions of these matrices plus their own state keyed by task names, so one method
serves every mode of the engine and steps where only some tasks are present.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.balancer import Balancer, StepContext
from polytask.balancing.engine import MODES, JacobianMode, build_engine
from polytask.balancing.jacobian import TaskJacobian
from polytask.balancing.reduce import GradientReduce
from polytask.balancing.row_lookups import RowLookup, RowLookupRecorder
from polytask.balancing.vjp import VjpStrategy
from polytask.errors import ConfigError

NON_CONFLICTING = "non_conflicting"
"""The update never opposes a task: ⟨update, gᵢ⟩ ≥ 0 for every task i (Quinton & Rey 2024, TorchJD)."""
PERMUTATION_INVARIANT = "permutation_invariant"
"""Reordering the tasks does not change the update."""
POSITIVELY_HOMOGENEOUS = "positively_homogeneous"
"""Scaling every gradient by λ > 0 scales the update by λ."""
PROPERTIES = (NON_CONFLICTING, PERMUTATION_INVARIANT, POSITIVELY_HOMOGENEOUS)


class GramianWeighting(ABC):
    """Gramian (T×T, float64) of the present tasks' gradients → T weights (float64).

    Why: most methods only need inner products, which the engine gets without a T×P concatenation
    in representation and subset modes, and which make every-k reuse possible.
    """

    supported_modes: tuple[str, ...] = MODES
    promises: frozenset[str] = frozenset()
    """Which of ``PROPERTIES`` the method guarantees; tests check each on every registered method."""

    def __call__(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        return self.weights(gramian, tasks)

    @abstractmethod
    def weights(self, gramian: Tensor, tasks: Sequence[str]) -> Tensor:
        """The weights wᵢ of the update Σ wᵢ gᵢ, in the order of ``tasks``."""

    def write_update(self, engine: JacobianMode, jacobian: TaskJacobian, gramian: Tensor,
                     losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce) -> dict[str, Any]:
        """The weights from the Gramian, Σ wᵢ gᵢ written by the engine's mode."""
        weights = self(gramian.detach().double(), jacobian.tasks).to(gramian.dtype)
        engine.apply_weights(jacobian, weights, losses, context, reduce)
        return {"weights": {t: float(w) for t, w in zip(jacobian.tasks, weights.tolist())}}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class Aggregator(ABC):
    """Jacobian (T×P) of the present tasks' gradients → one update vector (P).

    Why: per-coordinate methods (GradDrop) cannot be written as weights on the Gramian.
    """

    # An update that is not Σ wᵢ gᵢ cannot be pushed through the rest of the model from a
    # parameter subset, so aggregators support the modes where the engine holds the full update.
    supported_modes: tuple[str, ...] = ("exact", "representation")
    promises: frozenset[str] = frozenset()
    """Which of ``PROPERTIES`` the method guarantees; tests check each on every registered method."""

    def __call__(self, jacobian: Tensor, tasks: Sequence[str]) -> Tensor:
        return self.aggregate(jacobian, tasks)

    @abstractmethod
    def aggregate(self, jacobian: Tensor, tasks: Sequence[str]) -> Tensor:
        """The update vector of length P."""

    def aggregate_jacobian(self, jacobian: TaskJacobian) -> list[Tensor]:
        """The update, one tensor per target of the engine's Jacobian.

        The default stacks the T×P matrix for ``aggregate``; a coordinate-wise method may work
        block by block instead and never hold the stacked copy.
        """
        return jacobian.split(self.aggregate(jacobian.matrix(), jacobian.tasks))

    def write_update(self, engine: JacobianMode, jacobian: TaskJacobian, gramian: Tensor,
                     losses: Mapping[str, Tensor], context: StepContext, reduce: GradientReduce) -> dict[str, Any]:
        """The aggregated update written by the engine's mode; GradDrop-like aggregators sum masked
        task gradients with coefficient 1, reported as the weights."""
        engine.apply_update(jacobian, self.aggregate_jacobian(jacobian), losses, context, reduce)
        return {"weights": dict.fromkeys(jacobian.tasks, 1.0)}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


GradientMethod = GramianWeighting | Aggregator


class GradientBalancer(Balancer):
    """Runs a gradient method on the engine (``engine.build_engine``: one object per mode) and writes ``.grad``.

    Why: the trainer sees one ``Balancer``; the mode (exact / representation / subset) and the
    recomputation period (every-k) are engine objects, not method code. The balancer owns the
    recorder of the shared encoder's embedding lookups (``attach``, ``watch_forward``): with
    ``row_lookups`` on, the engine takes those tables' per-task gradients at the rows read.
    """

    def __init__(
        self,
        method: GradientMethod,
        task_names: Sequence[str] = (),
        *,
        mode: str = "exact",
        update_every: int = 1,
        shared_params: Sequence[str] | None = None,
        vjp: VjpStrategy = "auto",
        name: str = "",
    ):
        if mode in MODES and mode not in method.supported_modes:
            raise ConfigError(
                f"{name or type(method).__name__} supports modes {', '.join(method.supported_modes)}, not {mode!r}",
                field="balancing.mode",
            )
        if isinstance(update_every, int) and update_every > 1 and not isinstance(method, GramianWeighting):
            raise ConfigError(
                f"{name or type(method).__name__} produces no task weights to reuse; use update_every: 1",
                field="balancing.update_every",
            )
        self.engine = build_engine(mode, update_every=update_every, shared_params=tuple(shared_params or ()), vjp=vjp)
        self.method = method
        self.task_names = list(task_names)
        self.mode = mode
        self.update_every = update_every
        self.name = name
        self.row_lookups = True  # take embedding tables' gradients at the rows read (``row_lookups``)
        self._recorder: RowLookupRecorder | None = None
        self._lookups: list[RowLookup] = []

    def attach(self, shared: nn.Module) -> None:
        if self._recorder is not None:
            self._recorder.remove()
        self._recorder = RowLookupRecorder(shared, always=False)

    @contextlib.contextmanager
    def watch_forward(self) -> Iterator[None]:
        """Record the embedding rows the step's forward pass reads, for the next ``backward``."""
        if self._recorder is None:
            yield
            return
        self._recorder.take()
        try:
            with self._recorder.recording():
                yield
        finally:
            self._lookups = self._recorder.take()

    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        lookups, self._lookups = self._lookups, []
        tasks = list(losses)
        if not tasks:
            return {"weights": {}}
        if not any(p.requires_grad for p in context.shared_parameters.values()):
            # A frozen encoder: the method has no shared parameters to act on; heads get their own gradients.
            self.reduce.backward(torch.stack([losses[t] for t in tasks]).sum())
            return {"weights": dict.fromkeys(tasks, 1.0), "recomputed": False}
        return self.engine.step(self.method, losses, context, self.reduce, lookups if self.row_lookups else ())

    def state_dict(self) -> dict[str, Any]:
        return {"method": self.method.state_dict(), **self.engine.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.method.load_state_dict(state.get("method", {}))
        self.engine.load_state_dict(state)
