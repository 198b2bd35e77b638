"""The experiment-logger interface: a callback that sends each metrics record to a tracker.

Why: ``metrics.jsonl`` is the run's own record; trackers (TensorBoard, MLflow, Weights & Biases)
show many runs side by side. A logger is fed the records the trainer writes (``Callback.on_record``,
rank 0 only), so the trainer holds no tracker-specific code; each tracker's package is an optional
extra, imported when the logger is built.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from polytask.config import ExperimentConfig
from polytask.training.callbacks import Callback

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer

STATE_FILE = "loggers.json"
"""In the run directory: each logger's run id, so ``polytask resume`` continues the same tracker run."""


class LoggerOptions(BaseModel):
    """A logger's ``training.logger_options.NAME`` (strict: unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")


def tag(part: Any) -> str:
    """A metric-name part in the characters every tracker accepts (MLflow's: letters, digits, ``_-. /:``).

    A cosine's task pair ``pos|chunk`` becomes ``pos:chunk``.
    """
    return re.sub(r"[^A-Za-z0-9_\-. /:]", ":", str(part))


def scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one metrics record, named by their path: ``train/losses/pos``, ``dev/pos/f1``, ``test/...``.

    Step records give ``train/`` + every numeric entry (losses, learning rate, task weights, gradient
    norms and cosines, examples seen, a method's diagnostics); evaluations give ``dev/`` or ``test/``
    + each task's metrics (and the model-selection ``dev/score``). Other records give nothing.
    """
    if record.get("kind") == "step":
        prefix = "train"
        body = {key: value for key, value in record.items() if key not in ("kind", "step", "epoch", "tasks")}
    elif record.get("kind") == "eval":
        prefix = str(record.get("split", "eval"))
        body = {**record.get("tasks", {}), "score": record.get("score")}
    else:
        return {}
    flat: dict[str, float] = {}

    def visit(name: str, value: Any) -> None:
        if isinstance(value, bool) or value is None:
            return
        if isinstance(value, int | float):
            flat[name] = float(value)
        elif isinstance(value, Mapping):
            for key, inner in value.items():
                visit(f"{name}/{tag(key)}", inner)

    for key, value in body.items():
        visit(f"{prefix}/{tag(key)}", value)
    return flat


def flat_params(config: ExperimentConfig) -> dict[str, str]:
    """The config as ``section.field: value`` strings (a tracker's run parameters)."""
    params: dict[str, str] = {}

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, inner in value.items():
                visit(f"{name}.{key}" if name else str(key), inner)
        else:
            params[name] = value if isinstance(value, str) else json.dumps(value)

    visit("", config.model_dump(mode="json"))
    return params


class ExperimentLogger(Callback):
    """Sends every metrics record to one tracker: ``open`` when training starts, ``write``, ``close``.

    Subclasses set ``name`` (the ``training.loggers`` entry) and ``Options``, check their package in
    ``__init__`` (before anything is written) and implement the three hooks.
    """

    name: ClassVar[str]
    Options: ClassVar[type[LoggerOptions]] = LoggerOptions

    def __init__(self, options: LoggerOptions, run_dir: Path | None, config: ExperimentConfig) -> None:
        self.options, self.run_dir, self.config = options, run_dir, config

    def open(self, step: int) -> None:
        """Start (or, ``step`` > 0 in a resumed run, continue) the tracker's run."""
        raise NotImplementedError

    def write(self, values: dict[str, float], step: int) -> None:
        """Log the scalars of one record at global step ``step``."""
        raise NotImplementedError

    def close(self, succeeded: bool) -> None:
        """Flush and end the tracker's run (marked failed when training stopped with an error)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the callback
    def before_fit(self, trainer: Trainer) -> None:
        self.open(trainer.step)

    def on_record(self, trainer: Trainer, record: dict[str, Any]) -> None:
        values = scalars(record)
        if values:
            self.write(values, int(record.get("step", trainer.step)))

    def after_fit(self, trainer: Trainer, summary: dict[str, Any] | None) -> None:
        self.close(summary is not None)

    # ------------------------------------------------------------------ ids kept for resume
    def remembered(self) -> dict[str, Any]:
        """What ``remember`` kept for this logger in the run directory (empty without one)."""
        file = self.run_dir / STATE_FILE if self.run_dir is not None else None
        if file is None or not file.is_file():
            return {}
        try:
            return dict(json.loads(file.read_text(encoding="utf-8")).get(self.name, {}))
        except (ValueError, AttributeError, TypeError):
            return {}

    def remember(self, **values: Any) -> None:
        """Keep ``values`` (a tracker run id) in ``RUN/loggers.json`` for a resumed run."""
        if self.run_dir is None or not self.run_dir.is_dir():
            return
        file = self.run_dir / STATE_FILE
        state = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else {}
        state[self.name] = {**state.get(self.name, {}), **values}
        file.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
