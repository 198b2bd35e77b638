"""Task types (tagging, classification, regression, multi-label), their registry and metrics.

Names are imported on first use (PEP 562), so torch-free parts such as ``tasks.metrics.spans``
import without torch (the ONNX runtime needs them).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TASK_TYPES": "polytask.tasks.registry",
    "build_task": "polytask.tasks.registry",
    "task_options": "polytask.tasks.registry",
    "TaskType": "polytask.tasks.base",
    "TokenClassification": "polytask.tasks.token_classification",
    "SequenceClassification": "polytask.tasks.sequence_classification",
    "Regression": "polytask.tasks.regression",
    "MultiLabel": "polytask.tasks.multilabel",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'polytask.tasks' has no attribute {name!r}")
