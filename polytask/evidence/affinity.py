"""Task affinity, one entry point for its two measures: which tasks help which, and how to group them.

``lookahead`` (``lookahead_affinity``): TAG affinity measured during one joint run (Fifty et
al. 2021), cheap. ``pairs`` (``pairwise``): every task alone and every pair trained and their
dev metrics compared (Standley et al. 2020), costly but it sees harm that builds up over
training. The CLI and ``polytask.affinity`` both call ``affinity`` here, so they check alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.errors import PolytaskError

if TYPE_CHECKING:
    from rich.console import Console

    from polytask.config import ExperimentConfig

MEASURES = ("lookahead", "pairs")


def affinity(config: str | Path | ExperimentConfig, out: str | Path | None = None, *, measure: str = "lookahead",
             every: int = 10, groups: int = 2, lookahead: str = "optimizer", seeds: int = 1, jobs: int = 1,
             overrides: Iterable[str] = (), overwrite: bool = False, progress: bool = True,
             console: Console | None = None, backend: Any = None) -> dict[str, Any]:
    """Measure inter-task affinity with ``measure``; return (and write to ``out``) ``affinity.json``'s dictionary.

    ``every`` and ``lookahead`` apply to the lookahead measure; ``seeds``, ``jobs`` and ``backend``
    (``backends.build_backend``: local workers, or a Ray cluster) to pairs, which trains many runs and
    so needs ``out`` (rerun it to resume). Started by ``torchrun`` it stops with a one-line error.
    """
    from polytask.config import ExperimentConfig, resolve_config
    from polytask.training.distributed import refuse_torchrun

    refuse_torchrun("affinity")
    if measure not in MEASURES:
        raise PolytaskError(f"unknown affinity measure {measure!r}; choose {' or '.join(MEASURES)}")
    experiment_config = resolve_config(config, overrides)
    if backend is None:  # the runs train here: a device this machine lacks fails before any starts
        from polytask.training.device import resolve_device

        resolve_device(experiment_config.training.device)
    if measure == "pairs":
        from polytask.evidence.pairwise import run_pairwise

        if out is None:
            raise PolytaskError("--measure pairs trains many runs and needs an out directory")
        file = None if isinstance(config, ExperimentConfig) else str(config)
        return run_pairwise(experiment_config, out, seeds=seeds, jobs=jobs, groups=groups, file=file,
                            overwrite=overwrite, console=console, backend=backend)
    if seeds != 1 or jobs != 1 or backend is not None:
        raise PolytaskError("--seeds, --jobs and --backend apply to --measure pairs; the lookahead measure is one run")
    from polytask.evidence.lookahead_affinity import run_lookahead_affinity

    return run_lookahead_affinity(experiment_config, out, every=every, groups=groups, lookahead=lookahead,
                                  overwrite=overwrite, progress=progress, console=console)
