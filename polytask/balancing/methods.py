"""The table of balancing methods and the decorator that fills it, keyed by the names used in ``balancing.method``.

Kinds: a *loss weighting* is a ``Balancer`` factory (it turns the losses into one backward
pass); a *gradient aggregator* is a ``GramianWeighting`` or ``Aggregator`` factory that
``registry.build_balancer`` runs on the per-task gradient engine. Each method file registers
itself here; ``registry`` imports the method packages, so this module imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["loss weighting", "gradient aggregator"]


@dataclass(frozen=True)
class MethodInfo:
    """What ``polytask methods`` lists: the method's kind, what it needs and its paper."""

    name: str
    kind: Kind
    needs: str  # "losses" | "gradients" | "gramian"
    paper: str
    factory: Callable[..., Any]  # loss weighting: -> Balancer; gradient aggregator: -> GramianWeighting | Aggregator


METHODS: dict[str, MethodInfo] = {}


def register_method(name: str, *, kind: Kind, needs: str, paper: str):
    """Class or function decorator adding a method factory to the registry."""

    def decorate(factory: Callable[..., Any]):
        if name in METHODS:
            raise ValueError(f"balancing method {name!r} registered twice")
        METHODS[name] = MethodInfo(name, kind, needs, paper, factory)
        return factory

    return decorate


