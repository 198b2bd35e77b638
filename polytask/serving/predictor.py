"""Predicting every task of a trained model for raw inputs, from one encoder pass per batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError, PolytaskError
from polytask.serving.inputs import RawInput, as_example, predict_by_form


class Predictor:
    """Wraps a trained model; ``predict`` returns one JSON-able record per input."""

    def __init__(self, experiment: Any, batch_size: int = 128):
        """``experiment``: a ``training.setup.Experiment`` with a trained model (``load_run``)."""
        self.experiment, self.batch_size = experiment, batch_size

    @classmethod
    def from_run(cls, run: str | Path, device: str | None = None) -> Predictor:
        """The run's model on ``device`` (auto | cpu | cuda | cuda:N | mps; default CPU)."""
        from polytask.training.run_dir import load_run

        return cls(load_run(run, device=device))

    @property
    def task_names(self) -> list[str]:
        return list(self.experiment.tasks)

    @property
    def pair_tasks(self) -> list[str]:
        """The tasks that read sentence pairs (they answer pair inputs; the others answer single sentences)."""
        return [name for name, task in self.experiment.config.tasks.items() if task.reads_pairs]

    def describe_tasks(self) -> dict[str, dict[str, Any]]:
        """Per task: type, level, ``pairs`` for a sentence-pair task, and label space (as in ``labels.json``),
        as ``GET /tasks`` shows them."""
        pairs = set(self.pair_tasks)
        return {name: {"type": task.type_name, "level": task.level, **({"pairs": True} if name in pairs else {}),
                       **task.labels_to_json()}
                for name, task in self.experiment.tasks.items()}

    def predict(self, inputs: Sequence[RawInput]) -> list[dict[str, Any]]:
        """Tokens, and per task: labels (+ entity spans for BIO tasks) or class + probabilities.

        ``inputs``: ``Example``s, raw texts, token lists or sentence pairs ``(text, text_pair)``
        (``serving.inputs.as_example``). A pair is answered by the sentence-pair tasks, a single
        sentence by the others; one encoder pass per batch of each form.
        """
        examples = [as_example(item, f"inputs[{i}]") for i, item in enumerate(inputs)]
        return predict_by_form(self._predict, self.task_names, self.pair_tasks, examples)

    def _predict(self, names: Sequence[str], examples: Sequence[Example]) -> list[dict[str, Any]]:
        from polytask.evaluation.scoring import predict
        from polytask.serving.records import prediction_records

        tasks = {name: self.experiment.tasks[name] for name in names}
        scored = [name for name, task in tasks.items() if task.level != "token"]  # records hold no token scores
        outputs = predict(self.experiment.model, tasks, examples, self.batch_size, probabilities=scored)
        return prediction_records(examples, {name: {"level": task.level, "scheme": getattr(task, "scheme", None)}
                                             for name, task in tasks.items()}, outputs)


def _json_sentence(record: Any, tokens_key: str, text_key: str, origin: str) -> tuple[list[str], str | None] | None:
    """One sentence of a JSONL prediction input: its ``tokens_key`` list or its ``text_key`` string (None: neither)."""
    tokens = record.get(tokens_key) if isinstance(record, dict) else None
    text = record.get(text_key) if isinstance(record, dict) else None
    if isinstance(tokens, list) and tokens and all(isinstance(t, str) and t for t in tokens):
        return tokens, text if isinstance(text, str) else None
    if isinstance(text, str) and text.strip():
        return simple_tokenize(text), text
    return None


def _json_input(line: str, origin: str) -> Example:
    """One JSONL prediction input: ``{"tokens": [...]}`` or ``{"text": "..."}``, plus ``tokens_pair`` or
    ``text_pair`` for a sentence pair."""
    import json

    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DataError.at(origin, f"invalid JSON: {error.msg}") from None
    first = _json_sentence(record, "tokens", "text", origin)
    if first is None:
        raise DataError.at(origin, "needs a non-empty 'tokens' list or 'text' string")
    example = Example(tokens=first[0], origin=origin, text=first[1])
    if isinstance(record, dict) and (record.get("tokens_pair") is not None or record.get("text_pair") is not None):
        second = _json_sentence(record, "tokens_pair", "text_pair", origin)
        if second is None:
            raise DataError.at(origin, "a sentence pair needs a non-empty 'tokens_pair' list or 'text_pair' string")
        example.tokens_pair, example.text_pair = second
    return example


def read_inputs(path: str | Path, fmt: str) -> list[Example]:
    """Inputs for prediction: ``text`` (a sentence per line), ``conll`` (first column) or ``jsonl``."""
    from polytask.data.readers import read_examples

    path = Path(path)
    if not path.is_file():
        raise PolytaskError(f"input file not found: {path}")
    if fmt == "conll":
        return read_examples("conll", path, {})
    examples = []
    for number, line in enumerate(path.read_bytes().split(b"\n"), start=1):
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DataError("not valid UTF-8", file=str(path), line=number) from None
        if text and fmt == "jsonl":
            examples.append(_json_input(text, f"{path}:{number}"))
        elif text:
            examples.append(Example(tokens=simple_tokenize(text), origin=f"{path}:{number}", text=text))
    if not examples:
        raise DataError("no sentences to predict", file=str(path))
    return examples
