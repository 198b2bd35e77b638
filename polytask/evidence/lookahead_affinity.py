"""Inter-task affinity: which tasks help which, measured by lookahead during one joint training run.

Why: before splitting tasks across models or dropping one, see whether a step on task i's
gradient lowers or raises task j's loss. TAG, Fifty et al. 2021 (Efficiently Identifying Task
Groupings for Multi-Task Learning, NeurIPS): on a step's batch, move only the shared
parameters by one step on task i's gradient alone, θ' = θ − η·P⁻¹∇_θ L_i, and record

    Z_{i→j} = 1 − L_j(θ') / L_j(θ)

for every task j present; positive means i's update helps j. η is each parameter's current
learning rate and P the training optimizer's preconditioner (``lookahead.py``: Adam's
sqrt(v̂) + ε by default, as the paper steps with the real optimizer; 1 for SGD or with
``lookahead="sgd"``). The same measurement records the cosine between the tasks'
shared-parameter gradients. Averages count, per pair, only the measured steps where
both tasks had labelled examples.

The measurement does not change training: dropout is off (eval mode) for its forward passes,
the random state is restored, gradients are taken with ``torch.autograd.grad`` (no ``.grad``
is touched) and the parameters are copied back bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from polytask.dependencies import require
from polytask.errors import PolytaskError
from polytask.evaluation.grouping import best_groupings, check_task_count
from polytask.evidence.lookahead import LookaheadStep, lookahead_rule, rates_step
from polytask.training.callbacks import Callback
from polytask.training.device import is_cuda

if TYPE_CHECKING:
    from rich.console import Console

    from polytask.config import ExperimentConfig
    from polytask.data.batching import Batch
    from polytask.training.trainer import Trainer

AFFINITY_PNG, COSINE_PNG, RUN = "affinity.png", "cosine.png", "run"
TOP_GROUPINGS = 5


@dataclass
class Measurement:
    """One step's matrices over ``tasks`` (row = source task i, column = target task j); NaN where undefined."""

    tasks: list[str]
    affinity: list[list[float]]
    cosine: list[list[float]]


def measure_affinity(parameters: Sequence[nn.Parameter], compute_losses: Callable[[], Mapping[str, Tensor]],
                     step: LookaheadStep | float | Sequence[float]) -> Measurement:
    """Lookahead affinity and gradient cosines of the tasks ``compute_losses()`` returns, on ``parameters``.

    ``compute_losses`` must be deterministic (no dropout); ``step`` is the lookahead rule's step,
    or SGD's at one rate or one per parameter. The parameters are restored exactly, also on error.
    """
    parameters = list(parameters)
    step = step if isinstance(step, LookaheadStep) else rates_step(step, len(parameters))
    losses = compute_losses()
    tasks = list(losses)
    gradients = {t: _gradients(losses[t], parameters) for t in tasks}
    before = {t: float(losses[t].detach()) for t in tasks}
    del losses
    flat = {t: torch.cat([g.reshape(-1) for g in gradients[t]]) if parameters else torch.zeros(0) for t in tasks}
    cosine = [[_cosine(flat[i], flat[j]) for j in tasks] for i in tasks]
    saved = [p.detach().clone() for p in parameters]
    affinity = [[math.nan] * len(tasks) for _ in tasks]
    try:
        with torch.no_grad():
            for a, source in enumerate(tasks):
                step.apply(parameters, gradients[source])
                after = {t: float(v) for t, v in compute_losses().items()}
                for p, original in zip(parameters, saved):
                    p.copy_(original)
                for b, target in enumerate(tasks):
                    if math.isfinite(before[target]) and before[target] != 0 and math.isfinite(after[target]):
                        affinity[a][b] = 1.0 - after[target] / before[target]
    finally:
        with torch.no_grad():
            for p, original in zip(parameters, saved):
                p.copy_(original)
    return Measurement(tasks, affinity, cosine)


def _gradients(loss: Tensor, parameters: list[nn.Parameter]) -> list[Tensor]:
    if not loss.requires_grad:
        return [torch.zeros_like(p) for p in parameters]
    grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(parameters, grads)]


def _cosine(a: Tensor, b: Tensor) -> float:
    norms = float(a.norm()) * float(b.norm())
    return float(a @ b) / norms if norms > 0 else math.nan


