"""Experiment loggers keyed by their ``training.loggers`` names; adding one means one module and one ``LOGGERS`` line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from polytask.config import ExperimentConfig
from polytask.errors import ConfigError
from polytask.training.loggers.base import ExperimentLogger, scalars
from polytask.training.loggers.mlflow import MlflowLogger
from polytask.training.loggers.tensorboard import TensorBoardLogger
from polytask.training.loggers.wandb import WandbLogger

LOGGERS: dict[str, type[ExperimentLogger]] = {
    TensorBoardLogger.name: TensorBoardLogger,
    MlflowLogger.name: MlflowLogger,
    WandbLogger.name: WandbLogger,
}


def _check_names(names: Sequence[str], options: Sequence[str]) -> None:
    for index, name in enumerate(names):
        if name not in LOGGERS:
            raise ConfigError(f"unknown logger {name!r}; choose from {', '.join(LOGGERS)}",
                              field=f"training.loggers.{index}")
        if list(names).count(name) > 1:
            raise ConfigError(f"logger {name!r} is listed twice", field="training.loggers")
    for name in options:
        if name not in names:
            raise ConfigError(f"options for a logger that training.loggers does not list (it lists: "
                              f"{', '.join(names) or 'none'})", field=f"training.logger_options.{name}")


def build_loggers(config: ExperimentConfig, run_dir: str | Path | None, main: bool = True) -> list[ExperimentLogger]:
    """The loggers ``training.loggers`` names, their options and packages checked before anything is written.

    Only the main rank logs: with ``main`` false (ranks 1.. under torchrun) there are none.
    """
    training = config.training
    _check_names(training.loggers, list(training.logger_options))
    if not main:
        return []
    loggers = []
    for name in training.loggers:
        kind = LOGGERS[name]
        try:
            options = kind.Options.model_validate(training.logger_options.get(name, {}))
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(["training.logger_options", name, *map(str, first["loc"])])
            message = ("unknown field; its fields: " + ", ".join(kind.Options.model_fields)
                       if first["type"] == "extra_forbidden" else first["msg"])
            raise ConfigError(message, field=where) from None
        loggers.append(kind(options, Path(run_dir) if run_dir is not None else None, config))
    return loggers


__all__ = ["LOGGERS", "ExperimentLogger", "MlflowLogger", "TensorBoardLogger", "WandbLogger", "build_loggers",
           "scalars"]
