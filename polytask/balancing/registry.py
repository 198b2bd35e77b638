"""Registry of balancing methods, keyed by the names used in ``balancing.method``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from polytask.balancing.balancer import Balancer, EqualWeighting

Kind = Literal["weighting", "aggregator"]


@dataclass(frozen=True)
class MethodInfo:
    """What ``polytask methods`` lists: the method's kind, what it needs and its paper."""

    name: str
    kind: Kind
    needs: str  # "losses" | "gradients" | "gramian"
    paper: str
    factory: Callable[..., Balancer]


METHODS: dict[str, MethodInfo] = {}


def register_method(name: str, *, kind: Kind, needs: str, paper: str):
    """Class or function decorator adding a balancer factory to the registry."""

    def decorate(factory: Callable[..., Balancer]):
        if name in METHODS:
            raise ValueError(f"balancing method {name!r} registered twice")
        METHODS[name] = MethodInfo(name, kind, needs, paper, factory)
        return factory

    return decorate


register_method("ew", kind="weighting", needs="losses", paper="equal weighting (baseline)")(EqualWeighting)


def _load_builtin_methods() -> None:
    # Importing the packages runs their @register_method decorators.
    import polytask.balancing.aggregators  # noqa: F401
    import polytask.balancing.weightings  # noqa: F401


def available_methods() -> dict[str, MethodInfo]:
    _load_builtin_methods()
    return dict(sorted(METHODS.items()))


def build_balancer(method: str, task_names: list[str], options: dict[str, Any] | None = None) -> Balancer:
    """Instantiate ``method`` for ``task_names``; unknown names or options raise ConfigError."""
    from polytask.errors import ConfigError

    methods = available_methods()
    if method not in methods:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(methods)}", field="balancing.method")
    factory = methods[method].factory
    try:
        return factory(task_names=task_names, **(options or {}))
    except TypeError as error:
        raise ConfigError(f"invalid options for {method!r}: {error}", field="balancing.options") from None
