"""DB-MTL: dual balancing by a log transform of the losses and equal-magnitude shared gradients."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.engine import ExactMode
from polytask.balancing.jacobian import TaskJacobian
from polytask.balancing.loss_weighting import Combination, LossWeighting, check_option
from polytask.balancing.methods import register_method

_EPSILON = 1e-8


@register_method(
    "db_mtl",
    kind="loss weighting",
    needs="gradients",
    paper="Lin et al., Dual-Balancing for Multi-Task Learning, arXiv:2308.12029, 2023",
)
class DualBalancing(LossWeighting):
    """Back-propagate ``log(L_t + ε)``; the shared parameters get ``Σ_t α_t ḡ_t``, terms of equal norm.

    Why: the log makes every task's loss scale-free (loss-scale balancing) and rescaling each
    task's averaged shared gradient to the largest norm stops small-gradient tasks from being
    drowned out (gradient-magnitude balancing).
    B. Lin, W. Jiang, F. Ye, Y. Zhang, P. Chen, Y.-C. Chen, S. Liu, J. T. Kwok,
    "Dual-Balancing for Multi-Task Learning", arXiv:2308.12029, 2023 (as in LibMTL's DB_MTL).

    Per step, for each present task: ``g_t = ∇_shared log(L_t + 1e-8)`` (one autograd pass on
    the shared parameters per task), ``ḡ_t ← β_k ḡ_t + (1 - β_k) g_t`` with
    ``β_k = beta / k^beta_sigma`` (k: the task's update count, ``ḡ_t`` starting at 0), and
    ``α_t = max_j ||ḡ_j|| / (||ḡ_t|| + 1e-8)``. The heads receive ``∇ log(L_t + 1e-8)``; the
    shared parameters receive ``Σ_t α_t ḡ_t``, written directly by the gradient engine (mode
    ``exact``). Cost: T backward passes over the shared part, as an exact gradient aggregator.

    Options: ``beta`` (default 0.9), ``beta_sigma`` (default 0). Partial labels: only present
    tasks' averages update, and the max and sum run over the present tasks.
    ``weights`` reports ``α_t / (L_t + 1e-8)``: the weight on this step's ``∇L_t`` in the
    shared update, leaving the moving average aside; ``grad_scales`` reports ``α_t``.
    State: the moving-average gradient ``ḡ_t`` (a flat tensor over the shared parameters) and
    the update count per task; both restart when the set of trainable shared parameters changes
    size (gradual unfreezing). With none trainable (a frozen encoder) only the log transform acts.
    """

    name = "db_mtl"

    def __init__(self, task_names: Sequence[str], *, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        super().__init__(task_names)
        check_option(isinstance(beta, (int, float)) and 0 <= beta < 1, "beta must be in [0, 1)")
        check_option(isinstance(beta_sigma, (int, float)) and beta_sigma >= 0, "beta_sigma must be >= 0")
        self.beta = float(beta)
        self.beta_sigma = float(beta_sigma)
        self.buffers: dict[str, Tensor] = {}
        self.updates: dict[str, int] = {}
        # no row lookups (dense tables): the moving averages need every step's gradient in the same coordinates
        self.engine = ExactMode()

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        raise NotImplementedError("db_mtl writes the shared update itself: call backward()")

    def backward(self, losses: Mapping[str, Tensor], context: StepContext) -> dict[str, Any]:
        """Per-task gradients of ``log(L_t + ε)`` from the gradient engine (T passes, the heads get
        their own), the moving averages updated in place, ``Σ_t α_t ḡ_t`` written to the shared ``.grad``."""
        self._check_tasks(losses)
        tasks = list(losses)
        log_losses = {task: torch.log(losses[task] + _EPSILON) for task in tasks}
        values = torch.stack([losses[task].detach() for task in tasks]) + _EPSILON
        if not any(p.requires_grad for p in context.shared_parameters.values()):
            # a frozen encoder: no shared gradient to balance, the heads get ∇ log L_t
            self.reduce.backward(torch.stack(list(log_losses.values())).sum())
            return {"weights": dict(zip(tasks, (1 / values).tolist()))}
        jacobian = self.engine.task_jacobian(log_losses, context, self.reduce)
        sizes = [t.numel() for t in jacobian.targets]
        if not all(bool(torch.isfinite(block).all()) for row in jacobian.rows for block in row):
            # inf/NaN gradients (fp16 overflow): the averages stay as they were; NaN makes the trainer skip the step
            nan = torch.full((len(tasks),), float("nan"), dtype=values.dtype, device=values.device)
            self.engine.apply_update(jacobian, jacobian.combine(nan), log_losses, context, self.reduce)
            return {"weights": {t: float("nan") for t in tasks}, "nonfinite": True}
        for task, row in zip(tasks, jacobian.rows):
            buffer = self.buffers.get(task)
            if buffer is not None and buffer.numel() != sum(sizes):
                buffer = None  # the trainable shared set changed (gradual unfreezing): restart the average
                self.updates[task] = 0
            if buffer is None:
                buffer = row[0].new_zeros(sum(sizes))
            count = self.updates.get(task, 0) + 1
            beta = self.beta / count**self.beta_sigma
            buffer = buffer.to(row[0].device, row[0].dtype)
            for block, gradient in zip(torch.split(buffer, sizes), row):
                block.mul_(beta).add_(gradient.reshape(-1), alpha=1 - beta)
            self.buffers[task], self.updates[task] = buffer, count
        norms = torch.stack([self.buffers[task].norm() for task in tasks])
        scales = norms.max() / (norms + _EPSILON)
        averaged = TaskJacobian(tasks, [jacobian.split(self.buffers[task]) for task in tasks], jacobian.targets)
        update = averaged.combine(scales)
        self.engine.apply_update(jacobian, update, log_losses, context, self.reduce)
        return {"weights": dict(zip(tasks, (scales / values).tolist())),
                "grad_scales": dict(zip(tasks, scales.tolist()))}

    def extra_state(self) -> dict[str, Any]:
        return {
            "buffers": {task: b.detach().clone() for task, b in self.buffers.items()},
            "updates": dict(self.updates),
            "engine": self.engine.state_dict(),
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.buffers = {task: torch.as_tensor(b).clone() for task, b in state["buffers"].items()}
        self.updates = dict(state["updates"])
        self.engine.load_state_dict(state.get("engine", {}))
