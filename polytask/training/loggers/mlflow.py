"""MLflow: a tracking run per training run, on a local file store or a tracking server (the ``mlflow`` extra)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from polytask._version import __version__
from polytask.config import ExperimentConfig
from polytask.dependencies import require
from polytask.errors import ConfigError, PolytaskError
from polytask.training.loggers.base import ExperimentLogger, LoggerOptions, flat_params

BATCH = 100
"""Parameters or metrics per ``log_batch`` call (MLflow accepts at most 100 parameters per call)."""


class MlflowOptions(LoggerOptions):
    tracking_uri: str | None = None
    """The tracking store: a server (``http://...``), ``file:PATH`` or a database URI (default:
    ``$MLFLOW_TRACKING_URI``, else the file store ``RUN/mlruns``)."""
    experiment: str = "polytask"
    run_name: str | None = None
    """Default: the run directory's name."""


def _is_file_store(uri: str) -> bool:
    return uri.startswith("file:") or "://" not in uri


class MlflowLogger(ExperimentLogger):
    """The config as run parameters, every record's scalars as metrics at the global step.

    MLflow 3 keeps its file store only on request (``MLFLOW_ALLOW_FILE_STORE``); a file-store URI sets
    that variable for this process unless it is set already. A resumed run continues the same MLflow run
    (its id is kept in ``RUN/loggers.json``); steps after the checkpoint are logged again.
    """

    name = "mlflow"
    Options = MlflowOptions

    def __init__(self, options: MlflowOptions, run_dir: Path | None, config: ExperimentConfig) -> None:
        super().__init__(options, run_dir, config)
        require("mlflow", "training.loggers: mlflow", "mlflow")
        uri = options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        if uri is None and run_dir is None:
            raise ConfigError("a run without a directory needs a tracking store",
                              field="training.logger_options.mlflow.tracking_uri")
        self.uri = uri or (run_dir.absolute() / "mlruns").as_uri()
        self.client: Any = None
        self.run_id: str | None = None

    def open(self, step: int) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        if _is_file_store(self.uri):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        options: MlflowOptions = self.options  # type: ignore[assignment]
        try:
            self.client = MlflowClient(tracking_uri=self.uri)
            self.run_id = self.remembered().get("run_id") if step else None
            if self.run_id is not None:
                self.client.update_run(self.run_id, status="RUNNING")
                return
            experiment = self.client.get_experiment_by_name(options.experiment)
            experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(options.experiment)
            name = options.run_name or (self.run_dir.name if self.run_dir is not None else None)
            tags = {"polytask.version": __version__, **({"polytask.run_dir": str(self.run_dir.absolute())}
                                                        if self.run_dir is not None else {})}
            self.run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            params = [Param(key, value[:6000]) for key, value in flat_params(self.config).items()]
            for start in range(0, len(params), BATCH):
                self.client.log_batch(self.run_id, params=params[start:start + BATCH])
        except Exception as error:  # MlflowException, connection errors: one line naming the store
            raise PolytaskError(f"training.loggers: mlflow could not start a run in {self.uri} "
                                f"({str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__})"
                                ) from None
        self.remember(run_id=self.run_id)

    def write(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, value, now, step) for key, value in values.items()]
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + BATCH])

    def close(self, succeeded: bool) -> None:
        if self.client is not None and self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")
