"""Sharing architectures, keyed by ``sharing.type``: how the tasks share the encoder.

| type | paper | what is shared |
|---|---|---|
| ``hard`` | Caruana 1997 | the whole encoder |
| ``branched`` | Fifty et al. 2021; Standley et al. 2020 | the bottom layers; one copy of the upper layers per task group |
| ``mmoe`` | Ma et al. 2018 | experts mixed per token by one softmax gate per task |
| ``ple`` / ``cgc`` | Tang et al. 2020 | shared and task-specific experts in (progressive) extraction layers |
| ``cross_stitch`` | Misra et al. 2016 | one tower per task, learned linear mixing after every layer |
| ``soft`` | Duong et al. 2015 | nothing: one encoder per task, an L2 penalty pulls them together |

Adding an architecture is one file with a ``SharingArchitecture`` subclass and one line here
(or ``register_sharing`` from outside, which also declares its ``sharing`` fields).
"""

from __future__ import annotations

from collections.abc import Sequence

from polytask.config import SHARING_FIELDS, SharingConfig
from polytask.errors import ConfigError
from polytask.models.encoders.base import Encoder
from polytask.models.sharing.base import RepresentationCut, SharingArchitecture, TaskStates

ARCHITECTURES: dict[str, type[SharingArchitecture]] = {}


def register_sharing(name: str, *, fields: Sequence[str] = ()):
    """Decorator adding a ``SharingArchitecture`` for ``sharing.type: name``; ``fields``: the ``sharing`` fields it reads."""
    unknown = sorted(set(fields) - set(SharingConfig.model_fields))
    if unknown:
        raise ValueError(f"register_sharing({name!r}): {', '.join(unknown)} are not sharing fields")

    def decorate(architecture: type[SharingArchitecture]) -> type[SharingArchitecture]:
        ARCHITECTURES[name] = architecture
        SHARING_FIELDS[name] = tuple(fields)
        return architecture

    return decorate


def _builtin() -> None:
    from polytask.models.sharing.branched import BranchedSharing
    from polytask.models.sharing.cross_stitch import CrossStitchSharing
    from polytask.models.sharing.hard import HardSharing
    from polytask.models.sharing.mmoe import MultiGateMixtureOfExperts
    from polytask.models.sharing.ple import CustomizedGateControl, ProgressiveLayeredExtraction
    from polytask.models.sharing.soft import SoftSharing

    ARCHITECTURES.setdefault("hard", HardSharing)
    ARCHITECTURES.setdefault("branched", BranchedSharing)
    ARCHITECTURES.setdefault("mmoe", MultiGateMixtureOfExperts)
    ARCHITECTURES.setdefault("ple", ProgressiveLayeredExtraction)
    ARCHITECTURES.setdefault("cgc", CustomizedGateControl)
    ARCHITECTURES.setdefault("cross_stitch", CrossStitchSharing)
    ARCHITECTURES.setdefault("soft", SoftSharing)


def available_architectures() -> list[str]:
    _builtin()
    return sorted(ARCHITECTURES)


def build_sharing(config: SharingConfig, encoder: Encoder, tasks: Sequence[str]) -> SharingArchitecture:
    """The architecture ``config`` names over a built encoder (its random parameters come with ``build()``).

    The constructor runs with the random state restored afterwards, so the heads, created next, draw
    the same initial weights as under hard sharing; ``build()`` (after the heads) draws the rest.
    """
    _builtin()
    if config.type not in ARCHITECTURES:
        raise ConfigError(f"unknown sharing type {config.type!r}; choose one of {', '.join(sorted(ARCHITECTURES))}",
                          field="sharing.type")
    architecture = ARCHITECTURES[config.type]
    if encoder.task_conditioned and not architecture.task_conditioned_encoders:
        raise ConfigError("per-task adapters already give every task its own encoder; use them with sharing type "
                          "'hard'", field="sharing.type")
    import torch

    with torch.random.fork_rng(devices=[]):  # what it draws is forgotten: the heads start as under hard sharing
        return architecture(encoder, config, tasks)


__all__ = ["ARCHITECTURES", "RepresentationCut", "SharingArchitecture", "TaskStates", "available_architectures",
           "build_sharing", "register_sharing"]
