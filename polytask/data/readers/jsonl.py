"""JSON Lines: one JSON object per line, with the input text (or tokens) and one key per task.

The most flexible format: labels keep their JSON type (string, number, integer id or list) for the task
type to parse.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from polytask.data.example import Example
from polytask.data.readers._text import iter_lines, no_examples, origin
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError

TOKENS_KEY = "tokens"
"""The key read as the example's tokens when ``tokens_field`` is not set and an object has it."""


def read_jsonl(
    path: Path,
    fields: Mapping[str, str | int],
    *,
    text_field: str | None = "text",
    tokens_field: str | None = None,
    text_pair_field: str | None = None,
    tokens_pair_field: str | None = None,
    encoding: str = "utf-8",
) -> list[Example]:
    """Read one example per non-blank line; ``fields`` maps each task to its key.

    Tokens come from ``tokens_field`` (a list of strings) if given, else from the object's ``tokens``
    list when it has one (``TOKENS_KEY``), else ``simple_tokenize`` of ``text_field``;
    ``text_pair_field`` / ``tokens_pair_field`` read a second sentence (sentence-pair tasks). A
    missing key, ``null`` or ``""`` leaves the example unlabelled for that task.
    """
    file = str(path)
    for task, key in fields.items():
        if not isinstance(key, str) or not key:
            raise DataError(f"fields[{task!r}] must be a JSON key, got {key!r}", file=file)
    if text_field is None and tokens_field is None:
        raise DataError("set text_field or tokens_field so the lines have an input", file=file)

    examples: list[Example] = []
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            continue
        try:
            record: Any = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(f"invalid JSON: {error.msg} (column {error.colno})", file=file, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"expected a JSON object, got {type(record).__name__}", file=file, line=number)

        tokens_key = tokens_field if tokens_field is not None else (TOKENS_KEY if TOKENS_KEY in record else None)
        tokens, text = _segment(record, text_field, tokens_key, ("text_field", "tokens_field"), file, number)
        tokens_pair, text_pair = (None, None)
        if text_pair_field is not None or tokens_pair_field is not None:
            tokens_pair, text_pair = _segment(record, text_pair_field, tokens_pair_field,
                                              ("text_pair_field", "tokens_pair_field"), file, number)
        labels = {
            task: record[key] for task, key in fields.items() if record.get(key) is not None and record[key] != ""
        }
        examples.append(Example(tokens=tokens, labels=labels, origin=origin(path, number), text=text,
                                tokens_pair=tokens_pair, text_pair=text_pair))
    if not examples:
        raise no_examples(path)
    return examples


def _segment(record: dict[str, Any], text_field: str | None, tokens_field: str | None, options: tuple[str, str],
             file: str, number: int) -> tuple[list[str], str | None]:
    """One sentence of a record: its tokens (``tokens_field``, else the tokenised ``text_field``) and its text."""
    text_option, tokens_option = options
    text = record.get(text_field) if text_field is not None else None
    if text is not None and not isinstance(text, str):
        raise DataError(f"field {text_field!r} must be a string, got {text!r}", file=file, line=number)
    if tokens_field is not None:
        if tokens_field not in record:
            raise DataError(f"missing field {tokens_field!r} ({tokens_option})", file=file, line=number)
        tokens = record[tokens_field]
        if not isinstance(tokens, list) or not all(isinstance(t, str) and t for t in tokens):
            raise DataError(f"field {tokens_field!r} must be a list of non-empty strings, got {tokens!r}",
                            file=file, line=number)
        if not tokens:
            raise DataError(f"empty token list in field {tokens_field!r} ({tokens_option})", file=file, line=number)
        return list(tokens), text
    if text_field not in record:
        raise DataError(f"missing field {text_field!r} ({text_option})", file=file, line=number)
    if not text or not text.strip():
        raise DataError(f"empty text in field {text_field!r} ({text_option})", file=file, line=number)
    tokens = simple_tokenize(text)
    if not tokens:
        raise DataError(f"no tokens in the text of field {text_field!r} ({text_option})", file=file, line=number)
    return tokens, text


def write_jsonl(
    examples: Iterable[Example],
    path: str | Path,
    fields: Mapping[str, str] | None = None,
    *,
    text_field: str | None = "text",
    tokens_field: str | None = "tokens",
    text_pair_field: str | None = "text_pair",
    tokens_pair_field: str | None = "tokens_pair",
    encoding: str = "utf-8",
) -> None:
    """Write one JSON object per example that ``read_jsonl`` reads back identically.

    Used by ``predict``; ``fields`` maps task to key (default: every label under its task name),
    and a task an example lacks is left out of its object.
    """
    with Path(path).open("w", encoding=encoding) as handle:
        for example in examples:
            record: dict[str, Any] = {}
            if text_field is not None and example.text is not None:
                record[text_field] = example.text
            if tokens_field is not None:
                record[tokens_field] = list(example.tokens)
            if text_pair_field is not None and example.text_pair is not None:
                record[text_pair_field] = example.text_pair
            if tokens_pair_field is not None and example.tokens_pair is not None:
                record[tokens_pair_field] = list(example.tokens_pair)
            keys = fields if fields is not None else {task: task for task in example.labels}
            for task, key in keys.items():
                if key in record:
                    raise ValueError(f"label key {key!r} of task {task!r} clashes with the text/tokens key")
                if example.labels.get(task) is not None:
                    record[key] = example.labels[task]
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
