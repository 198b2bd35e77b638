"""TensorBoard: event files written through ``torch.utils.tensorboard`` (the ``tensorboard`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polytask.config import ExperimentConfig, expand_path
from polytask.dependencies import require
from polytask.errors import ConfigError
from polytask.training.loggers.base import ExperimentLogger, LoggerOptions


class TensorBoardOptions(LoggerOptions):
    dir: str | None = None
    """Where the event files go (default: ``RUN/tensorboard``)."""


class TensorBoardLogger(ExperimentLogger):
    """Every record's scalars as TensorBoard scalars at the global step; the config as text at step 0.

    A resumed run purges the events after its checkpoint's step (``SummaryWriter(purge_step=...)``),
    so the curves hold each step once.
    """

    name = "tensorboard"
    Options = TensorBoardOptions

    def __init__(self, options: TensorBoardOptions, run_dir: Path | None, config: ExperimentConfig) -> None:
        super().__init__(options, run_dir, config)
        require("tensorboard", "training.loggers: tensorboard", "tensorboard")
        if options.dir is not None:
            self.dir = Path(expand_path(options.dir, "training.logger_options.tensorboard.dir", None))
        elif run_dir is not None:
            self.dir = run_dir / "tensorboard"
        else:
            raise ConfigError("a run without a directory needs the event files' directory",
                              field="training.logger_options.tensorboard.dir")
        self.writer: Any = None

    def open(self, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(self.dir), purge_step=step + 1 if step else None)
        if not step:
            self.writer.add_text("config", "```yaml\n" + self.config.to_yaml() + "```", 0)

    def write(self, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self, succeeded: bool) -> None:
        if self.writer is not None:
            self.writer.close()
