"""The multi-task training loop.

Each step: the step builder assembles one batch from the sampled tasks, one forward pass
gives every present task's loss, the configured ``Balancer`` turns the losses into
gradients (the only place balancing happens), then clipping, the optimizer, the schedule
and the balancer's post-step hook. Dev metrics each epoch drive best-model selection and
early stopping on the mean of the tasks' normalised primary metrics. A checkpoint of the whole
loop state after each epoch (and every ``checkpoint_every`` steps) lets an interrupted run
continue exactly (``load_checkpoint``; ``polytask resume``).
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
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from polytask.balancing.balancer import StepContext
from polytask.balancing.registry import build_balancer
from polytask.balancing.row_lookups import RowLookupRecorder
from polytask.data.batching import Batch
from polytask.data.steps import StepBuilder
from polytask.errors import PolytaskError
from polytask.evaluation.evaluate import evaluate
from polytask.tasks.normalise import selection_score
from polytask.training.callbacks import Callback
from polytask.training.device import resolve_device
from polytask.training.optim import build_optimizer, build_param_groups, build_scheduler
from polytask.training.run_dir import MODEL, RunDirectory
from polytask.training.setup import Experiment
from polytask.training.unfreezing import EncoderFreezer

CHECKPOINT_VERSION = 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class Trainer:
    """Trains an experiment's model, writing metrics and the best weights to the run directory."""

    def __init__(self, experiment: Experiment, run_dir: RunDirectory | None = None, *, progress: bool = True,
                 console: Console | None = None, on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 callbacks: Sequence[Callback] = ()):
        self.experiment, self.run_dir = experiment, run_dir
        self.config, self.model, self.tasks = experiment.config, experiment.model, experiment.tasks
        self.console = console or Console(stderr=True)
        self.show_progress, self.on_epoch, self.callbacks = progress, on_epoch, list(callbacks)
        seed_everything(self.config.training.seed)
        if self.config.training.threads:
            torch.set_num_threads(self.config.training.threads)
        self.device = resolve_device(self.config.training.device)
        self.model.to(self.device)
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
        self.optimizer = build_optimizer(build_param_groups(self.model, self.balancer.parameters(), training), training)
        self.scheduler = build_scheduler(self.optimizer, training, self.total_steps)
        self.freezer = EncoderFreezer(self.model, training)  # after the optimizer: it holds every group
        self.row_lookups = RowLookupRecorder(self.model.encoder)  # embedding rows read, for the gradient engine
        self.freezer.start_epoch(1)
        self.step = 0
        self.epoch = 1  # the epoch being trained (after the last one: epochs + 1)
        self.best: dict[str, Any] = {"score": -math.inf, "epoch": 0, "dev": {}}
        self.stale, self.stopped = 0, False  # epochs without improvement; early stopping reached
        self.elapsed = 0.0  # training seconds before this process (a resumed run)
        self.running: dict[str, float] = {}  # smoothed losses for the progress bar

    # ------------------------------------------------------------------------------
    def losses(self, batch: Batch, tasks: list[str], logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {t: self.tasks[t].loss(logits[t], batch.targets[t], batch.labelled[t]) for t in tasks}

    def train_step(self, batch: Batch) -> dict[str, Any]:
        """One optimisation step on ``batch``; returns the diagnostics to log."""
        batch = batch.to(self.device)
        for callback in self.callbacks:
            callback.before_step(self, batch)
        self.model.train()
        present = batch.present_tasks
        self.row_lookups.take()  # forget lookups from outside a step (e.g. a callback's forward pass)
        output = self.model(batch.inputs, present)
        row_lookups = self.row_lookups.take()
        losses = self.losses(batch, present, output.logits)
        if self.config.sampling.loss_correction:
            correction = self.steps.importance_weights(self.step, self.total_steps)
            losses = {t: loss * correction[t] for t, loss in losses.items()}

        def recompute_losses() -> dict[str, torch.Tensor]:
            with torch.no_grad():
                return self.losses(batch, present, self.model(batch.inputs, present).logits)

        representation = [r for r in output.representation if r.requires_grad]  # frozen layers carry no gradient
        context = StepContext(shared_parameters=self.model.shared_parameters(), representation=representation,
                              step=self.step, epoch=self.epoch, recompute_losses=recompute_losses,
                              row_lookups=row_lookups)
        self.optimizer.zero_grad(set_to_none=True)
        stats = self.balancer.backward(losses, context)
        if self.config.training.clip_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.training.clip_norm)
        self.optimizer.step()
        self.scheduler.step()
        detached = {t: loss.detach() for t, loss in losses.items()}
        self.balancer.after_optimizer_step(detached, context)
        self.step += 1
        record = {"losses": {t: float(v) for t, v in detached.items()}, **stats}
        for callback in self.callbacks:
            callback.after_step(self, batch, record)
        return record

    def evaluate(self, split: str) -> dict[str, dict[str, float]]:
        examples = self.experiment.corpus.examples(split)
        return evaluate(self.model, self.tasks, examples, self.config.training.eval_batch_size) if examples else {}

    # ------------------------------------------------------------------------------
    def fit(self) -> dict[str, Any]:
        """Train for the configured budget (from a loaded checkpoint onwards); restore and return the best epoch's summary.

        With a run directory, a checkpoint is saved at the end of every epoch (and every
        ``training.checkpoint_every`` steps): ``polytask resume`` continues from it exactly.
        """
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
                    batch = self.steps.build(self.step, self.total_steps)
                    record = self.train_step(batch)
                    for task, value in record["losses"].items():
                        previous = self.running.get(task)
                        self.running[task] = value if previous is None else 0.95 * previous + 0.05 * value
                    if self.run_dir and (self.step % training.log_every == 0 or self.step == 1):
                        self.run_dir.log({"kind": "step", "step": self.step, "epoch": epoch,
                                          "lr": self.scheduler.get_last_lr()[0], "tasks": batch.present_tasks,
                                          "seen": dict(self.steps.seen), **record})
                    progress.update(bar, advance=1, losses=self._progress_text(self.running))
                    every = training.checkpoint_every
                    if every and self.step % every == 0 and self.step < epoch_end:
                        self.save_checkpoint(time.perf_counter() - started)
                dev = self.evaluate("dev")
                score = selection_score(self.tasks, dev)
                improved = score > self.best["score"]
                record = {"kind": "eval", "split": "dev", "epoch": epoch, "step": self.step, "tasks": dev,
                          "score": score, "best": improved, "seconds": time.perf_counter() - started}
                if self.run_dir:
                    self.run_dir.log(record)
                if self.on_epoch:
                    self.on_epoch(record)
                self._print_epoch(progress, epoch, dev, score, improved)
                if improved:
                    self.best = {"score": score, "epoch": epoch, "dev": dev,
                                 "state": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
                    self.stale = 0
                    if self.run_dir:
                        self.run_dir.save_model(self.experiment, MODEL)
                else:
                    self.stale += 1
                    if patience and self.stale >= patience:
                        progress.console.print(f"early stopping: no improvement for {self.stale} epochs")
                        self.stopped = True
                self.epoch += 1
                self.save_checkpoint(time.perf_counter() - started)
        if "state" in self.best:
            self.model.load_state_dict(self.best.pop("state"))
        elif self.best["epoch"] and self.run_dir:  # resumed after the best epoch: its weights are in the run
            self.run_dir.load_weights(self.model)
        seconds = time.perf_counter() - started
        test = self.evaluate("test")
        if self.run_dir and test:
            self.run_dir.log({"kind": "eval", "split": "test", "epoch": self.best["epoch"], "tasks": test})
        summary = build_summary(self.best["dev"], test, self.best["epoch"], seconds, self.step, self.steps.seen)
        if self.run_dir:
            self.run_dir.save_summary(summary)
            self.run_dir.remove_checkpoint()
        return summary

    # ------------------------------------------------------------------------------
    def save_checkpoint(self, elapsed: float) -> None:
        """Everything ``load_checkpoint`` needs to continue exactly, written atomically to the run directory."""
        if self.run_dir is None:
            return
        self.elapsed = elapsed
        self.run_dir.save_checkpoint(self.checkpoint_state())

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
        rng = state["rng"]
        random.setstate(rng["python"])
        name, keys, position, has_gauss, gauss = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])

    def _log_unfreezing(self, progress: Progress, epoch: int) -> None:
        groups = self.freezer.trainable
        if self.run_dir:
            self.run_dir.log({"kind": "unfreeze", "epoch": epoch, "step": self.step, "trainable_groups": groups})
        progress.console.print(f"epoch {epoch}: encoder layer groups {groups} of 0..{len(self.freezer.groups) - 1} train")

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
        progress.console.print(f"epoch {epoch} dev  " + " | ".join(parts) + f"  score={score:.4f}{mark}")


def _numpy_state() -> tuple:
    """NumPy's global random state with plain Python values (the checkpoint loads without unpickling code)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return name, [int(k) for k in keys], int(position), int(has_gauss), float(gauss)


def _count(n: int) -> str:
    return f"{n / 1000:.1f}k" if n >= 1000 else str(n)


def build_summary(dev: dict, test: dict, best_epoch: int, seconds: float, steps: int, seen: dict) -> dict[str, Any]:
    """``{"tasks": {TASK: {METRIC: {"dev": x, "test": y}}}, "best_epoch": n, "train_seconds": s, ...}``."""
    tasks: dict[str, dict[str, dict[str, float | None]]] = {}
    for task in sorted(set(dev) | set(test)):
        metrics = sorted(set(dev.get(task, {})) | set(test.get(task, {})))
        tasks[task] = {m: {"dev": dev.get(task, {}).get(m), "test": test.get(task, {}).get(m)} for m in metrics}
    return {"tasks": tasks, "best_epoch": best_epoch, "train_seconds": round(seconds, 2), "steps": steps,
            "examples_seen": dict(seen)}

