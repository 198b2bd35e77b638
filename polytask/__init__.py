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

__all__ = sorted([*_EXPORTS, "affinity", "compare", "finetune", "train"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'polytask' has no attribute {name!r}")


def train(config: Any, out: str | None = None, overrides: list[str] | tuple[str, ...] = (),
          progress: bool = True) -> dict[str, Any]:
    """Train from a config path (or ExperimentConfig) and return the summary; writes ``out`` if given."""
    from polytask.config import resolve_config
    from polytask.training.run import train_run

    return train_run(resolve_config(config, overrides), out, progress=progress)


def finetune(run_dir: Any, add_task: Any, out: Any, freeze_encoder: bool = False, replay: float = 0.0,
             overrides: list[str] | tuple[str, ...] = (), progress: bool = True) -> dict[str, Any]:
    """Add the tasks of ``add_task`` (a TASK.yaml) to a trained run, train into ``out``; return the retention record."""
    from polytask.training.finetune import finetune_run

    return finetune_run(run_dir, add_task, out, freeze_encoder=freeze_encoder, replay=replay, overrides=overrides,
                        progress=progress)


def affinity(config: Any, out: str | None = None, every: int = 10, groups: int = 2,
             overrides: list[str] | tuple[str, ...] = (), progress: bool = True,
             lookahead: str = "optimizer") -> dict[str, Any]:
    """Train once, measuring inter-task affinity every ``every`` steps; return matrices and best grouping into ``groups``."""
    from polytask.config import resolve_config
    from polytask.evidence.affinity import run_affinity

    return run_affinity(resolve_config(config, overrides), out, every=every, groups=groups, lookahead=lookahead,
                        progress=progress)


def compare(config: Any, methods: list[str] | str, seeds: int = 3, out: str = "compare", jobs: int = 1,
            overrides: list[str] | tuple[str, ...] = (), report: bool = True) -> dict[str, Any]:
    """Train every task alone and the multi-task model with each method over ``seeds`` seeds; return Δm and verdicts."""
    from polytask.evidence.compare import compare as run_compare

    return run_compare(config, methods, seeds=seeds, out=out, jobs=jobs, overrides=overrides, report=report)
