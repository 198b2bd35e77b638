"""Round-robin scheduling: a fixed cycle through the tasks, no randomness."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polytask.data.samplers.base import TaskSampler, check_step


class RoundRobinSampler(TaskSampler):
    """Each step takes the next k tasks of the cycle t_1, …, t_T, t_1, … in the configured task order.

    Why: a deterministic baseline in which every task gets exactly the same number of steps,
    without sampling noise. Over a full period of lcm(T, k)/k steps each task is included
    exactly k/T of the time, so ``probabilities`` reports the time share 1/T and
    ``inclusion_probabilities`` k/T (the importance weights, T/k, are then exact time averages).
    """

    name = "round_robin"

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        *,
        cap: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(task_sizes, cap=cap, seed=seed)
        self.position = 0  # index in the cycle of the next task to hand out

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        check_step(step, total_steps)
        return {task: 1.0 / len(self.tasks) for task in self.tasks}

    def inclusion_probabilities(self, step: int, total_steps: int, k: int | None = None) -> dict[str, float]:
        check_step(step, total_steps)
        k = self._resolve_k(k)
        return {task: k / len(self.tasks) for task in self.tasks}

    def sample(self, step: int, total_steps: int, k: int | None = None) -> list[str]:
        """The next k tasks of the cycle, in cycle order (k = None: all tasks, the cycle stays put)."""
        check_step(step, total_steps)
        k = self._resolve_k(k)
        count = len(self.tasks)
        chosen = [self.tasks[(self.position + offset) % count] for offset in range(k)]
        self.position = (self.position + k) % count
        return chosen

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "position": self.position}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.position = int(state["position"]) % len(self.tasks)
