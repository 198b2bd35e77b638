"""FAMO: Fast Adaptive Multitask Optimization, balancing the tasks' log-loss decrease rates."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import (
    Combination,
    LossWeighting,
    check_option,
    per_task_option,
)
from polytask.balancing.methods import register_method

_EPSILON = 1e-8


@register_method(
    "famo",
    kind="loss weighting",
    needs="losses",
    paper="Liu, Feng, Stone & Liu, FAMO: Fast Adaptive Multitask Optimization, NeurIPS 2023",
)
class FAMO(LossWeighting):
    """Back-propagate ``Σ_t (z_t / c) log D_t``, ``z = softmax(ξ)``, learning ξ from the loss decrease.

    Why: it decreases all task losses at a balanced rate, like the gradient-based methods,
    with O(1) time and memory per step: one backward pass plus a loss re-evaluation.
    B. Liu, Y. Feng, P. Stone, Q. Liu, "FAMO: Fast Adaptive Multitask Optimization",
    NeurIPS 2023 (Algorithm 1; follows the authors' reference implementation).

    ``D_t = L_t - min_t + 1e-8`` and ``c = Σ_t z_t / D_t`` (held constant), so the effective
    weight on ``L_t`` is ``z_t / (c D_t)``, summing to 1. After the optimizer step, FAMO
    re-evaluates the losses on the same batch (``context.recompute_losses``), takes
    ``δ_t = log D_t(before) - log D_t(after)`` and steps the logits along
    ``d = J_softmax(ξ)ᵀ δ``, i.e. ``d_t = z_t (δ_t - Σ_j z_j δ_j)``, with L2 decay ``gamma``:
    the paper's Algorithm 1 writes the plain step ``ξ ← ξ - w_lr (d + γ ξ)``
    (``logit_optimizer="sgd"``); the authors' code, and the default here, feed ``d`` to Adam
    with ``weight_decay=gamma`` (``logit_optimizer="adam"``).

    Options: ``gamma`` (logit weight decay, default 0.01), ``w_lr`` (logit learning rate,
    default 0.025), ``min_losses`` (a number or ``{task: L*}``, default 0: the losses' lower
    bounds), ``logit_optimizer`` (``"adam"`` or ``"sgd"``), ``update``: ``"same_batch"`` (the
    paper's δ, at the cost of one extra forward pass per step) or ``"next_batch"`` (no extra
    pass: the losses after step k are read off step k+1's forward pass, on the next batch, so
    δ mixes the update's effect with the batch change; the logit step for step k is taken at
    the start of step k+1, over the tasks present in both). Partial labels: the softmax and
    the logit update run over the tasks present; absent tasks' logits and moments are untouched.
    State: the logits (CPU scalars, stepped by FAMO's own optimizer, not by the trainer), that
    optimizer's state and, with ``next_batch``, the losses waiting for their successor.
    """

    name = "famo"

    def __init__(
        self,
        task_names: Sequence[str],
        *,
        gamma: float = 0.01,
        w_lr: float = 0.025,
        min_losses: float | Mapping[str, float] = 0.0,
        logit_optimizer: str = "adam",
        update: str = "same_batch",
    ) -> None:
        super().__init__(task_names)
        check_option(isinstance(gamma, (int, float)) and gamma >= 0, "gamma must be a number >= 0")
        check_option(isinstance(w_lr, (int, float)) and w_lr > 0, "w_lr must be a number > 0")
        check_option(
            logit_optimizer in ("adam", "sgd"), f"logit_optimizer must be 'adam' or 'sgd', got {logit_optimizer!r}"
        )
        check_option(update in ("same_batch", "next_batch"),
                     f"update must be 'same_batch' or 'next_batch', got {update!r}")
        self.update = update
        self.pending: dict[str, float] = {}  # next_batch: the losses of the last step, before its update
        self.min_losses = per_task_option(min_losses, self.task_names, "min_losses", default=0.0)
        self.logits = {task: nn.Parameter(torch.tensor(0.0)) for task in self.task_names}
        optimizer = torch.optim.Adam if logit_optimizer == "adam" else torch.optim.SGD
        self.optimizer = optimizer(list(self.logits.values()), lr=float(w_lr), weight_decay=float(gamma))

    def task_weights(self, tasks: Sequence[str]) -> Tensor:
        """``z = softmax(ξ)`` over ``tasks``."""
        return torch.softmax(torch.stack([self.logits[task].detach() for task in tasks]), dim=0)

    def _gaps(self, losses: Mapping[str, Tensor]) -> Tensor:
        """``D_t = L_t - min_t + 1e-8`` for the tasks of ``losses``, in order."""
        return torch.stack([losses[task] - self.min_losses[task] for task in losses]) + _EPSILON

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        tasks = list(losses)
        if self.update == "next_batch" and self.pending:
            both = [task for task in tasks if task in self.pending]
            if both:
                self._step_logits({t: torch.tensor(self.pending[t]) for t in both},
                                  {t: losses[t].detach().float().cpu() for t in both})
            self.pending = {}
        gaps = self._gaps(losses)
        z = self.task_weights(tasks).to(gaps.device)
        c = (z / gaps.detach()).sum()
        total = (z / c * torch.log(gaps)).sum()
        effective = z / (c * gaps.detach())
        return Combination(loss=total, weights=dict(zip(tasks, effective.unbind())))

    def after_optimizer_step(self, losses: Mapping[str, Tensor], context: StepContext) -> None:
        tasks = list(losses)
        if self.update == "next_batch":
            self.pending = {task: float(losses[task].detach()) for task in tasks}
            return
        if context.recompute_losses is None:
            raise ValueError("famo needs StepContext.recompute_losses to see the losses after the optimizer step")
        with torch.no_grad():
            after = context.recompute_losses()
        missing = [task for task in tasks if task not in after]
        if missing:
            raise ValueError(f"famo: recompute_losses returned no loss for {missing}")
        self._step_logits({task: losses[task].detach() for task in tasks}, {task: after[task].detach() for task in tasks})

    def _step_logits(self, before: Mapping[str, Tensor], after: Mapping[str, Tensor]) -> None:
        """One logit step from the losses before and after an update, over the tasks of ``before``."""
        tasks = list(before)
        before_gaps = self._gaps(before)
        after_gaps = self._gaps({task: after[task] for task in tasks})
        delta = (torch.log(before_gaps) - torch.log(after_gaps)).float().cpu()
        z = self.task_weights(tasks)
        direction = z * (delta - (z * delta).sum())
        self.optimizer.zero_grad(set_to_none=True)
        for task, value in zip(tasks, direction):
            self.logits[task].grad = value.clone()
        self.optimizer.step()

    def extra_state(self) -> dict[str, Any]:
        return {
            "logits": {task: p.item() for task, p in self.logits.items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "pending": dict(self.pending),
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        with torch.no_grad():
            for task, value in state["logits"].items():
                if task in self.logits:
                    self.logits[task].fill_(float(value))
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.pending = {task: float(value) for task, value in state.get("pending", {}).items()}
