"""polytask: multi-task learning for PyTorch — shared encoders, task heads, balancing, evidence.

The public API is re-exported here; everything else is private by convention. Heavy
modules are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from polytask._version import __version__ as __version__

_EXPORTS = {
    "ExperimentConfig": "polytask.config",
    "load_config": "polytask.config",
    "validate_config": "polytask.config",
    "Example": "polytask.data.example",
    "read_examples": "polytask.data.readers",
    "build_sampler": "polytask.data.samplers",
    "TaskType": "polytask.tasks.base",
    "build_task": "polytask.tasks.registry",
    "Encoder": "polytask.models.encoders.base",
    "EncoderOutput": "polytask.models.encoders.base",
    "register_encoder": "polytask.models.encoders",
    "MultiTaskModel": "polytask.models.multitask",
    "SharingArchitecture": "polytask.models.sharing.base",
    "available_architectures": "polytask.models.sharing",
    "register_sharing": "polytask.models.sharing",
    "Balancer": "polytask.balancing.balancer",
    "StepContext": "polytask.balancing.balancer",
    "available_methods": "polytask.balancing.registry",
    "build_balancer": "polytask.balancing.registry",
    "register_method": "polytask.balancing.registry",
    "build_experiment": "polytask.training.setup",
    "Trainer": "polytask.training.trainer",
    "load_run": "polytask.training.run_dir",
    "evaluate": "polytask.evaluation.scoring",
    "predict": "polytask.evaluation.scoring",
    "Predictor": "polytask.serving.predictor",
    "PolytaskError": "polytask.errors",
}

__all__ = sorted([*_EXPORTS, "affinity", "compare", "evaluate_run", "finetune", "resume", "train"])


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
             lookahead: str = "optimizer", measure: str = "lookahead", seeds: int = 1,
             jobs: int = 1, overwrite: bool = False, backend: str = "local", address: str | None = None) -> dict[str, Any]:
    """Inter-task affinity and the best grouping into ``groups`` models; the dictionary of ``affinity.json``.

    ``measure="lookahead"``: one joint run, TAG lookahead every ``every`` steps. ``measure="pairs"``:
    every task alone and every pair trained over ``seeds`` seeds in ``out`` (required), ``jobs`` at a
    time, on local workers or (``backend="ray"``, ``address``) a Ray cluster.
    """
    from polytask.evidence.affinity import affinity as measure_affinity
    from polytask.evidence.backends import build_backend

    return measure_affinity(config, out, measure=measure, every=every, groups=groups, lookahead=lookahead,
                            seeds=seeds, jobs=jobs, overrides=overrides, overwrite=overwrite, progress=progress,
                            backend=build_backend(backend, address, 0.0))


def evaluate_run(run: str, split: str = "test", overrides: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """Score the trained run directory ``run`` on its configured dev or test split; writes ``eval-SPLIT.json``."""
    from polytask.training.run import evaluate_run as evaluate_run_dir

    return evaluate_run_dir(run, split, overrides)


def resume(run: str, progress: bool = True) -> dict[str, Any]:
    """Continue the interrupted training run in ``run`` from its last checkpoint; return its summary."""
    from polytask.training.run import resume_run

    return resume_run(run, progress=progress)


def compare(config: Any, methods: list[str] | str, seeds: int = 3, out: str = "compare", jobs: int = 1,
            overrides: list[str] | tuple[str, ...] = (), report: bool = True, backend: str = "local",
            address: str | None = None, architectures: list[str] | str | None = None) -> dict[str, Any]:
    """Train every task alone and the multi-task model with each method over ``seeds`` seeds; return Δm and verdicts.

    ``architectures`` (e.g. ``"hard,mmoe,ple"``) adds one row per sharing architecture and method.
    The runs train on ``jobs`` local workers, or (``backend="ray"``, ``address``) on a Ray cluster.
    """
    from polytask.evidence.backends import build_backend
    from polytask.evidence.compare import compare as run_compare

    return run_compare(config, methods, seeds=seeds, out=out, jobs=jobs, overrides=overrides, report=report,
                       architectures=architectures, backend=build_backend(backend, address, 0.0))
