"""Fixed-rate sampling: each task with a probability the config states outright."""

from __future__ import annotations

import math
from collections.abc import Mapping

from polytask.data.samplers.base import TaskSampler, check_step, option_error


class WeightedSampler(TaskSampler):
    """p_i = w_i / Σ_j w_j for configured weights w_i > 0, whatever the tasks' sizes.

    Why: some mixtures are decided, not derived from corpus sizes: rehearsing old tasks in a
    fixed share of the steps while a new task is learned (experience replay; Robins 1995,
    "Catastrophic Forgetting, Rehearsal and Pseudorehearsal", Connection Science 7(2)), or T5's
    explicit mixing rates (Raffel et al. 2020, JMLR 21, §3.5.2). Option ``weights``: task -> weight,
    one for every task (``cap`` is accepted and ignored: sizes play no part).
    """

    name = "weighted"

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        *,
        weights: Mapping[str, float] | None = None,
        cap: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(task_sizes, cap=cap, seed=seed)
        if not isinstance(weights, Mapping):
            raise option_error("weights", f"must map every task to a weight > 0; tasks are {self.tasks}")
        unknown, missing = sorted(set(weights) - set(self.tasks)), sorted(set(self.tasks) - set(weights))
        if unknown or missing:
            raise option_error("weights", f"must name every task once: unknown {unknown}, missing {missing}")
        for task, value in weights.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
                raise option_error("weights", f"task {task!r}: must be a finite number > 0, not {value!r}")
        total = math.fsum(weights.values())
        self.weights = {task: float(weights[task]) / total for task in self.tasks}

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        check_step(step, total_steps)
        return dict(self.weights)
