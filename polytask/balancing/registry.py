"""Building a balancing method by name: every built-in method registered, options checked, engine configured.

A *loss weighting* (kind "loss weighting") is a ``Balancer`` factory: it turns losses into one
backward pass. A *gradient aggregator* (kind "gradient aggregator") is a ``GramianWeighting`` or
``Aggregator`` factory: ``build_balancer`` runs it on the per-task gradient engine in the
requested mode. Adding a method: one file in ``loss_weightings/`` or ``aggregators/`` and one
import line in that package's ``__init__``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from polytask.balancing.balancer import Balancer
from polytask.balancing.methods import METHODS, MethodInfo, register_method

__all__ = ["available_methods", "build_balancer", "register_method"]

def _load_builtin_methods() -> None:
    # Importing the packages runs their @register_method decorators.
    import polytask.balancing.aggregators
    import polytask.balancing.loss_weightings  # noqa: F401


def available_methods() -> dict[str, MethodInfo]:
    _load_builtin_methods()
    return dict(sorted(METHODS.items()))


def build_balancer(
    method: str,
    task_names: list[str],
    options: dict[str, Any] | None = None,
    *,
    mode: str = "exact",
    update_every: int = 1,
    shared_params: Sequence[str] | None = None,
) -> Balancer:
    """Instantiate ``method`` for ``task_names``; user mistakes raise ConfigError naming the field.

    ``mode`` ("exact" | "representation" | "subset"), ``update_every`` and ``shared_params``
    (parameter-name prefixes for "subset") configure the gradient engine of aggregators; loss
    weightings compute no per-task gradients and accept only the defaults.
    """
    from polytask.balancing.aggregation import GradientBalancer
    from polytask.errors import ConfigError

    methods = available_methods()
    if method not in methods:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(methods)}", field="balancing.method")
    info = methods[method]
    options = dict(options or {})
    if info.kind == "loss weighting":
        if mode != "exact" or update_every != 1:
            raise ConfigError(
                f"{method!r} is a loss weighting: it computes no per-task gradients, so mode and update_every do not apply",
                field="balancing.mode" if mode != "exact" else "balancing.update_every",
            )
        if shared_params and "shared_params" not in inspect.signature(info.factory).parameters:
            raise ConfigError(f"{method!r} does not use shared_params", field="balancing.shared_params")
        if shared_params:
            options["shared_params"] = list(shared_params)
        return _construct(info, {"task_names": task_names, **options})
    aggregator = _construct(info, options)
    return GradientBalancer(
        aggregator, task_names, mode=mode, update_every=update_every, shared_params=shared_params, name=method
    )


def _construct(info: MethodInfo, kwargs: dict[str, Any]) -> Any:
    from polytask.errors import ConfigError

    try:
        inspect.signature(info.factory).bind(**kwargs)
    except TypeError as error:
        raise ConfigError(f"invalid options for {info.name!r}: {error}", field="balancing.options") from None
    try:
        return info.factory(**kwargs)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"invalid options for {info.name!r}: {error}", field="balancing.options") from None
