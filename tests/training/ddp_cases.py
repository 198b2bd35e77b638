"""Cases for the data-parallel tests, run inside spawned gloo process groups (not a test module itself).

One process group runs every case one after the other (starting a group costs more than a case).
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

STEPS = 10
GRAMIAN_METHODS = ["mgda", "pcgrad", "upgrad", "cagrad", "nash_mtl"]
WEIGHTINGS = ["ew", "uw", "dwa", "famo", "gradnorm", "db_mtl"]


def cases() -> list[dict[str, Any]]:
    """(method, mode, update_every, sampled): every method named in issue 12 in the modes it supports."""
    out = []
    for method in WEIGHTINGS:
        out += [{"method": method, "sampled": True}, {"method": method, "sampled": False}]
    for method in GRAMIAN_METHODS:
        out += [{"method": method, "mode": "exact", "sampled": True}, {"method": method, "mode": "representation", "sampled": True},
                {"method": method, "mode": "exact", "update_every": 3, "sampled": False}]
    out += [{"method": "upgrad", "mode": "exact", "sampled": False}, {"method": "upgrad", "mode": "representation", "sampled": False},
            {"method": "upgrad", "mode": "representation", "update_every": 3, "sampled": True},
            {"method": "graddrop", "mode": "exact", "sampled": True}, {"method": "graddrop", "mode": "exact", "sampled": False},
            {"method": "graddrop", "mode": "representation", "sampled": True},
            {"method": "graddrop", "mode": "representation", "sampled": False}]
    # accumulation and ranks together: 2 micro-batches on each of 2 ranks
    out += [{"method": "upgrad", "mode": "exact", "sampled": True, "accumulate": 2},
            {"method": "uw", "sampled": True, "accumulate": 2}]
    return out


def reference_case(case: dict[str, Any]) -> dict[str, Any]:
    """The one-process, one-micro-batch case with the same union batch."""
    accumulate = case.get("accumulate", 1)
    return {**case, "accumulate": 1, "scale": case.get("scale", 1) * accumulate}


def case_name(case: dict[str, Any]) -> str:
    return "-".join(str(case.get(k, d)) for k, d in (("method", ""), ("mode", "exact"), ("update_every", 1),
                                                     ("sampled", False), ("accumulate", 1), ("scale", 1)))


def case_config(method: str, mode: str = "exact", update_every: int = 1, sampled: bool = False,
                accumulate: int = 1, scale: int = 1) -> dict[str, Any]:
    """The tiny POS + chunking + sentiment config, dropout off; ``scale`` multiplies the batch sizes.

    Batches of 5 CoNLL sentences and 4 polarity lines: 9 examples split over 2 ranks (5 and 4, with
    uneven token counts), and every rank's shard holds only some tasks' labels (partial labels).
    """
    from tests.conftest import tiny_config_dict

    data = tiny_config_dict()
    data["encoder"].update(dropout=0.0, embedding_dropout=0.0)
    data["heads"] = {t: {"layer": 1 if t == "pos" else -1, "dropout": 0.0} for t in ("pos", "chunk", "sentiment")}
    data["tasks"]["sentiment"]["batch_size"] = 4 * scale
    data["balancing"] = {"method": method, "mode": mode, "update_every": update_every}
    if sampled:
        data["sampling"] = {"method": "temperature", "tasks_per_step": 2, "options": {"temperature": 2.0}}
    # SGD: Adam divides by the root of tiny second moments and so turns float rounding (summation
    # order across ranks) on near-zero coordinates into differences of the order of the learning rate
    data["training"].update(batch_size=5 * scale, accumulate=accumulate, max_steps=STEPS, epochs=1, lr=0.05,
                            optimizer="sgd", device="cpu", threads=1)
    return data


def train_case(case: dict[str, Any], parallel: Any = None) -> dict[str, torch.Tensor]:
    """Parameters (model and method) after ``STEPS`` steps of ``case``."""
    from polytask.config import validate_config
    from polytask.training.distributed import DataParallel
    from polytask.training.setup import build_experiment
    from polytask.training.trainer import Trainer

    trainer = Trainer(build_experiment(validate_config(case_config(**case))), progress=False,
                      parallel=parallel or DataParallel())
    for _ in range(STEPS):
        trainer.train_step(trainer.build_step())
    state = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    state.update({f"balancer.{i}": p.detach().clone() for i, p in enumerate(trainer.balancer.parameters())})
    return state


def worker(rank: int, world: int, port: int, out: str, job: str, payload: Any) -> None:
    """One rank of a gloo group: runs ``job`` and writes ``out/rank{rank}.pt``."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        result = JOBS[job](payload)
    except Exception:  # the test reads the traceback instead of a hang or a bare exit code
        result = {"error": traceback.format_exc()}
    torch.save(result, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def job_cases(payload: list[dict[str, Any]]) -> dict[str, Any]:
    from polytask.training.distributed import DataParallel

    return {case_name(case): train_case(case, DataParallel.current()) for case in payload}


def job_runs(payload: dict[str, Any]) -> dict[str, Any]:
    """A run straight through, one interrupted at step 5 and resumed, in the same two processes."""
    from polytask.config import validate_config
    from polytask.training.callbacks import Callback
    from polytask.training.run import resume_run, train_run

    class Crash(Callback):
        def before_step(self, trainer, batch) -> None:
            if trainer.step == 5:
                raise KeyboardInterrupt("simulated crash")

    config = validate_config(payload["config"])
    root = Path(payload["root"])
    straight = train_run(config, root / "straight", progress=False)
    with contextlib.suppress(KeyboardInterrupt):
        train_run(config, root / "cut", progress=False, callbacks=[Crash()])
    resumed = resume_run(root / "cut", progress=False)
    with contextlib.suppress(KeyboardInterrupt):  # left interrupted: the test resumes it in one process
        train_run(config, root / "cut-for-one", progress=False, callbacks=[Crash()])
    return {"straight": straight, "resumed": resumed}


def job_logged_run(payload: dict[str, Any]) -> dict[str, Any]:
    """A run with ``training.loggers`` on every rank (each rank would write its own event file if it logged)."""
    from polytask.config import validate_config
    from polytask.training.run import train_run

    return {"summary": train_run(validate_config(payload["config"]), payload["out"], progress=False)}


JOBS = {"cases": job_cases, "runs": job_runs, "logged_run": job_logged_run}


def torchrun(*args: str, restarts: int = 0):
    """``torchrun --standalone --nproc_per_node 2 [--max-restarts N] ARGS``, one thread per rank."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "--max-restarts", str(restarts), *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)


def spawn(job: str, payload: Any, out: Path, world: int = 2,
          meanwhile: Callable[[], Any] | None = None) -> tuple[list[dict[str, Any]], Any]:
    """Run ``job`` on ``world`` spawned gloo ranks; every rank's result, and what ``meanwhile`` returned.

    ``meanwhile`` runs in this process while the ranks train (the one-process references: with one
    thread per rank, 2 ranks leave a core of 2 idle when they wait on each other).
    """
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out.mkdir(parents=True, exist_ok=True)
    context = mp.start_processes(worker, args=(world, port, str(out), job, payload), nprocs=world, join=False,
                                 start_method="spawn")
    try:
        extra = meanwhile() if meanwhile is not None else None
    finally:
        while not context.join():
            pass
    results = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]
    for rank, result in enumerate(results):
        assert "error" not in result, f"rank {rank}:\n{result['error']}"
    return results, extra
