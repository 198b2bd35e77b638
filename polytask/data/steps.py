"""Assembling each training step from the tasks' data: which tasks, which examples.

Every step the task sampler picks the tasks (``tasks_per_step: all`` picks every task);
each picked task's pool contributes one micro-batch, and the micro-batches are collated
together so one encoder pass serves every task in the step. A task's pool is its source
(shared with the other tasks labelled in that source), or, for a task merging several
sources, the union of its examples across them. Pools are cycled in seeded shuffled
passes, so the sequence of steps is deterministic and resumable.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from polytask.config import ExperimentConfig
from polytask.data.batching import Batch, collate
from polytask.data.corpus import MultiTaskCorpus
from polytask.data.example import Example
from polytask.data.featurizer import Featurizer, LabelCodec


class ShuffledCycle:
    """Endless seeded shuffled passes over a list of examples, with resumable state."""

    def __init__(self, size: int, seed: int):
        self.size, self.rng = size, random.Random(seed)
        self.order: list[int] = []
        self.position = 0
        self.passes = 0

    def take(self, count: int) -> list[int]:
        taken: list[int] = []
        while len(taken) < count:
            if self.position >= len(self.order):
                self.order = list(range(self.size))
                self.rng.shuffle(self.order)
                self.position, self.passes = 0, self.passes + 1
            chunk = self.order[self.position : self.position + count - len(taken)]
            self.position += len(chunk)
            taken.extend(chunk)
        return taken

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.getstate(), "order": self.order, "position": self.position, "passes": self.passes}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.order, self.position, self.passes = list(state["order"]), state["position"], state["passes"]


class StepBuilder:
    """Builds the batch of every training step from the corpus, the sampler and the batch sizes.

    Tasks reading the same pool share one micro-batch (of the largest of their batch sizes).
    """

    def __init__(self, config: ExperimentConfig, corpus: MultiTaskCorpus, tasks: Mapping[str, LabelCodec],
                 featurizer: Featurizer):
        self.config, self.tasks, self.featurizer = config, dict(tasks), featurizer
        seed = config.training.seed
        self.pools: dict[str, list[Example]] = {
            str(i): [e for e in source.splits["train"] if any(t in e.labels for t in source.tasks)]
            for i, source in enumerate(corpus.sources)
        }
        self.task_pool: dict[str, str] = {}
        for task, sources in corpus.task_sources.items():
            if task not in tasks:
                continue
            if len(sources) == 1:
                self.task_pool[task] = str(sources[0])
            else:  # a task merging several sources draws from the union of its examples
                self.task_pool[task] = f"task:{task}"
                self.pools[f"task:{task}"] = corpus.task_examples(task, "train")
        self.cycles = {key: ShuffledCycle(len(pool), seed * 1009 + i) for i, (key, pool) in enumerate(self.pools.items())}
        # per update: training.accumulate micro-batches of the configured size (all ranks together)
        accumulate = config.training.accumulate
        self.batch_sizes = {t: (config.tasks[t].batch_size or config.training.batch_size) * accumulate for t in tasks}
        self.task_sizes = {t: len(corpus.task_examples(t, "train")) for t in tasks}
        self.sampler = None
        per_step = config.sampling.tasks_per_step
        self.tasks_per_step = len(tasks) if per_step == "all" else min(per_step, len(tasks))
        if self.tasks_per_step < len(tasks):
            from polytask.data.samplers import build_sampler

            options = {"seed": seed, **config.sampling.options}
            self.sampler = build_sampler(config.sampling.method, self.task_sizes, **options)
        self.seen = dict.fromkeys(tasks, 0)

    def steps_per_epoch(self) -> int:
        """Steps in one epoch: ``training.epoch.steps``, or one expected pass over a task (default: the largest)."""
        from polytask.data.samplers.base import steps_per_epoch

        inclusion = None
        if self.sampler is not None:
            inclusion = self.sampler.inclusion_probabilities(0, 1, self.tasks_per_step)
        epoch = self.config.training.epoch.model_dump(exclude_none=True)
        return steps_per_epoch(self.task_sizes, self.batch_sizes, epoch, inclusion)

    def select_tasks(self, step: int, total_steps: int) -> list[str]:
        if self.sampler is None:
            return list(self.tasks)
        return self.sampler.sample(step, total_steps, self.tasks_per_step)

    def build(self, step: int, total_steps: int) -> Batch:
        """The batch of ``step``: one micro-batch per selected task, labels of selected tasks only."""
        selected, examples = self.draw(step, total_steps)
        return collate(examples, self.featurizer, {t: self.tasks[t] for t in selected})

    def draw(self, step: int, total_steps: int) -> tuple[list[str], list[Example]]:
        """The tasks and examples of ``step`` (the whole batch of an update, before any sharding)."""
        selected = self.select_tasks(step, total_steps)
        sizes: dict[str, int] = {}
        for task in selected:
            pool = self.task_pool[task]
            sizes[pool] = max(sizes.get(pool, 0), self.batch_sizes[task])
        examples = [self.pools[pool][i] for pool, size in sizes.items() for i in self.cycles[pool].take(size)]
        for task in selected:
            self.seen[task] += sum(1 for e in examples if e.labels.get(task) is not None)
        return selected, examples

    def state_dict(self) -> dict[str, Any]:
        return {
            "cycles": {key: c.state_dict() for key, c in self.cycles.items()},
            "sampler": self.sampler.state_dict() if self.sampler is not None else None,
            "seen": dict(self.seen),
        }

    def importance_weights(self, step: int, total_steps: int) -> dict[str, float]:
        """Sampler-aware loss correction: 1/π_i so the expected loss is the unweighted task sum."""
        if self.sampler is None:
            return dict.fromkeys(self.tasks, 1.0)
        return self.sampler.importance_weights(step, total_steps, self.tasks_per_step)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, cycle_state in state["cycles"].items():
            self.cycles[key].load_state_dict(cycle_state)
        if self.sampler is not None and state.get("sampler") is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.seen.update(state["seen"])
