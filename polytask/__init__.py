"""polytask: multi-task learning for PyTorch — shared encoders, task heads, balancing, evidence.

The public API is re-exported here (``__all__``; ``dir(polytask)`` lists it); everything else is
private by convention. Heavy modules are imported on first use. ``model = polytask.train(config)``
or ``polytask.load(RUN)`` gives a ``TrainedModel``; ``model.predict("raw text")`` answers every task.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from polytask._version import __version__ as __version__

if TYPE_CHECKING:
    from polytask.trained_model import TrainedModel

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
    "RepresentationRows": "polytask.balancing.balancer",
    "available_methods": "polytask.balancing.registry",
    "build_balancer": "polytask.balancing.registry",
    "register_method": "polytask.balancing.registry",
    "build_experiment": "polytask.training.setup",
    "Trainer": "polytask.training.trainer",
    "load_run": "polytask.training.run_dir",
    "evaluate": "polytask.evaluation.scoring",
    "predict": "polytask.evaluation.scoring",
    "Predictor": "polytask.serving.predictor",
    "TrainedModel": "polytask.trained_model",
    "PolytaskError": "polytask.errors",
    "ConfigError": "polytask.errors",
    "DataError": "polytask.errors",
    "InputError": "polytask.errors",
    "MissingDependencyError": "polytask.errors",
}

__all__ = sorted([*_EXPORTS, "__version__", "affinity", "compare", "evaluate_run", "finetune", "load", "resume",
                  "train"])


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'polytask' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (lazily imported names included) and the module's dunders, not its helper imports."""
    return sorted(set(__all__) | {name for name in globals() if name.startswith("__")})


def train(config: Any, out: str | os.PathLike | None = None, overrides: list[str] | tuple[str, ...] = (),
          progress: bool = True, overwrite: bool = False) -> TrainedModel:
    """Train from a YAML config path, a config dict or an ``ExperimentConfig``; return the ``TrainedModel``.

    ``out``: the run directory to write (as ``polytask train --out``; None: train in memory only);
    ``overrides``: ``--set`` style ``"section.field=value"`` strings. Mistakes raise a ``PolytaskError``.
    """
    from polytask.config import resolve_config
    from polytask.trained_model import trained
    from polytask.training.run import train_experiment

    experiment, summary = train_experiment(resolve_config(config, overrides), out, overwrite=overwrite,
                                           progress=progress)
    return trained(experiment, summary, out)


def load(run: str | os.PathLike, device: str | None = None) -> TrainedModel:
    """The ``TrainedModel`` of the run directory ``run`` on ``device`` (auto | cpu | cuda | cuda:N | mps; default CPU)."""
    from polytask.trained_model import TrainedModel

    return TrainedModel.load(run, device=device)


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
