"""Weights & Biases: a W&B run per training run, offline unless an API key is set (the ``wandb`` extra)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from polytask.config import ExperimentConfig, expand_path
from polytask.dependencies import require
from polytask.training.loggers.base import ExperimentLogger, LoggerOptions


class WandbOptions(LoggerOptions):
    project: str = "polytask"
    entity: str | None = None
    name: str | None = None
    """Default: the run directory's name."""
    mode: Literal["online", "offline", "disabled"] | None = None
    """Default: ``$WANDB_MODE``, else online when ``$WANDB_API_KEY`` is set, else offline (``wandb sync`` uploads later)."""
    dir: str | None = None
    """Where W&B writes its files (default: the run directory)."""


class WandbLogger(ExperimentLogger):
    """The config as the W&B run's config, every record's scalars logged at the global step.

    A resumed run continues the same W&B run (``id`` kept in ``RUN/loggers.json``, ``resume="allow"``);
    W&B ignores steps below the last one it logged.
    """

    name = "wandb"
    Options = WandbOptions

    def __init__(self, options: WandbOptions, run_dir: Path | None, config: ExperimentConfig) -> None:
        super().__init__(options, run_dir, config)
        require("wandb", "training.loggers: wandb", "wandb")
        self.dir = Path(expand_path(options.dir, "training.logger_options.wandb.dir", None)) if options.dir else run_dir
        self.run: Any = None

    def mode(self) -> str:
        options: WandbOptions = self.options  # type: ignore[assignment]
        return options.mode or os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")

    def open(self, step: int) -> None:
        import wandb

        options: WandbOptions = self.options  # type: ignore[assignment]
        run_id = self.remembered().get("id") if step else None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(project=options.project, entity=options.entity, mode=self.mode(),
                              name=options.name or (self.run_dir.name if self.run_dir is not None else None),
                              dir=str(self.dir) if self.dir is not None else None,
                              config=self.config.model_dump(mode="json"), id=run_id,
                              resume="allow" if run_id else None,
                              settings=wandb.Settings(console="off", silent=True, save_code=False))
        self.remember(id=self.run.id)

    def write(self, values: dict[str, float], step: int) -> None:
        self.run.log(values, step=step)

    def close(self, succeeded: bool) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if succeeded else 1)
