"""Task samplers, keyed by the names used in ``sampling.method``.

Each step of multi-task training draws its tasks from a sampler; adding a sampler means one file
in this package and one line in ``SAMPLERS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from polytask.data.samplers.annealed import AnnealedSampler
from polytask.data.samplers.base import TaskSampler, steps_per_epoch
from polytask.data.samplers.proportional import ProportionalSampler
from polytask.data.samplers.round_robin import RoundRobinSampler
from polytask.data.samplers.temperature import TemperatureSampler
from polytask.data.samplers.uniform import UniformSampler
from polytask.data.samplers.weighted import WeightedSampler
from polytask.errors import ConfigError

SAMPLERS: dict[str, type[TaskSampler]] = {
    "proportional": ProportionalSampler,
    "temperature": TemperatureSampler,
    "uniform": UniformSampler,
    "round_robin": RoundRobinSampler,
    "annealed": AnnealedSampler,
    "weighted": WeightedSampler,
}


def sampler_options(method: str) -> list[str]:
    """The option names ``method`` accepts (its keyword-only constructor arguments)."""
    signature = inspect.signature(SAMPLERS[method].__init__)
    return [name for name, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]


def build_sampler(method: str, task_sizes: Mapping[str, int], **options: Any) -> TaskSampler:
    """Instantiate the sampler named ``method``; an unknown name or option raises ConfigError."""
    if method not in SAMPLERS:
        raise ConfigError(f"unknown sampler {method!r}; choose one of {', '.join(SAMPLERS)}", field="sampling.method")
    accepted = sampler_options(method)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"sampler {method!r} has no option(s) {unknown}; it accepts {accepted}", field="sampling.options"
        )
    return SAMPLERS[method](task_sizes, **options)


__all__ = [
    "SAMPLERS",
    "AnnealedSampler",
    "ProportionalSampler",
    "RoundRobinSampler",
    "TaskSampler",
    "TemperatureSampler",
    "UniformSampler",
    "WeightedSampler",
    "build_sampler",
    "sampler_options",
    "steps_per_epoch",
]
