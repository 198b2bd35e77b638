"""The multi-task training loop.

Each step: the step builder assembles one batch from the sampled tasks, one forward pass
gives every present task's loss, the configured ``Balancer`` turns the losses into
gradients (the only place balancing happens), then clipping, the optimizer, the schedule
and the balancer's post-step hook. Dev metrics each epoch drive best-model selection and
early stopping on the mean of the tasks' normalised primary metrics. A checkpoint of the whole
loop state after each epoch (and every ``checkpoint_every`` steps) lets an interrupted run
continue exactly (``load_checkpoint``; ``polytask resume``).

The loop runs on ``training.device`` (``device``), its forward passes under ``training.precision``
(``precision``), and as one of several data-parallel ranks under ``torchrun`` (``distributed``):
a step is this rank's micro-batches of the whole step, its losses the whole step's (weighted by
global token counts), and the balancer's reduce hook makes every statistic a method reads global.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from polytask._version import __version__
from polytask.balancing.balancer import RepresentationRows, StepContext
from polytask.balancing.reduce import GradientReduce
from polytask.balancing.registry import build_balancer
from polytask.data.batching import Batch
from polytask.data.steps import StepBuilder
from polytask.errors import ConfigError, PolytaskError
from polytask.evaluation.scoring import evaluate, predict, score
from polytask.evaluation.selection import selection_score
from polytask.training.callbacks import Callback
from polytask.training.device import resolve_device
from polytask.training.distributed import DataParallel, StepBatches
from polytask.training.optim import build_optimizer, build_param_groups, build_scheduler
from polytask.training.precision import Precision
from polytask.training.run_dir import MODEL, RunDirectory
from polytask.training.setup import Experiment
from polytask.training.unfreezing import EncoderFreezer

CHECKPOINT_VERSION = 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class TrainingDiverged(PolytaskError):
    """Too many steps in a row with a non-finite loss or gradients (``training.max_bad_steps``)."""


class Trainer:
    """Trains an experiment's model, writing metrics and the best weights to the run directory."""

    def __init__(self, experiment: Experiment, run_dir: RunDirectory | None = None, *, progress: bool = True,
                 console: Console | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 callbacks: Sequence[Callback] = (), parallel: DataParallel | None = None):
        self.parallel = parallel or DataParallel.current()
        # every rank reads the run directory (resume); only rank 0 writes it and shows progress
        self.experiment, self.run_dir = experiment, run_dir
        self.writer = run_dir if self.parallel.main else None
        self.config, self.model, self.tasks = experiment.config, experiment.model, experiment.tasks
        self.console = console or Console(stderr=True)
        if not self.parallel.main:
            self.console = Console(stderr=True, quiet=True)
        self.show_progress, self.on_epoch, self.callbacks = progress and self.parallel.main, on_epoch, list(callbacks)
        seed_everything(self.config.training.seed)
        if self.config.training.threads:
            torch.set_num_threads(self.config.training.threads)
        self.device = resolve_device(self.config.training.device, local_rank=self.parallel.local_rank)
        self.model.to(self.device)
        self.parallel.broadcast_parameters(list(self.model.state_dict().values()))
        self.precision = Precision(self.config.training.precision, self.device)
        self.reduce = GradientReduce(self.parallel.world, device=self.device)
        for task in self.tasks:  # model selection scores every task's dev metric
            if not experiment.corpus.task_examples(task, "dev"):
                raise ConfigError("the task has no labelled dev examples, which model selection reads: give "
                                  "data.dev or carve one with data.split.dev", field=f"tasks.{task}.data")
        self.steps = StepBuilder(self.config, experiment.corpus, self.tasks, self.model.encoder.featurizer)
        training = self.config.training
        self.steps_per_epoch = self.steps.steps_per_epoch()
        self.total_steps = training.epochs * self.steps_per_epoch
        if training.max_steps:
            self.total_steps = min(self.total_steps, training.max_steps)
        balancing = self.config.balancing
        self.balancer = build_balancer(balancing.method, list(self.tasks), balancing.options, mode=balancing.mode,
                                       update_every=balancing.update_every, shared_params=balancing.shared_params)
        self.balancer.to(self.device)  # before the optimizer: it holds the method's parameters
        self.balancer.reduce = self.reduce
        self.optimizer = build_optimizer(build_param_groups(self.model, self.balancer.parameters(), training), training)
        self.scheduler = build_scheduler(self.optimizer, training, self.total_steps)
        self.freezer = EncoderFreezer(self.model, training)  # after the optimizer: it holds every group
        self.balancer.attach(self.model.encoder)  # a method may watch the shared encoder's forward passes
        self.freezer.start_epoch(1)
        self.step = 0
        self.epoch = 1  # the epoch being trained (after the last one: epochs + 1)
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "dev": {}}
        self.stale, self.stopped = 0, False  # epochs without improvement; early stopping reached
        self.elapsed = 0.0  # training seconds before this process (a resumed run)
        self.running: dict[str, float] = {}  # smoothed losses for the progress bar
        self.skipped = 0  # steps not applied: inf/NaN losses or gradients (an fp16 overflow, a diverging run)
        self.bad_in_a_row = 0  # consecutive skipped steps, against training.max_bad_steps

    # ------------------------------------------------------------------------------
    def losses(self, batch: Batch, tasks: list[str], logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t: self.tasks[t].loss(logits[t], batch.targets[t], batch.labelled[t]) for t in tasks}

    def build_step(self) -> StepBatches:
        """This rank's micro-batches of the next step (the whole step with one process and no accumulation)."""
        selected, examples = self.steps.draw(self.step, self.total_steps)
        return self.parallel.step_batches(selected, examples, self.model.encoder.featurizer, self.tasks,
                                          self.config.training.accumulate)

    def loss_counts(self, step: StepBatches) -> torch.Tensor:
        """Micro-batch × present task: how many tokens (or examples) each mean loss is over (float64, CPU)."""
        return torch.tensor([[float(self.tasks[t].loss_count(b.targets[t], b.labelled[t])) for t in step.present]
                             for b in step.micro], dtype=torch.float64).reshape(len(step.micro), len(step.present))

    def step_losses(self, step: StepBatches, counts: torch.Tensor,
                    forward: Callable[[Batch], Any]) -> tuple[dict[str, torch.Tensor], list]:
        """The step's per-task losses on the union of every rank's micro-batches, and the forward outputs.

        Each micro-batch's mean loss is weighted by its share of the task's global token (or example)
        count, so any split of the step gives the loss of the whole; the reduce hook makes the values
        global (``GradientReduce.global_losses``).
        """
        present = step.present
        totals = counts.sum(0)
        self.reduce.all_reduce_([totals])
        fractions = (counts / totals.clamp(min=1)).tolist()
        shares: dict[str, torch.Tensor] = {}
        outputs = []
        for batch, fraction in zip(step.micro, fractions):
            with self.precision.autocast():
                output = forward(batch)
                losses = self.losses(batch, present, output.logits)
            outputs.append(output)
            for t, f in zip(present, fraction):
                term = losses[t] * f if len(step.micro) > 1 or self.reduce.distributed else losses[t]
                shares[t] = term if t not in shares else shares[t] + term
        return self.reduce.global_losses(shares), outputs

    def train_step(self, batch: Batch | StepBatches) -> dict[str, Any]:
        """One optimisation step on ``batch`` (or this rank's micro-batches of one); returns the diagnostics to log."""
        step = batch if isinstance(batch, StepBatches) else StepBatches([batch], batch.present_tasks)
        counts = self.loss_counts(step)  # from the CPU batches, before they move
        step = step.to(self.device)
        for callback in self.callbacks:
            callback.before_step(self, step.micro[0])
        self.model.train()
        present = step.present
        with self.balancer.watch_forward():
            losses, outputs = self.step_losses(step, counts, lambda b: self.model(b.inputs, present))
        if self.config.sampling.loss_correction:
            correction = self.steps.importance_weights(self.step, self.total_steps)
            losses = {t: loss * correction[t] for t, loss in losses.items()}

        def recompute_losses() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return self.step_losses(step, counts, lambda b: self.model(b.inputs, present))[0]

        representation, rows = [], []
        for output, examples in zip(outputs, step.example_positions()):
            for layer, tensor in enumerate(output.representation):
                if tensor.requires_grad:  # frozen layers carry no gradient
                    representation.append(tensor)
                    rows.append(RepresentationRows(layer, examples))
        context = StepContext(shared_parameters=self.model.shared_parameters(), representation=representation,
                              step=self.step, epoch=self.epoch, recompute_losses=recompute_losses,
                              representation_rows=rows)
        self.optimizer.zero_grad(set_to_none=True)
        self.reduce.scale = self.precision.scale
        stats = self.balancer.backward(losses, context)
        penalty = self.model.penalty()  # the sharing architecture's regulariser, if any: outside balancing
        if penalty is not None:
            self.reduce.backward(penalty)
            stats = {**stats, "penalty": float(penalty.detach())}
        self.reduce.sync_gradients([*self.model.parameters(), *self.balancer.parameters()])
        applied = self.precision.step(self.optimizer, self.model.parameters(), self.config.training.clip_norm)
        self.scheduler.step()
        detached = {t: loss.detach() for t, loss in losses.items()}
        if applied:  # a skipped step changed no weight: the method has nothing to follow up
            self.balancer.after_optimizer_step(detached, context)
        self.step += 1
        record = {"losses": {t: float(v) for t, v in detached.items()}, **stats}
        if applied:
            self.bad_in_a_row = 0
        else:
            self._skip(record)
        for callback in self.callbacks:
            callback.after_step(self, step.micro[0], record)
        return record

    def _skip(self, record: dict[str, Any]) -> None:
        """Count a step whose loss or gradients were not finite; too many in a row end the run with a one-line error."""
        self.skipped += 1
        self.bad_in_a_row += 1
        record["skipped"] = True
        bad = sorted(t for t, v in record["losses"].items() if not math.isfinite(v))
        if self.skipped == 1 and self.parallel.main:
            cause = f"non-finite loss of {', '.join(bad)}" if bad else "non-finite gradients"
            self.console.print(f"step {self.step}: skipped ({cause}); skipped steps are counted in the summary",
                               highlight=False)
        limit = self.config.training.max_bad_steps
        if limit is not None and self.bad_in_a_row >= limit:
            where = f"{self.run_dir.path}" if self.run_dir is not None else "the run"
            raise TrainingDiverged(
                f"training stopped at step {self.step}: {self.bad_in_a_row} steps in a row had a non-finite loss or "
                f"gradients (training.max_bad_steps={limit}; lower training.lr or use precision bf16/fp32); "
                f"{where} keeps the best weights so far and the last good checkpoint")

    def evaluate(self, split: str) -> dict[str, dict[str, float]]:
        """Metrics on ``split``; with several ranks each predicts its shard and every rank scores the whole."""
        examples = self.experiment.corpus.examples(split)
        if not examples:
            return {}
        if not self.parallel.distributed:
            return evaluate(self.model, self.tasks, examples, self.config.training.eval_batch_size)
        mine = self.parallel.shard(examples)
        shard = predict(self.model, self.tasks, mine, self.config.training.eval_batch_size)
        rows = self.parallel.unshard([{t: shard[t][i] for t in self.tasks} for i in range(len(mine))], len(examples))
        return score(self.tasks, examples, {t: [row[t] for row in rows] for t in self.tasks})

    # ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for the configured budget (from a loaded checkpoint onwards); restore and return the best epoch's summary.

        With a run directory, a checkpoint is saved at the end of every epoch (and every
        ``training.checkpoint_every`` steps): ``polytask resume`` continues from it exactly.
        """
        for callback in self.callbacks:
            callback.before_fit(self)
        summary = None
        try:
            summary = self._fit()
        finally:
            for callback in self.callbacks:
                callback.after_fit(self, summary)
        return summary

    def _record(self, record: dict[str, Any]) -> None:
        """One metrics record: appended to ``metrics.jsonl`` and handed to the callbacks, on rank 0."""
        if not self.parallel.main:
            return
        if self.writer:
            self.writer.log(record)
        for callback in self.callbacks:
            callback.on_record(self, record)

    def _fit(self) -> dict[str, Any]:
        training = self.config.training
        started = time.perf_counter() - self.elapsed
        epochs = math.ceil(self.total_steps / self.steps_per_epoch)
        patience = training.early_stopping.patience
        with self._progress() as progress:
            bar = progress.add_task("training", total=self.total_steps, completed=self.step,
                                    losses=self._progress_text(self.running))
            while self.epoch <= epochs and not self.stopped:
                epoch = self.epoch
                epoch_start = (epoch - 1) * self.steps_per_epoch
                if self.freezer.start_epoch(epoch) and self.step == epoch_start:
                    self._log_unfreezing(progress, epoch)
                epoch_end = min(epoch * self.steps_per_epoch, self.total_steps)
                while self.step < epoch_end:
                    batch = self.build_step()
                    record = self.train_step(batch)
                    for task, value in record["losses"].items():
                        if not math.isfinite(value):  # a skipped step's loss would stick in the average
                            continue
                        previous = self.running.get(task)
                        self.running[task] = value if previous is None else 0.95 * previous + 0.05 * value
                    if self.step % training.log_every == 0 or self.step == 1 or record.get("skipped"):
                        self._record({"kind": "step", "step": self.step, "epoch": epoch,
                                      "lr": self.scheduler.get_last_lr()[0], "tasks": batch.present,
                                      "seen": dict(self.steps.seen), **record})
                    progress.update(bar, advance=1, losses=self._progress_text(self.running))
                    every = training.checkpoint_every
                    if every and self.step % every == 0 and self.step < epoch_end:
                        self.save_checkpoint(time.perf_counter() - started)
                dev = self.evaluate("dev")
                score = selection_score(self.tasks, dev, training.selection_weights)
                improved = score > self.best["score"]
                record = {"kind": "eval", "split": "dev", "epoch": epoch, "step": self.step, "tasks": dev,
                          "score": score, "best": improved, "seconds": time.perf_counter() - started}
                self._record(record)
                if self.on_epoch:
                    self.on_epoch(record)
                self._print_epoch(progress, epoch, dev, score, improved)
                if improved:
                    self.best = {"score": score, "epoch": epoch, "dev": dev,
                                 "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
                    self.stale = 0
                    if self.writer:
                        self.writer.save_model(self.experiment, MODEL)
                else:
                    self.stale += 1
                    if patience and self.stale >= patience:
                        self._say(progress, f"early stopping: no improvement for {self.stale} epochs")
                        self.stopped = True
                self.epoch += 1
                self.save_checkpoint(time.perf_counter() - started)
        if "state" in self.best:
            self.model.load_state_dict(self.best.pop("state"))
        elif self.best["epoch"] and self.run_dir:  # resumed after the best epoch: its weights are in the run
            self.run_dir.load_weights(self.model)
        seconds = time.perf_counter() - started
        test = self.evaluate("test")
        if test:
            self._record({"kind": "eval", "split": "test", "epoch": self.best["epoch"], "step": self.step, "tasks": test})
        summary = build_summary(self.best["dev"], test, self.best["epoch"], seconds, self.step, self.steps.seen)
        summary["skipped_steps"] = self.skipped
        summary["parameters"] = sum(p.numel() for p in self.model.parameters())
        if self.writer:
            self.writer.save_summary(summary)
            self.writer.remove_checkpoint()
        self.parallel.barrier()  # the other ranks return once the run directory is complete
        return summary

    # ------------------------------------------------------------------------------
    def save_checkpoint(self, elapsed: float) -> None:
        """Everything ``load_checkpoint`` needs to continue exactly, written atomically to the run directory.

        Every rank holds the same state (the same updates, the same random draws): rank 0 writes it.
        """
        self.elapsed = elapsed
        if self.writer is None:
            return
        self.writer.save_checkpoint(self.checkpoint_state())

    def checkpoint_state(self) -> dict[str, Any]:
        """The model, optimizer, schedule, balancer, step builder, random states and loop counters."""
        return {
            "version": CHECKPOINT_VERSION,
            "step": self.step, "epoch": self.epoch, "stopped": self.stopped, "stale": self.stale,
            "best": {k: v for k, v in self.best.items() if k != "state"},
            "elapsed": self.elapsed, "running": dict(self.running),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "balancer": self.balancer.state_dict(),
            "steps": self.steps.state_dict(),
            "precision": self.precision.state_dict(), "skipped": self.skipped, "bad_in_a_row": self.bad_in_a_row,
            "rng": {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
        }

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        """Continue from ``checkpoint_state()``: the next ``fit`` resumes at the saved step."""
        if state.get("version") != CHECKPOINT_VERSION:
            raise PolytaskError(f"the checkpoint has format version {state.get('version')!r}; this polytask reads "
                                f"version {CHECKPOINT_VERSION}")
        self.step, self.epoch, self.stopped, self.stale = state["step"], state["epoch"], state["stopped"], state["stale"]
        self.best, self.elapsed, self.running = dict(state["best"]), state["elapsed"], dict(state["running"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.balancer.load_state_dict(state["balancer"])
        self.steps.load_state_dict(state["steps"])
        self.precision.load_state_dict(state.get("precision", {}))
        self.skipped = int(state.get("skipped", 0))
        self.bad_in_a_row = int(state.get("bad_in_a_row", 0))
        rng = state["rng"]
        random.setstate(rng["python"])
        name, keys, position, has_gauss, gauss = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _log_unfreezing(self, progress: Progress, epoch: int) -> None:
        groups = self.freezer.trainable
        self._record({"kind": "unfreeze", "epoch": epoch, "step": self.step, "trainable_groups": groups})
        self._say(progress, f"epoch {epoch}: encoder layer groups {groups} of 0..{len(self.freezer.groups) - 1} train")

    def _progress(self) -> Progress:
        return Progress(TextColumn("[bold]step"), MofNCompleteColumn(), BarColumn(), TextColumn("{task.fields[losses]}"),
                        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=self.console,
                        disable=not self.show_progress, transient=False)

    def _progress_text(self, running: dict[str, float]) -> str:
        """Running loss and examples seen so far, per task."""
        return " ".join(f"{t} {v:.3f} ({_count(self.steps.seen[t])})" for t, v in running.items())

    def _print_epoch(self, progress: Progress, epoch: int, dev: dict, score: float, improved: bool) -> None:
        parts = [f"{task} " + " ".join(f"{m}={v:.2f}" for m, v in metrics.items()) for task, metrics in dev.items()]
        mark = " *" if improved else ""
        self._say(progress, f"epoch {epoch} dev  " + " | ".join(parts) + f"  score={score:.4f}{mark}")

    def _say(self, progress: Progress, text: str) -> None:
        """A progress line (an epoch's dev metrics, early stopping); none without progress (``--quiet``)."""
        if self.show_progress:
            progress.console.print(text)


def _numpy_state() -> tuple:
    """NumPy's global random state with plain Python values (the checkpoint loads without unpickling code)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return name, [int(k) for k in keys], int(position), int(has_gauss), float(gauss)


def _count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def build_summary(dev: dict, test: dict, best_epoch: int, seconds: float, steps: int, seen: dict) -> dict[str, Any]:
    """``{"tasks": {TASK: {METRIC: {"dev": x, "test": y}}}, "best_epoch": n, "train_seconds": s, ...}``.

    ``polytask_version`` records the polytask that trained the run.
    """
    tasks: dict[str, dict[str, dict[str, float | None]]] = {}
    for task in sorted(set(dev) | set(test)):
        metrics = sorted(set(dev.get(task, {})) | set(test.get(task, {})))
        tasks[task] = {m: {"dev": dev.get(task, {}).get(m), "test": test.get(task, {}).get(m)} for m in metrics}
    return {"tasks": tasks, "best_epoch": best_epoch, "train_seconds": round(seconds, 2), "steps": steps,
            "examples_seen": dict(seen), "polytask_version": __version__}

