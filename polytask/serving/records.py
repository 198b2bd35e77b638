"""The prediction record of one input, shared by the torch ``Predictor`` and the torch-free ``OnnxPredictor``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polytask.data.example import Example


def prediction_records(examples: Sequence[Example], tasks: Mapping[str, Mapping[str, Any]],
                       outputs: Mapping[str, Sequence[tuple[Any, Any]]]) -> list[dict[str, Any]]:
    """Tokens (and text; a pair's second sentence as ``tokens_pair``, ``text_pair``), and per task its labels (+ entity ``spans`` with a scheme) or its label (+ probabilities).

    ``tasks[name]`` gives the task's ``level`` and ``scheme``; ``outputs[name][i]`` is example i's
    (decoded label, scores or None).
    """
    from polytask.tasks.metrics.spans import extract_spans

    records = []
    for i, example in enumerate(examples):
        record: dict[str, Any] = {"tokens": example.tokens, "tasks": {}}
        if example.text is not None:
            record["text"] = example.text
        if example.tokens_pair is not None:
            record["tokens_pair"] = example.tokens_pair
            if example.text_pair is not None:
                record["text_pair"] = example.text_pair
        for name, task in tasks.items():
            label, scores = outputs[name][i]
            if task["level"] == "token":
                entry: dict[str, Any] = {"labels": label}
                if task.get("scheme"):
                    entry["spans"] = [{"type": kind, "start": start, "end": end,
                                       "text": " ".join(example.tokens[start:end])}
                                      for kind, start, end in extract_spans(label, task["scheme"])]
            else:
                entry = {"label": label}
                if scores is not None:
                    entry["probabilities"] = scores
            record["tasks"][name] = entry
        records.append(record)
    return records