class AffinityMeter(Callback):
    """Measures TAG lookahead affinity and gradient cosines on the step's batch every ``every`` steps (step 0 first).

    ``lookahead`` names the rule (``lookahead.LOOKAHEADS``). A step where no shared parameter
    would move is skipped: none trainable with a nonzero learning rate, or, with Adam's rule, the
    optimizer has no second-moment estimate yet (step 0).
    """

    def __init__(self, tasks: Sequence[str], every: int = 10, lookahead: str = "optimizer"):
        if every < 1:
            raise PolytaskError(f"--every must be at least 1, not {every}")
        self.tasks, self.every, self.lookahead = list(tasks), every, lookahead
        self.rule = lookahead_rule(lookahead)
        self.rules: set[str] = set()  # the update rules the steps actually took (sgd, adam)
        n = len(self.tasks)
        self.sums = {"affinity": _zeros(n), "cosine": _zeros(n)}
        self.counts = {"affinity": _zeros(n), "cosine": _zeros(n)}
        self.measurements = 0

    def before_step(self, trainer: Trainer, batch: Batch) -> None:
        if trainer.step % self.every or not batch.present_tasks:
            return
        model, present = trainer.model, batch.present_tasks
        shared = list(model.shared_parameters().values())  # trainable ones: a frozen layer takes no step
        step = self.rule(trainer.optimizer, shared)
        if step is None or not step.moves():  # nothing shared would move (encoder frozen, no Adam state yet)
            return

        def compute_losses() -> dict[str, Tensor]:
            return trainer.losses(batch, present, model(batch.inputs, present).logits)

        was_training = model.training
        devices = sorted({p.device.index or 0 for p in shared if is_cuda(p.device)})
        model.eval()
        try:
            with torch.random.fork_rng(devices=devices):
                self.add(measure_affinity(shared, compute_losses, step))
        finally:
            model.train(was_training)
        self.rules.add(step.rule)

    def add(self, measurement: Measurement) -> None:
        index = [self.tasks.index(t) for t in measurement.tasks]
        for kind in ("affinity", "cosine"):
            matrix = getattr(measurement, kind)
            for a, i in enumerate(index):
                for b, j in enumerate(index):
                    if math.isfinite(matrix[a][b]):
                        self.sums[kind][i][j] += matrix[a][b]
                        self.counts[kind][i][j] += 1
        self.measurements += 1

    def mean(self, kind: str = "affinity") -> list[list[float]]:
        """The average over measurements, per pair; NaN for a pair never measured."""
        sums, counts = self.sums[kind], self.counts[kind]
        n = len(self.tasks)
        return [[sums[i][j] / counts[i][j] if counts[i][j] else math.nan for j in range(n)] for i in range(n)]


def _zeros(n: int) -> list[list[float]]:
    return [[0.0] * n for _ in range(n)]


# --------------------------------------------------------------------------------------
# The command


def run_lookahead_affinity(config: ExperimentConfig, out: str | Path | None = None, *, every: int = 10, groups: int = 2,
                 lookahead: str = "optimizer", overwrite: bool = False, progress: bool = True,
                 console: Console | None = None) -> dict[str, Any]:
    """Train ``config`` once with an ``AffinityMeter``; return (and write to ``out``) the matrices and grouping.

    With ``out``: ``out/affinity.json``, ``out/affinity.png``, ``out/cosine.png`` and the training
    run directory ``out/run`` (the trained model is kept). ``lookahead``: ``optimizer`` (the
    training optimizer's update rule) or ``sgd`` (``lookahead.LOOKAHEADS``).
    """
    from polytask.evidence.affinity_files import AFFINITY_JSON, check_affinity_out
    from polytask.training.run import train_run
    from polytask.training.run_dir import write_json

    tasks = list(config.tasks)
    if groups < 1:
        raise PolytaskError(f"--groups must be at least 1, not {groups}")
    check_task_count(len(tasks))
    meter = AffinityMeter(tasks, every, lookahead)
    out = Path(out) if out is not None else None
    if out is not None:
        require("matplotlib", "polytask affinity's heatmaps", "report")  # drawn after training
    if out is not None:
        check_affinity_out(out, "lookahead", overwrite)
    summary = train_run(config, out / RUN if out is not None else None, overwrite=overwrite, progress=progress,
                        console=console, callbacks=[meter])
    if not meter.measurements:
        raise PolytaskError(f"no affinity measurement was taken in {summary['steps']} steps: none of the steps "
                            f"0, {every}, {2 * every}, ... had a shared encoder to step (trainable, and "
                            f"with --lookahead optimizer under Adam, after the optimizer's first step)")
    result = affinity_result(meter, groups)
    result["steps"] = summary["steps"]
    if out is not None:
        result["run"] = str(out / RUN)
        write_json(out / AFFINITY_JSON, result)
        write_heatmaps(result, out)
    return result


def affinity_result(meter: AffinityMeter, groups: int) -> dict[str, Any]:
    """The JSON-ready result: mean matrices (null where unmeasured), the best grouping and the runners-up."""
    affinity, cosine = meter.mean("affinity"), meter.mean("cosine")
    ranked = best_groupings(meter.tasks, affinity, groups)
    return {"measure": "lookahead", "tasks": meter.tasks, "affinity": _json_matrix(affinity), "cosine": _json_matrix(cosine),
            "pairs_measured": [[int(c) for c in row] for row in meter.counts["affinity"]],
            "measurements": meter.measurements, "every": meter.every, "lookahead": meter.lookahead,
            "lookahead_rules": sorted(meter.rules), "max_groups": groups,
            "groups": ranked[0].groups, "score": ranked[0].score,
            "all_groupings": [{"groups": g.groups, "score": g.score} for g in ranked[:TOP_GROUPINGS]]}


def _json_matrix(matrix: list[list[float]]) -> list[list[float | None]]:
    return [[x if math.isfinite(x) else None for x in row] for row in matrix]


def write_heatmaps(result: Mapping[str, Any], out: Path) -> None:
    from polytask.rendering import save_heatmap

    n = result["measurements"]
    save_heatmap(result["affinity"], result["tasks"], out / AFFINITY_PNG,
                 f"lookahead affinity Z(i→j) = 1 − L_j(θ')/L_j(θ), mean of {n}\n"
                 "row: source task i (step taken), column: target task j (> 0: i helps j)")
    save_heatmap(result["cosine"], result["tasks"], out / COSINE_PNG,
                 f"cosine of shared-parameter gradients, mean of {n}\nrow: task i, column: task j")
