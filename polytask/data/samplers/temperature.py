"""Temperature-scaled sampling: proportional sampling flattened towards uniform by a temperature."""

from __future__ import annotations

import math
from collections.abc import Mapping

from polytask.data.samplers.base import (
    TaskSampler,
    check_step,
    option_error,
    power_probabilities,
)


class TemperatureSampler(TaskSampler):
    """p_i = n_i^{1/T} / Σ_j n_j^{1/T} over the (capped) sizes n_i; T = 1 is proportional, T → ∞ uniform.

    Why: small tasks are seen more often than their size alone allows, without the over-fitting of
    plain uniform sampling. Arivazhagan et al. 2019, "Massively Multilingual Neural Machine
    Translation in the Wild", arXiv:1907.05019; Raffel et al. 2020 (T5), JMLR 21, §3.5.2
    ("temperature-scaled mixing"); jiant's ``TemperatureMultiTaskSampler``.
    """

    name = "temperature"

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        *,
        temperature: float = 2.0,
        cap: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
            raise option_error("temperature", f"must be a number > 0, not {temperature!r}")
        if not (math.isfinite(temperature) and temperature > 0):
            raise option_error("temperature", f"must be a finite number > 0, not {temperature!r}")
        super().__init__(task_sizes, cap=cap, seed=seed)
        self.temperature = float(temperature)

    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        check_step(step, total_steps)
        return power_probabilities(self.counted_sizes, 1.0 / self.temperature)
