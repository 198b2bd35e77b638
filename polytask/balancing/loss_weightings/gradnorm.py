"""GradNorm: learn task weights that equalise the tasks' gradient norms on the shared layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import (
    Combination,
    LossWeighting,
    check_option,
    zero_valued,
)
from polytask.balancing.methods import register_method

_MIN_WEIGHT = 1e-4  # safeguard: a weight that an update drives to <= 0 would flip its task's gradient


@register_method(
    "gradnorm",
    kind="loss weighting",
    needs="gradients",
    paper="Chen, Badrinarayanan, Lee & Rabinovich, GradNorm: Gradient Normalization for "
    "Adaptive Loss Balancing in Deep Multitask Networks, ICML 2018",
)
class GradNorm(LossWeighting):
    """Back-propagate ``Σ_t w_t L_t``; learn ``w`` so each task's gradient norm tracks its training rate.

    Why: tasks that train slower (relative loss ``L_t / L_t(0)`` higher) get a larger share of
    the shared layer's gradient, at the cost of one gradient per task on that layer only.
    Z. Chen, V. Badrinarayanan, C.-Y. Lee, A. Rabinovich, "GradNorm: Gradient Normalization
    for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018.

    With ``n_t = ||∇_W L_t||`` on the chosen shared parameters W, ``G_t = w_t n_t``,
    ``r_t = (L_t/L_t(0)) / mean_j(L_j/L_j(0))`` and the target ``mean_j(G_j) r_t^α`` held
    constant, the GradNorm loss ``Σ_t |G_t - target_t|`` has gradient
    ``sign(G_t - target_t) n_t`` in ``w_t``. ``combine`` routes exactly that gradient to
    ``w_t`` (through a zero-valued term), so the trainer's optimizer steps the weights with
    the model; ``after_optimizer_step`` renormalises them to sum to the number of tasks.

    Options: ``alpha`` (restoring force, default 1.5); ``shared_params``: prefixes of the
    shared parameter names forming W (default: the last shared weight matrix, i.e. the last
    shared parameter with >= 2 dimensions, else the last shared parameter).
    Partial labels: ``L_t(0)`` is the task's loss at its first step; means run over the tasks
    present; renormalisation rescales the present tasks' weights so all weights still sum to
    the number of tasks. A weight is floored at 1e-4 before renormalising.
    State: ``w_t`` per task (trainer-optimised parameters) and ``L_t(0)``.
    """

    name = "gradnorm"

    def __init__(
        self, task_names: Sequence[str], *, alpha: float = 1.5, shared_params: Sequence[str] | None = None
    ) -> None:
        super().__init__(task_names)
        check_option(isinstance(alpha, (int, float)) and alpha >= 0, "alpha must be a number >= 0")
        check_option(
            shared_params is None
            or (
                not isinstance(shared_params, str)
                and len(shared_params) > 0
                and all(isinstance(prefix, str) for prefix in shared_params)
            ),
            "shared_params must be a non-empty list of parameter-name prefixes",
        )
        self.alpha = float(alpha)
        self.shared_params = list(shared_params) if shared_params is not None else None
        self.initial_losses: dict[str, float] = {}
        self._learn_scalars(dict.fromkeys(self.task_names, 1.0))

    def select_parameters(self, shared: Mapping[str, nn.Parameter]) -> list[nn.Parameter]:
        """W: the shared parameters whose gradient norms GradNorm balances."""
        named = [(name, p) for name, p in shared.items() if p.requires_grad]
        if not named:
            raise ValueError("gradnorm needs the step's shared parameters (StepContext.shared_parameters)")
        if self.shared_params is None:
            matrices = [p for _, p in named if p.dim() >= 2]
            return [matrices[-1] if matrices else named[-1][1]]
        chosen = [p for name, p in named if any(name.startswith(prefix) for prefix in self.shared_params)]
        if not chosen:
            raise ValueError(
                f"gradnorm: no shared parameter name starts with {self.shared_params}; "
                f"shared parameters are {[name for name, _ in named]}"
            )
        return chosen

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        tasks = list(losses)
        if not any(p.requires_grad for p in context.shared_parameters.values()):
            # A frozen encoder: no shared gradient norms to equalise, the weights stay as they are.
            return Combination(loss=sum(self.scalars[t].detach() * losses[t] for t in tasks),
                               weights={t: self.scalars[t].detach() for t in tasks})
        layer = self.select_parameters(context.shared_parameters)
        norms = []
        for task in tasks:  # on the union batch of all ranks, unscaled (the reduce hook)
            grads = self.reduce.task_gradient(losses[task], layer)
            norms.append(torch.stack([g.float().pow(2).sum() for g in grads]).sum().sqrt())
        norm = torch.stack(norms).detach()
        values = torch.stack([losses[task].detach() for task in tasks]).float()
        for task, value in zip(tasks, values.tolist()):
            self.initial_losses.setdefault(task, value)
        weights = torch.stack([self.scalars[task].detach() for task in tasks]).to(norm.device)
        relative = values / values.new_tensor([max(self.initial_losses[task], 1e-12) for task in tasks])
        rate = relative / relative.mean()
        grad_norms = weights * norm
        target = grad_norms.mean() * rate.pow(self.alpha)
        weight_grads = torch.sign(grad_norms - target) * norm

        total = sum(self.scalars[task].detach() * losses[task] for task in tasks)
        total = total + sum(zero_valued(self.scalars[task]) * weight_grads[i] for i, task in enumerate(tasks))
        return Combination(
            loss=total,
            weights={task: self.scalars[task].detach() for task in tasks},
            diagnostics={
                "grad_norms": dict(zip(tasks, norm.tolist())),
                "train_rates": dict(zip(tasks, rate.tolist())),
            },
        )

    def after_optimizer_step(self, losses: Mapping[str, Tensor], context: StepContext) -> None:
        present = [task for task in self.task_names if task in losses]
        absent_sum = sum(self.scalars[task].item() for task in self.task_names if task not in losses)
        with torch.no_grad():
            for task in present:
                self.scalars[task].clamp_(min=_MIN_WEIGHT)
            present_sum = sum(self.scalars[task].item() for task in present)
            scale = max(len(self.task_names) - absent_sum, _MIN_WEIGHT * len(present)) / present_sum
            for task in present:
                self.scalars[task].mul_(scale)

    def extra_state(self) -> dict[str, Any]:
        return {"initial_losses": dict(self.initial_losses)}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.initial_losses = dict(state["initial_losses"])
