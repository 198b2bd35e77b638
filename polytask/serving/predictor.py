"""Predicting every task of a trained model for raw inputs, from one encoder pass per batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polytask.data.example import Example
from polytask.errors import DataError, PolytaskError
from polytask.training.setup import Experiment


class Predictor:
    """Wraps a trained model; ``predict`` returns one JSON-able record per input."""

    def __init__(self, experiment: Experiment, batch_size: int = 128):
        self.experiment, self.batch_size = experiment, batch_size

    @classmethod
    def from_run(cls, run: str | Path) -> Predictor:
        from polytask.training.run_dir import load_run

        return cls(load_run(run))

    def predict(self, examples: Sequence[Example]) -> list[dict[str, Any]]:
        """Tokens, and per task: labels (+ entity spans for BIO tasks) or class + probabilities."""
        from polytask.evaluation.evaluate import predict
        from polytask.tasks.metrics.spans import extract_spans

        tasks = self.experiment.tasks
        outputs = predict(self.experiment.model, tasks, examples, self.batch_size, probabilities=True)
        records = []
        for i, example in enumerate(examples):
            record: dict[str, Any] = {"tokens": example.tokens, "tasks": {}}
            if example.text is not None:
                record["text"] = example.text
            for name, task in tasks.items():
                label, scores = outputs[name][i]
                if task.level == "token":
                    entry: dict[str, Any] = {"labels": label}
                    scheme = getattr(task, "scheme", None)
                    if scheme:
                        entry["spans"] = [
                            {"type": kind, "start": start, "end": end, "text": " ".join(example.tokens[start:end])}
                            for kind, start, end in extract_spans(label, scheme)
                        ]
                else:
                    entry = {"label": label}
                    if scores is not None:
                        entry["probabilities"] = scores
                record["tasks"][name] = entry
            records.append(record)
        return records


def read_inputs(path: str | Path, fmt: str) -> list[Example]:
    """Inputs for prediction: ``text`` (a sentence per line), ``conll`` (first column) or ``jsonl``."""
    from polytask.data.readers import read_examples
    from polytask.data.tokenize import simple_tokenize

    path = Path(path)
    if not path.is_file():
        raise PolytaskError(f"input file not found: {path}")
    if fmt == "conll":
        return read_examples("conll", path, {})
    if fmt == "jsonl":
        return read_examples("jsonl", path, {}, text_field="text", tokens_field="tokens")
    examples = []
    raw = path.read_bytes()
    for number, line in enumerate(raw.split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DataError("not valid UTF-8", file=str(path), line=number) from None
        if text:
            examples.append(Example(tokens=simple_tokenize(text), origin=f"{path}:{number}", text=text))
    if not examples:
        raise DataError("no sentences to predict", file=str(path))
    return examples
