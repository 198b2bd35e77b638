"""Where the runs of ``compare`` and ``affinity --measure pairs`` train: a Ray cluster (``--backend ray``).

Why: a comparison is dozens of independent trainings; a cluster runs them side by side, each with
its own CPUs (and GPUs). Every run trains (or continues from its checkpoint) with the same
``runs.train_planned`` as a local worker and writes its run directory itself, so results and resume
are those of local workers; the directories must be on a file system every Ray node sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from polytask.dependencies import require
from polytask.errors import PolytaskError

if TYPE_CHECKING:
    from polytask.evidence.runs import PlannedRun

BACKENDS = ("local", "ray")


@dataclass
class RayBackend:
    """Submits each run as a Ray task with ``cpus`` CPUs (default: the run's ``training.threads``) and ``gpus`` GPUs.

    ``address``: a running cluster (``ray://HOST:10001`` or ``auto``); ``None`` joins the Ray
    instance this process already started, else starts a local one.
    """

    address: str | None = None
    cpus: float | None = None
    gpus: float = 0.0

    def run(self, train: Callable[[dict[str, Any], str], dict[str, Any]], runs: Sequence[PlannedRun],
            done: Callable[[PlannedRun, dict[str, Any]], None]) -> dict[str, dict[str, Any]]:
        """Train ``runs`` on the cluster; ``done(run, summary)`` as each finishes; summaries by run name."""
        ray = require("ray", "--backend ray", "cluster")
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        refs = {}
        for run in runs:
            cpus = self.cpus if self.cpus is not None else (run.config.get("training", {}).get("threads") or 1)
            task = ray.remote(num_cpus=cpus, num_gpus=self.gpus, max_retries=0)(train)
            refs[task.remote(run.config, str(run.path))] = run
        summaries: dict[str, dict[str, Any]] = {}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    run = refs.pop(ref)
                    try:
                        summaries[run.name] = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        cause = error.as_instanceof_cause()
                        if isinstance(cause, PolytaskError):
                            raise PolytaskError(str(cause)) from None
                        raise
                    except ray.exceptions.RayError as error:  # a worker or node lost
                        raise PolytaskError(f"the Ray task training {run.name} failed ({type(error).__name__}); "
                                            "finished runs are kept: rerun the same command to resume") from None
                    done(run, summaries[run.name])
        except BaseException:
            for ref in refs:
                ray.cancel(ref)
            raise
        return summaries


def build_backend(name: str, address: str | None = None, gpus: float = 0.0) -> RayBackend | None:
    """``None`` for local worker processes, else the cluster backend (its extra checked now)."""
    if name not in BACKENDS:
        raise PolytaskError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "local":
        if address is not None:
            raise PolytaskError("--address applies to --backend ray")
        return None
    require("ray", "--backend ray", "cluster")
    return RayBackend(address=address, gpus=gpus)


__all__ = ["BACKENDS", "RayBackend", "build_backend"]
