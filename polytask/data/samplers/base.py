"""The task-sampler interface: which tasks a multi-task training step takes its micro-batches from.

A sampler holds one distribution over tasks per step, ``probabilities(step, total_steps)``.
A step draws ``k`` distinct tasks from it by *successive sampling*: one task is drawn with
probabilities p, then another from the rest with p renormalised, and so on, k times. ``k = 1`` is the
one-task-per-step regime of MT-DNN and jiant; ``k = T`` gives every task in every step.

``inclusion_probabilities`` gives the exact chance π_i that task i is among the k drawn.
``importance_weights`` turns them into the loss correction w_i = 1/π_i, for which
E[Σ_{i drawn} w_i L_i] = Σ_i π_i w_i L_i = Σ_i L_i: the sampled step's summed loss is an unbiased
estimate of the summed loss over all tasks (Horvitz & Thompson 1952, "A generalization of sampling without
replacement from a finite universe", JASA 47(260)).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from polytask.errors import ConfigError

#: Largest task count for which π_i is computed exactly when 1 < k < T (a 2^T subset recursion, ~30 ms at 16).
MAX_EXACT_TASKS = 16


def option_error(option: str, message: str) -> ConfigError:
    """The error for an invalid sampler option, named by its config field."""
    return ConfigError(message, field=f"sampling.options.{option}")


class TaskSampler(ABC):
    """Draws the tasks of each training step from a per-step distribution over tasks.

    Why: corpora for different tasks differ in size by orders of magnitude, and how often each
    is seen decides what the shared encoder learns (jiant ``task_sampler.py``; Raffel et al. 2020,
    "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer", JMLR, §3.5.2).

    ``task_sizes`` maps task names to training-example counts; its order is the task order.
    ``cap`` limits the count each size-based formula sees, n_i := min(n_i, cap) (one int for all
    tasks, or a per-task dict; tasks missing from the dict are not capped): the "artificial
    limit" of T5's examples-proportional mixing and jiant's ``examples_cap``. ``seed`` seeds the
    sampler's own ``numpy.random.Generator``, so the draws depend on nothing else.
    ``step`` counts from 0; ``total_steps`` is the planned number of steps in the run.
    """

    name: str = ""

    def __init__(
        self,
        task_sizes: Mapping[str, int],
        *,
        cap: int | Mapping[str, int] | None = None,
        seed: int = 0,
    ) -> None:
        if not task_sizes:
            raise ConfigError("a sampler needs at least one task", field="tasks")
        for task, size in task_sizes.items():
            if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
                raise ConfigError(
                    f"has {size!r} training examples; a sampled task needs at least 1", field=f"tasks.{task}"
                )
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise option_error("seed", f"must be an integer, not {seed!r}")
        self.tasks: list[str] = list(task_sizes)
        self.task_sizes: dict[str, int] = {task: int(size) for task, size in task_sizes.items()}
        self.counted_sizes: dict[str, int] = _apply_cap(self.task_sizes, cap)
        self.cap = cap
        self._rng = np.random.default_rng(int(seed))

    # ----------------------------------------------------------------------------------
    # The distribution

    @abstractmethod
    def probabilities(self, step: int, total_steps: int) -> dict[str, float]:
        """The per-draw probability p_i of each task at ``step`` (sums to 1)."""

    def inclusion_probabilities(self, step: int, total_steps: int, k: int | None = None) -> dict[str, float]:
        """π_i = P(task i is among the k tasks of the step) under successive sampling (sums to k).

        Exact: k = 1 gives π = p, k = T gives π = 1, equal p gives k/T, otherwise a recursion over
        the 2^T subsets (T ≤ ``MAX_EXACT_TASKS``; beyond that a ConfigError).
        """
        k = self._resolve_k(k)
        p = self._probability_vector(step, total_steps)
        return dict(zip(self.tasks, _successive_inclusion(tuple(p.tolist()), k)))

    def importance_weights(
        self, step: int, total_steps: int, k: int | None = None, *, normalize: bool = False
    ) -> dict[str, float]:
        """Per-task loss weights w_i = 1/π_i that make the sampled step unbiased for the full one.

        Why: with them E[Σ_{i drawn} w_i L_i] = Σ_i L_i exactly (Horvitz-Thompson), so the tasks'
        sampling rates no longer act as implicit loss weights. ``normalize=True`` rescales them to
        average 1 over the tasks, w_i = (1/π_i) / mean_j(1/π_j); the expectation is then
        Σ_i L_i / mean_j(1/π_j), the same direction at a step-size scale that depends only on the
        sampling distribution (equal to k/T for uniform sampling).
        """
        inclusion = self.inclusion_probabilities(step, total_steps, k)
        weights = {task: 1.0 / pi for task, pi in inclusion.items()}
        if normalize:
            mean = sum(weights.values()) / len(weights)
            weights = {task: w / mean for task, w in weights.items()}
        return weights

    # ----------------------------------------------------------------------------------
    # Drawing

    def sample(self, step: int, total_steps: int, k: int | None = None) -> list[str]:
        """The k distinct tasks of this step, in task order (k = None: all tasks).

        Draws by successive sampling from ``probabilities(step, total_steps)`` with the sampler's
        own generator; k = T returns every task without touching the generator.
        """
        k = self._resolve_k(k)
        if k == len(self.tasks):
            return list(self.tasks)
        chosen = _successive_sample(self._rng, self._probability_vector(step, total_steps), k)
        return [self.tasks[i] for i in sorted(chosen)]

    # ----------------------------------------------------------------------------------
    # Checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the same draws after a resume (JSON-able)."""
        return {"method": self.name, "tasks": list(self.tasks), "rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state_dict()``; a checkpoint of another method or task set is an error."""
        if state.get("method") != self.name:
            raise ConfigError(
                f"the checkpoint's sampler is {state.get('method')!r}, the config asks for {self.name!r}",
                field="sampling.method",
            )
        if list(state.get("tasks", [])) != self.tasks:
            saved = list(state.get("tasks", []))
            raise ConfigError(
                f"the checkpoint's sampler was built for tasks {saved}, the config has {self.tasks}", field="tasks"
            )
        self._rng.bit_generator.state = dict(state["rng"])

    # ----------------------------------------------------------------------------------
    # Helpers for subclasses

    def _resolve_k(self, k: int | None) -> int:
        if k is None:
            return len(self.tasks)
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= len(self.tasks):
            raise ConfigError(
                f"must be 'all' or a number from 1 to {len(self.tasks)} (the number of tasks), not {k!r}",
                field="sampling.tasks_per_step",
            )
        return int(k)

    def _probability_vector(self, step: int, total_steps: int) -> np.ndarray:
        probabilities = self.probabilities(step, total_steps)
        return np.array([probabilities[task] for task in self.tasks], dtype=np.float64)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(tasks={self.tasks})"


# --------------------------------------------------------------------------------------
# Formulas shared by the samplers


def power_probabilities(sizes: Mapping[str, int], alpha: float) -> dict[str, float]:
    """p_i = n_i^alpha / Σ_j n_j^alpha (alpha = 1: proportional, 1/T: temperature, 0: uniform).

    Computed as exp(alpha (log n_i − max_j log n_j)) so large sizes and exponents do not overflow.
    """
    logs = {task: math.log(n) for task, n in sizes.items()}
    top = max(logs.values())
    powered = {task: math.exp(alpha * (log - top)) for task, log in logs.items()}
    total = math.fsum(powered.values())
    return {task: value / total for task, value in powered.items()}


def check_step(step: int, total_steps: int) -> None:
    """Reject a negative step or an empty run (programming errors, not config errors)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")


def steps_per_epoch(
    task_sizes: Mapping[str, int],
    batch_sizes: Mapping[str, int],
    epoch: Mapping[str, Any],
    inclusion: Mapping[str, float] | None = None,
) -> int:
    """The number of steps in one epoch, from the config's ``training.epoch``.

    Why: with tasks sampled per step there is no natural epoch; the config names one.
    ``{"steps": N}`` is N steps. ``{"task": NAME}`` is one expected pass over NAME's training
    examples (all of them, uncapped): a step includes NAME with probability π (``inclusion``,
    e.g. ``sampler.inclusion_probabilities(0, total, k)``; None means every task every step)
    and then reads ``batch_sizes[NAME]`` of its examples, so the pass takes
    ceil(n / (batch · π)) steps in expectation. No key (or ``task: null``) means the largest
    task, the one with the most batches n / batch. For a schedule whose π changes over training
    (annealed) pass π at step 0.
    """
    steps, task = epoch.get("steps"), epoch.get("task")
    if steps is not None and task is not None:
        raise ConfigError("give either 'steps' or 'task', not both", field="training.epoch")
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ConfigError(f"must be a positive integer, not {steps!r}", field="training.epoch.steps")
        return steps
    if task is None:
        task = max(task_sizes, key=lambda name: task_sizes[name] / batch_sizes[name])
    if task not in task_sizes:
        raise ConfigError(f"{task!r} is not a task; tasks are {list(task_sizes)}", field="training.epoch.task")
    pi = 1.0 if inclusion is None else float(inclusion[task])
    if pi <= 0.0:
        raise ConfigError(f"task {task!r} is never sampled, so a pass over it never ends", field="training.epoch.task")
    # Round away float noise (n / (b·π) = 40.000000000000004 is 40 steps, not 41).
    return max(1, math.ceil(round(task_sizes[task] / (batch_sizes[task] * pi), 9)))


def _apply_cap(sizes: dict[str, int], cap: int | Mapping[str, int] | None) -> dict[str, int]:
    if cap is None:
        return dict(sizes)
    if isinstance(cap, Mapping):
        unknown = sorted(set(cap) - set(sizes))
        if unknown:
            raise option_error("cap", f"names unknown task(s) {unknown}; tasks are {list(sizes)}")
        caps = dict(cap)
    else:
        caps = dict.fromkeys(sizes, cap)
    for _task, value in caps.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise option_error("cap", f"must be a positive integer (or a task -> integer map), not {value!r}")
    return {task: min(n, int(caps[task])) if task in caps else n for task, n in sizes.items()}


def _successive_sample(rng: np.random.Generator, p: np.ndarray, k: int) -> list[int]:
    """Indices of k distinct draws, each from p restricted to the not-yet-drawn tasks."""
    remaining = p.copy()
    chosen: list[int] = []
    for _ in range(k):
        cumulative = np.cumsum(remaining)
        index = int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right"))
        if index >= len(remaining):  # u rounded up to the total: take the last task still available
            index = int(np.flatnonzero(remaining)[-1])
        chosen.append(index)
        remaining[index] = 0.0
    return chosen


@lru_cache(maxsize=256)
def _successive_inclusion(p: tuple[float, ...], k: int) -> tuple[float, ...]:
    """π_i for successive sampling of k of len(p) items, exactly.

    f(S) = P(the first |S| draws are the set S) obeys f(∅) = 1 and
    f(S ∪ {j}) = Σ_{j ∉ S} f(S) p_j / (1 − p(S)); then π_i = Σ_{|S| = k, i ∈ S} f(S).
    """
    count = len(p)
    if k == count:
        return (1.0,) * count
    total = math.fsum(p)
    probs = np.array(p, dtype=np.float64) / total
    if k == 1:
        return tuple(probs.tolist())
    if np.all(probs == probs[0]):
        return (k / count,) * count
    if count > MAX_EXACT_TASKS:
        raise ConfigError(
            f"the exact loss correction for {k} of {count} tasks per step needs at most {MAX_EXACT_TASKS} tasks; "
            "use tasks_per_step 1 or 'all', or uniform sampling",
            field="sampling.loss_correction",
        )
    full = (1 << count) - 1
    masks = np.arange(full + 1, dtype=np.int64)
    bits = [(masks >> j) & 1 for j in range(count)]
    popcount = np.sum(bits, axis=0)
    mass = np.sum([bit * probs[j] for j, bit in enumerate(bits)], axis=0)
    f = np.zeros(full + 1, dtype=np.float64)
    f[0] = 1.0
    for size in range(k):
        layer = masks[popcount == size]
        rest = mass[full ^ layer]  # mass of the complement, without the cancellation of 1 − p(S)
        for j in range(count):
            free = ((layer >> j) & 1) == 0
            f[layer[free] | (1 << j)] += f[layer[free]] * probs[j] / rest[free]
    drawn = masks[popcount == k]
    return tuple(float(f[drawn[((drawn >> j) & 1) == 1]].sum()) for j in range(count))
