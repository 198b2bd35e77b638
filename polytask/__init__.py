"""polytask: multi-task learning for PyTorch — shared encoders, task heads, balancing, evidence.

The public API is re-exported here; everything else is private by convention. Heavy
modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ExperimentConfig": "polytask.config",
    "load_config": "polytask.config",
    "validate_config": "polytask.config",
    "Example": "polytask.data.example",
    "read_examples": "polytask.data.readers",
    "build_sampler": "polytask.data.samplers",
    "TaskType": "polytask.tasks.base",
    "build_task": "polytask.tasks",
    "Encoder": "polytask.models.encoders.base",
    "EncoderOutput": "polytask.models.encoders.base",
    "register_encoder": "polytask.models.encoders",
    "MultiTaskModel": "polytask.models.multitask",
    "Balancer": "polytask.balancing.balancer",
    "StepContext": "polytask.balancing.balancer",
    "available_methods": "polytask.balancing.registry",
    "build_balancer": "polytask.balancing.registry",
    "register_method": "polytask.balancing.registry",
    "build_experiment": "polytask.training.setup",
    "Trainer": "polytask.training.trainer",
    "load_run": "polytask.training.run_dir",
    "evaluate": "polytask.evaluation.evaluate",
    "predict": "polytask.evaluation.evaluate",
    "Predictor": "polytask.serving.predictor",
    "PolytaskError": "polytask.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'polytask' has no attribute {name!r}")


def train(config: Any, out: str | None = None, overrides: list[str] | tuple[str, ...] = (),
          progress: bool = True) -> dict[str, Any]:
    """Train from a config path (or ExperimentConfig) and return the summary; writes ``out`` if given."""
    from polytask.config import ExperimentConfig, load_config
    from polytask.training.run import train_run

    experiment_config = config if isinstance(config, ExperimentConfig) else load_config(config, overrides)
    return train_run(experiment_config, out, progress=progress)
