"""Loss weightings: balancing methods whose update is the gradient of one scalar built from the losses.

A :class:`LossWeighting` maps a step's per-task losses (with its own history and learned
per-task scalars) to a :class:`Combination`: the scalar to back-propagate and the effective
weight it puts on each task's loss. The base class turns that into the trainer's
:class:`~polytask.balancing.balancer.Balancer` contract, so a method is one ``combine``.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.balancer import Balancer, StepContext


@dataclass
class Combination:
    """One step of a loss weighting: the scalar to back-propagate and how it weighs each loss.

    ``loss``'s gradient is the method's whole update. For most methods it is ``Σ w_t L_t``
    with detached weights; UW, IMTL-L, GLS and FAMO combine the losses non-linearly; GradNorm
    adds a term whose value is zero but whose gradient carries the method's own update to its
    weights. (DB-MTL, whose shared update is a sum of gradient averages, overrides ``backward``
    and writes it through the gradient engine instead.) ``weights`` holds the effective
    weight ``∂loss/∂L_t`` on each present task's loss; ``diagnostics`` extra JSON-able stats.
    """

    loss: Tensor
    weights: Mapping[str, Tensor | float]
    diagnostics: dict[str, Any] = field(default_factory=dict)


def weighted_sum(losses: Mapping[str, Tensor], weights: Mapping[str, Tensor | float]) -> Combination:
    """The linear combination ``Σ w_t L_t`` with the weights held constant."""
    detached = {task: w.detach() if isinstance(w, Tensor) else float(w) for task, w in weights.items()}
    total = sum(detached[task] * loss for task, loss in losses.items())
    return Combination(loss=total, weights=detached)


def zero_valued(tensor: Tensor) -> Tensor:
    """``tensor - tensor.detach()``: zero in value, the identity in gradient."""
    return tensor - tensor.detach()


def check_option(condition: bool, message: str) -> None:
    """Raise TypeError, which the method builder reports as a config error, unless ``condition``."""
    if not condition:
        raise TypeError(message)


def per_task_option(
    value: float | Mapping[str, float], task_names: Sequence[str], option: str, default: float
) -> dict[str, float]:
    """Expand an option given as one number or as ``{task: number}`` (missing tasks: ``default``)."""
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(task_names))
        check_option(not unknown, f"{option} names unknown tasks {unknown}; tasks are {list(task_names)}")
        check_option(
            all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()),
            f"{option} values must be numbers",
        )
        return {task: float(value.get(task, default)) for task in task_names}
    check_option(
        isinstance(value, (int, float)) and not isinstance(value, bool), f"{option} must be a number or a mapping"
    )
    return {task: float(value) for task in task_names}


class LossWeighting(Balancer):
    """Base of the loss weightings: ``backward`` back-propagates what ``combine`` returns.

    Learned per-task scalars (UW log-variances, GradNorm weights, ...) live in
    ``self.scalars``, one 0-dim parameter per task, on the run's device (``to``): the trainer
    optimises them with the model; checkpoints restore them in place. Every piece of state is keyed by task name, so a step may
    carry any subset of the tasks (partial labels); each method documents how it treats the
    tasks absent from a step.
    """

    def __init__(self, task_names: Sequence[str]) -> None:
        check_option(
            not isinstance(task_names, str) and len(task_names) > 0, "task_names must be a non-empty list"
        )
        check_option(len(set(task_names)) == len(task_names), f"task_names has duplicates: {list(task_names)}")
        self.task_names: list[str] = list(task_names)
        self.scalars: dict[str, nn.Parameter] = {}

    def _learn_scalars(self, init: Mapping[str, float]) -> None:
        self.scalars = {task: nn.Parameter(torch.tensor(float(init[task]))) for task in self.task_names}

    @abstractmethod
    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        """The scalar whose gradient is this step's update, and the weight it puts on each loss."""

    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        self._check_tasks(losses)
        combination = self.combine(losses, context)
        self.reduce.backward(combination.loss)
        return {"weights": _as_floats(combination.weights), **combination.diagnostics}

    def parameters(self) -> Iterable[nn.Parameter]:
        return list(self.scalars.values())

    def to(self, device: torch.device) -> LossWeighting:
        self.scalars = {task: nn.Parameter(p.detach().to(device), requires_grad=p.requires_grad)
                        for task, p in self.scalars.items()}
        return self

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"scalars": {task: p.detach().clone() for task, p in self.scalars.items()}}
        state.update(self.extra_state())
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            for task, value in state.get("scalars", {}).items():
                if task in self.scalars:  # in-place, so an optimizer holding the parameter keeps it
                    self.scalars[task].copy_(torch.as_tensor(value))
        self.load_extra_state(state)

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond ``self.scalars`` (histories, logits, buffers): JSON-able or tensors."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def _check_tasks(self, losses: Mapping[str, Tensor]) -> None:
        if not losses:
            raise ValueError(f"{self.name}: a step needs at least one task loss")
        unknown = [task for task in losses if task not in self.task_names]
        if unknown:
            raise ValueError(f"{self.name}: losses for unknown tasks {unknown}; tasks are {self.task_names}")


def _as_floats(values: Mapping[str, Tensor | float]) -> dict[str, float]:
    """Python floats, read in one transfer per device that holds some of them."""
    floats = {task: float(v) for task, v in values.items() if not isinstance(v, Tensor)}
    by_device: dict[torch.device, dict[str, Tensor]] = {}
    for task, v in values.items():
        if isinstance(v, Tensor):
            by_device.setdefault(v.device, {})[task] = v
    for tensors in by_device.values():
        stacked = torch.stack([v.detach().to(torch.float32).reshape(()) for v in tensors.values()])
        floats.update(zip(tensors, stacked.tolist()))
    return {task: floats[task] for task in values}
