"""Dynamic weight average (DWA): weigh each task by how slowly its loss has been falling."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from polytask.balancing.balancer import StepContext
from polytask.balancing.loss_weighting import (
    Combination,
    LossWeighting,
    check_option,
    weighted_sum,
)
from polytask.balancing.methods import register_method


@register_method(
    "dwa",
    kind="loss weighting",
    needs="losses",
    paper="Liu, Johns & Davison, End-to-End Multi-Task Learning with Attention, CVPR 2019",
)
class DynamicWeightAverage(LossWeighting):
    """Back-propagate ``Σ_t w_t L_t`` with ``w = K softmax(r / T)``, ``r_t = L̄_t(k-1) / L̄_t(k-2)``.

    Why: a task whose loss decreased least over the last period gets more weight, from the
    losses alone (no gradients, no learned parameters).
    S. Liu, E. Johns, A. J. Davison, "End-to-End Multi-Task Learning with Attention",
    CVPR 2019, Eq. (7). ``L̄_t(k)`` is task t's mean training loss over period k.

    Options: ``temperature`` T (default 2, the paper's), ``window``: ``"epoch"`` (the paper:
    one period per epoch, read from ``context.epoch``) or a number of steps per period
    (``1``: the per-step variant ``r_t = L_t(n-1) / L_t(n-2)``).
    Partial labels: a period's mean uses only the steps where the task was present; ``K`` and
    the softmax run over the tasks present in the step; a task with fewer than two completed
    periods gets ``r_t = 1``, so every weight is 1 until two history points exist.
    State: the last two period means per task, and the running sums of the current period.
    """

    name = "dwa"

    def __init__(
        self, task_names: Sequence[str], *, temperature: float = 2.0, window: int | str = "epoch"
    ) -> None:
        super().__init__(task_names)
        check_option(isinstance(temperature, (int, float)) and temperature > 0, "temperature must be > 0")
        check_option(
            window == "epoch" or (isinstance(window, int) and not isinstance(window, bool) and window >= 1),
            f"window must be 'epoch' or a number of steps >= 1, got {window!r}",
        )
        self.temperature = float(temperature)
        self.window = window
        self.history: dict[str, list[float]] = {task: [] for task in self.task_names}
        self.period: int | None = None
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def _period_of(self, context: StepContext) -> int:
        if self.window != "epoch":
            return context.step // int(self.window)
        epoch = getattr(context, "epoch", None)  # the trainer's epoch counter, where it keeps one
        if epoch is None:
            raise ValueError(
                "dwa with window='epoch' needs the trainer to pass StepContext.epoch; "
                "set balancing.options.window to a number of steps instead"
            )
        return int(epoch)

    def _close_period(self) -> None:
        for task, total in self.sums.items():
            self.history[task] = (self.history[task] + [total / self.counts[task]])[-2:]
        self.sums, self.counts = {}, {}

    def ratios(self, tasks: Sequence[str]) -> dict[str, float]:
        """``r_t``: the last period's mean loss over the one before (1 without two periods)."""
        return {
            task: self.history[task][1] / self.history[task][0] if len(self.history[task]) == 2 else 1.0
            for task in tasks
        }

    def combine(self, losses: Mapping[str, Tensor], context: StepContext) -> Combination:
        period = self._period_of(context)
        if self.period is not None and period != self.period:
            self._close_period()
        self.period = period
        ratios = self.ratios(list(losses))
        scaled = [r / self.temperature for r in ratios.values()]
        top = max(scaled)
        exps = [math.exp(s - top) for s in scaled]
        weights = {task: len(losses) * e / sum(exps) for task, e in zip(losses, exps)}
        values = torch.stack([loss.detach().float() for loss in losses.values()]).tolist()
        for task, value in zip(losses, values):
            self.sums[task] = self.sums.get(task, 0.0) + value
            self.counts[task] = self.counts.get(task, 0) + 1
        combination = weighted_sum(losses, weights)
        combination.diagnostics["loss_ratios"] = ratios
        return combination

    def extra_state(self) -> dict[str, Any]:
        return {
            "history": {task: list(values) for task, values in self.history.items()},
            "period": self.period,
            "sums": dict(self.sums),
            "counts": dict(self.counts),
        }

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.history = {task: list(state["history"].get(task, [])) for task in self.task_names}
        self.period = state["period"]
        self.sums = dict(state["sums"])
        self.counts = dict(state["counts"])
