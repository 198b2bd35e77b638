"""The registry of task types, keyed by the names used in ``tasks.NAME.type``."""

from __future__ import annotations

import inspect
from typing import Any

from polytask.errors import ConfigError
from polytask.tasks.base import TaskType
from polytask.tasks.multilabel import MultiLabel
from polytask.tasks.regression import Regression
from polytask.tasks.sequence_classification import SequenceClassification
from polytask.tasks.token_classification import TokenClassification

TASK_TYPES: dict[str, type[TaskType]] = {
    TokenClassification.type_name: TokenClassification,
    SequenceClassification.type_name: SequenceClassification,
    Regression.type_name: Regression,
    MultiLabel.type_name: MultiLabel,
}


def task_options(type_name: str) -> dict[str, Any]:
    """The options a task type accepts, with their defaults (for docs and error messages)."""
    parameters = inspect.signature(TASK_TYPES[type_name].__init__).parameters
    return {p.name: p.default for p in parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_task(type_name: str, name: str, **options: Any) -> TaskType:
    """Instantiate task type ``type_name`` for task ``name``; unknown types or bad options raise ConfigError.

    The error names ``tasks.<name>.type`` for an unknown type, ``tasks.<name>.options`` otherwise.
    """
    if type_name not in TASK_TYPES:
        message = f"unknown task type {type_name!r}; choose one of {', '.join(TASK_TYPES)}"
        raise ConfigError(message, field=f"tasks.{name}.type")
    field = f"tasks.{name}.options"
    known = task_options(type_name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        valid = ", ".join(known) or "none"
        message = f"unknown option(s) {', '.join(unknown)} for {type_name!r}; valid options: {valid}"
        raise ConfigError(message, field=field)
    try:
        return TASK_TYPES[type_name](name, **options)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid options for {type_name!r}: {error}", field=field) from None
