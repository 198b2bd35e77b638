"""Typed interfaces of gradient methods, and the balancer that runs them on the gradient engine.

A ``GramianWeighting`` maps the T×T Gramian of the present tasks' gradients to T weights (the
update is Σ wᵢ gᵢ); an ``Aggregator`` maps the T×P Jacobian itself to one update vector. Methods
are pure functions of these matrices plus their own state keyed by task names, so one method
serves every mode of the engine and steps where only some tasks are present.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.balancer import Balancer, StepContext
from polytask.balancing.engine import (
    MODES,
    GradientEngine,
    Mode,
    TaskJacobian,
    VjpStrategy,
    gradient_statistics,
)
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

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


GradientMethod = GramianWeighting | Aggregator


class GradientBalancer(Balancer):
    """Runs a gradient method on the engine's per-task gradients and writes ``.grad``.

    Why: the trainer sees one ``Balancer``; the mode (exact / representation / subset) and the
    recomputation period are engine settings, not method code.
    With ``update_every=k`` the weights are recomputed every k steps and reused in between (one
    backward pass of Σ wᵢ Lᵢ); a step whose present tasks differ from the cached ones recomputes.
    """

    def __init__(
        self,
        method: GradientMethod,
        task_names: Sequence[str] = (),
        *,
        mode: Mode = "exact",
        update_every: int = 1,
        shared_params: Sequence[str] | None = None,
        vjp: VjpStrategy = "auto",
        name: str = "",
    ):
        if not isinstance(update_every, int) or isinstance(update_every, bool) or update_every < 1:
            raise ConfigError(f"must be a positive integer, got {update_every!r}", field="balancing.update_every")
        if mode not in method.supported_modes:
            raise ConfigError(
                f"{name or type(method).__name__} supports modes {', '.join(method.supported_modes)}, not {mode!r}",
                field="balancing.mode",
            )
        if update_every > 1 and not isinstance(method, GramianWeighting):
            raise ConfigError(
                f"{name or type(method).__name__} produces no task weights to reuse; use update_every: 1",
                field="balancing.update_every",
            )
        if shared_params and mode != "subset":
            raise ConfigError("shared_params is only used by mode 'subset'", field="balancing.shared_params")
        self.method = method
        self.task_names = list(task_names)
        self.mode = mode
        self.update_every = update_every
        self.engine = GradientEngine(mode, tuple(shared_params or ()), vjp)
        self.name = name
        self._weights: dict[str, float] | None = None
        self._steps_since_update = 0

    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        tasks = list(losses)
        if not tasks:
            return {"weights": {}}
        if not any(p.requires_grad for p in context.shared_parameters.values()):
            # A frozen encoder: the method has no shared parameters to act on; heads get their own gradients.
            self.reduce.backward(torch.stack([losses[t] for t in tasks]).sum())
            return {"weights": dict.fromkeys(tasks, 1.0), "recomputed": False}
        if self._can_reuse(tasks):
            self._steps_since_update += 1
            self.engine.weighted_backward(losses, self._weights, context, self.reduce)
            return {"weights": dict(self._weights), "recomputed": False}

        jacobian = self.engine.task_jacobian(losses, context, self.reduce)
        gramian = self.engine.gramian(jacobian, self.reduce)
        if not bool(torch.isfinite(gramian).all()):
            # inf/NaN gradients (an fp16 overflow): the method is not run; NaN gradients make the
            # trainer skip the step (and count it), the method's state and cached weights untouched.
            nan = torch.full((len(tasks),), float("nan"), dtype=gramian.dtype, device=gramian.device)
            update = jacobian.combine(nan) if self.mode != "subset" else None
            self.engine.apply_update(jacobian, update, nan, losses, context, self.reduce)
            return {"weights": {t: float("nan") for t in tasks}, "recomputed": False, "nonfinite": True}
        stats: dict[str, Any] = gradient_statistics(tasks, gramian)
        if isinstance(self.method, GramianWeighting):
            weights = self.method(gramian.detach().double(), tasks).to(gramian.dtype)
            update = jacobian.combine(weights) if self.mode != "subset" else None
            stats["weights"] = {t: float(w) for t, w in zip(tasks, weights.tolist())}
            self._weights = stats["weights"]
            self._steps_since_update = 1
        else:
            weights = None
            update = self.method.aggregate_jacobian(jacobian)
            # GradDrop-like aggregators sum masked task gradients with coefficient 1.
            stats["weights"] = dict.fromkeys(tasks, 1.0)
        self.engine.apply_update(jacobian, update, weights, losses, context, self.reduce)
        stats["recomputed"] = True
        if self.engine.strategy is not None:
            stats["vjp"] = self.engine.strategy
        return stats

    def _can_reuse(self, tasks: list[str]) -> bool:
        return (
            self.update_every > 1
            and self._weights is not None
            and self._steps_since_update < self.update_every
            and set(self._weights) == set(tasks)
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.method.state_dict(),
            "weights": dict(self._weights) if self._weights is not None else None,
            "steps_since_update": self._steps_since_update,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.method.load_state_dict(state.get("method", {}))
        weights = state.get("weights")
        self._weights = dict(weights) if weights is not None else None
        self._steps_since_update = int(state.get("steps_since_update", 0))
