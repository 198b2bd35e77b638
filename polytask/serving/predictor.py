"""Predicting every task of a trained model for raw inputs, from one encoder pass per batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError, PolytaskError
from polytask.serving.inputs import RawInput, as_examples, predict_by_form


class Predictor:
    """Wraps a trained model; ``predict`` returns one JSON-able record per input, every task from one encoder pass."""

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

    def predict(self, inputs: RawInput | Sequence[RawInput]) -> dict[str, Any] | list[dict[str, Any]]:
        """Tokens, and per task: labels (+ entity spans for BIO tasks) or class + probabilities.

        ``inputs``: a text or a sentence pair ``(text, text_pair)`` (answered by one record), or a
        list of texts, token lists, pairs or ``Example``s (a list of records, in order); see
        ``serving.inputs.as_examples``. A pair is answered by the sentence-pair tasks, a single
        sentence by the others; one encoder pass per batch of each form.
        """
        examples, single = as_examples(inputs)
        records = predict_by_form(self._predict, self.task_names, self.pair_tasks, examples)
        return records[0] if single else records

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
        hint = "" if line.lstrip().startswith("{") else "; for one sentence per line pass --format text"
        raise DataError.at(origin, f"invalid JSON: {error.msg}{hint}") from None
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


STDIN = "<stdin>"
LONGEST_UNBROKEN = 250
"""Lines without a blank one beyond which a ``--format conll`` file with none is taken for a mistake."""


def _is_json_object(line: str) -> bool:
    import json

    if not line.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def check_input_format(lines: Sequence[str], name: str, fmt: str) -> None:
    """A DataError when the input plainly is not ``fmt``: JSON lines read as text or CoNLL, sentences read as CoNLL,
    a CoNLL column file read as text. Each names the file (and line) and the ``--format`` to pass."""
    filled = [(number, line.split()) for number, line in enumerate(lines, start=1) if line.strip()]
    if not filled:
        return
    first, cells = filled[0]
    if fmt in ("text", "conll") and _is_json_object(lines[first - 1]):
        raise DataError(f"a JSON object, but --format is {fmt}; for JSON lines pass --format jsonl", file=name,
                        line=first)
    blank = any(not line.strip() for line in lines[first - 1 : filled[-1][0]])
    if fmt == "conll":
        rows = [(number, row) for number, row in filled if row[0] != "-DOCSTART-"]
        width = len(rows[0][1]) if rows else 0
        odd = next(((number, row) for number, row in rows if len(row) != width), None)
        if odd is not None:
            raise DataError(f"{len(odd[1])} columns here but {width} on line {rows[0][0]}: not a CoNLL column file "
                            "(one token per line, blank lines between sentences); for one sentence per line pass "
                            "--format text", file=name, line=odd[0])
        if not blank and len(rows) > LONGEST_UNBROKEN:
            raise DataError(f"{len(rows)} lines and no blank line, so --format conll reads one {len(rows)}-token "
                            "sentence; separate sentences by blank lines, or for one sentence per line pass "
                            "--format text", file=name)
    elif fmt == "text" and (cells[0] == "-DOCSTART-" or (blank and len(filled) >= 4 and len(cells) >= 2
                                                         and all(len(row) == len(cells) for _, row in filled))):
        raise DataError(f"looks like a CoNLL column file ({len(cells)} columns on every line, blank lines between "
                        "sentences), but --format is text (one sentence per line); pass --format conll", file=name)


def read_inputs(path: str | Path, fmt: str) -> list[Example]:
    """Inputs for prediction: ``text`` (a sentence per line), ``conll`` (first column) or ``jsonl``; ``-``: stdin.

    The input is checked against ``fmt`` first (``check_input_format``), so a JSONL file read as
    text, or a text file read as one long CoNLL sentence, is an error naming what to pass.
    """
    if str(path) == "-":
        return _read_stdin(fmt)
    from polytask.errors import not_a_file

    path = Path(path)
    problem = not_a_file(path, "input file")
    if problem:
        raise PolytaskError(problem)
    raw_lines = path.read_bytes().split(b"\n")
    check_input_format([line.decode("utf-8", errors="replace") for line in raw_lines], str(path), fmt)
    if fmt == "conll":
        from polytask.data.readers import read_examples

        return read_examples("conll", path, {})
    examples = []
    for number, line in enumerate(raw_lines, start=1):
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


def _read_stdin(fmt: str) -> list[Example]:
    """``read_inputs`` on standard input (spooled to a temporary file); errors and origins name ``<stdin>``."""
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="polytask-stdin-") as folder:
        spooled = Path(folder) / "stdin"
        spooled.write_bytes(sys.stdin.buffer.read())
        try:
            examples = read_inputs(spooled, fmt)
        except DataError as error:
            if error.file == str(spooled):
                raise DataError(error.detail, file=STDIN, line=error.line) from None
            raise
    for example in examples:
        example.origin = example.origin.replace(str(spooled), STDIN, 1)
    return examples
