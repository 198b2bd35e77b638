"""Uniform sampling: every task equally often, whatever its size."""

from __future__ import annotations

from polytask.data.samplers.base import TaskSampler, check_step


class UniformSampler(TaskSampler):
    """p_i = 1/T for each of the T tasks (sizes and ``cap`` play no part).

    Why: the balancing method, not the corpus sizes, then decides each task's influence; the
    limit T → ∞ of temperature sampling. jiant's ``UniformMultiTaskSampler``.
    """

    name = "uniform"

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        check_step(step, total_steps)
        return {task: 1.0 / len(self.tasks) for task in self.tasks}
