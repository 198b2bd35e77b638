"""Integer label ids and their names (``tasks.NAME.label_names``), shared by the classification task types.

Why: ``datasets`` exports ``ClassLabel`` columns (and many JSONL dumps store tags) as integer ids.
Without names an id is its own class (``3`` -> ``"3"``); with ``label_names`` id ``i`` is
``label_names[i]``, an id outside the list is an error, and so is a name that is not in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polytask.errors import DataError


def is_label_id(raw: Any) -> bool:
    """An integer label id (a JSON number without fraction; booleans are not ids)."""
    return isinstance(raw, int) and not isinstance(raw, bool)


class LabelNames:
    """The names of a task's integer label ids: id ``i`` is ``names[i]``."""

    def __init__(self, names: Sequence[str]):
        if isinstance(names, str) or not isinstance(names, Sequence) or not names:
            raise ValueError(f"label_names must be a non-empty list of class names, got {names!r}")
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"label_names must hold non-empty strings, got {name!r}")
        duplicates = sorted({name for name in names if list(names).count(name) > 1})
        if duplicates:
            raise ValueError(f"label_names lists {', '.join(map(repr, duplicates))} more than once")
        self.names = list(names)
        self._known = set(self.names)

    def name(self, raw: Any, task: str, origin: str) -> Any:
        """The class name of ``raw``: an id mapped, a listed name kept; anything else is left to the task type."""
        if is_label_id(raw):
            if not 0 <= raw < len(self.names):
                raise DataError.at(origin, f"task {task!r}: label id {raw} is out of range: label_names has "
                                           f"{len(self.names)} names (ids 0-{len(self.names) - 1})")
            return self.names[raw]
        if isinstance(raw, str) and raw not in self._known:
            raise DataError.at(origin, f"task {task!r}: label {raw!r} is not one of label_names "
                                       f"({', '.join(self.names[:8])}{', ...' if len(self.names) > 8 else ''})")
        return raw


def label_name(raw: Any, names: LabelNames | None, task: str, origin: str) -> Any:
    """``raw`` as a class name: through ``names`` when given, else an integer id becomes its digits (``3`` -> ``"3"``)."""
    if names is not None:
        return names.name(raw, task, origin)
    return str(raw) if is_label_id(raw) else raw


def label_names_option(names: Sequence[str] | None) -> LabelNames | None:
    """The ``label_names`` task option as a ``LabelNames`` (None when not set)."""
    return None if names is None else LabelNames(names)
