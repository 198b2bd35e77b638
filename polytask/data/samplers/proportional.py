"""Examples-proportional sampling: each task as often as its share of the training examples."""

from __future__ import annotations

from polytask.data.samplers.base import TaskSampler, check_step, power_probabilities


class ProportionalSampler(TaskSampler):
    """p_i = n_i / Σ_j n_j over the (capped) training-set sizes n_i.

    Why: every training example is seen about equally often, as if the corpora were concatenated;
    the cap keeps one huge corpus from crowding out the rest. Raffel et al. 2020, "Exploring the
    Limits of Transfer Learning with a Unified Text-to-Text Transformer", JMLR 21, §3.5.2
    ("examples-proportional mixing"); jiant's ``ProportionalMultiTaskSampler``.
    """

    name = "proportional"

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        check_step(step, total_steps)
        return power_probabilities(self.counted_sizes, 1.0)
