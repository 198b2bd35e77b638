"""Optional dependencies (the extras in ``pyproject.toml``), imported where a feature first needs them.

Why: a feature whose extra is not installed must fail with one line naming the pip command,
when the feature is chosen (a method built, an encoder configured, a comparison started), not
with an ImportError traceback after hours of training.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

from polytask.errors import MissingDependencyError


def require(module: str, feature: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise MissingDependencyError naming ``package`` (default: the top module) and ``extra``."""
    try:
        return import_module(module)
    except ImportError:
        raise MissingDependencyError(package or module.split(".")[0], extra, feature) from None
