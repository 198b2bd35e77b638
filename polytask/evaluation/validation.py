"""Checks on evaluation data that turn a label unseen in training into a precise error."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from polytask.data.example import Example
from polytask.errors import DataError
from polytask.tasks.base import TaskType


def check_known_labels(tasks: Mapping[str, TaskType], examples: Sequence[Example]) -> None:
    """Raise a DataError naming file:line for the first label the model cannot predict."""
    for example in examples:
        for name, label in example.labels.items():
            unknown = tasks[name].unknown_labels([label]) if name in tasks else set()
            if unknown:
                raise DataError.at(example.origin, f"task '{name}': label(s) {sorted(unknown)} never seen in training")
