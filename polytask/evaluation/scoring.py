"""Scoring a multi-task model: every task's predictions from one encoder pass per batch."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import torch

from polytask.data.batching import collate
from polytask.data.example import Example
from polytask.models.multitask import MultiTaskModel
from polytask.tasks.base import TaskType


@torch.no_grad()
def predict(model: MultiTaskModel, tasks: Mapping[str, TaskType], examples: Sequence[Example],
            batch_size: int = 128, probabilities: bool | Collection[str] = False) -> dict[str, list[Any]]:
    """Predictions of every task for every example, in input order (length-sorted batching).

    ``probabilities``: True (every task) or the tasks whose scores to return with each prediction,
    as (prediction, scores) pairs; the others pair with None.
    """
    scored = set(tasks) if probabilities is True else set(probabilities or ())
    was_training = model.training
    if was_training:  # eval() walks every submodule: a cost on the small batches a server runs
        model.eval()
    device = next(model.parameters()).device  # the model's device: batches follow it
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].tokens) + len(examples[i].tokens_pair or ()))
    results: dict[str, list[Any]] = {t: [None] * len(examples) for t in tasks}
    scores: dict[str, list[Any]] = {t: [None] * len(examples) for t in tasks}
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        batch = collate([examples[i] for i in indices], model.encoder.featurizer, {}).to(device)
        output = model(batch.inputs, tasks)
        for name, task in tasks.items():
            decoded = task.decode(output.logits[name], batch.lengths)
            probs = task.probabilities(output.logits[name], batch.lengths) if name in scored else None
            for j, i in enumerate(indices):
                results[name][i] = decoded[j]
                if probs is not None:
                    scores[name][i] = probs[j]
    if was_training:
        model.train()
    if probabilities is not False:  # True, or a (possibly empty) collection of tasks: pairs for every task
        return {t: list(zip(results[t], scores[t])) for t in tasks}
    return results


def evaluate(model: MultiTaskModel, tasks: Mapping[str, TaskType], examples: Sequence[Example],
             batch_size: int = 128) -> dict[str, dict[str, float]]:
    """Per-task metrics over the examples labelled for each task (others are skipped)."""
    return score(tasks, examples, predict(model, tasks, examples, batch_size))


def score(tasks: Mapping[str, TaskType], examples: Sequence[Example],
          predictions: Mapping[str, Sequence[Any]]) -> dict[str, dict[str, float]]:
    """Per-task metrics of ``predictions`` (per task, one per example) over the examples labelled for it."""
    metrics: dict[str, dict[str, float]] = {}
    for name, task in tasks.items():
        labelled = [i for i, e in enumerate(examples) if name in e.labels]
        if labelled:
            metrics[name] = task.metrics([examples[i].labels[name] for i in labelled],
                                         [predictions[name][i] for i in labelled])
    return metrics
