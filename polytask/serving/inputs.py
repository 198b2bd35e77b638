"""Raw prediction inputs as examples, and which tasks answer each: one sentence, or a sentence pair.

Why: ``Predictor.predict``, ``polytask predict`` and ``POST /predict`` take the same inputs (raw
text, pre-split tokens, or a pair of either) and must route them alike. A sentence-pair task
answers pair inputs; every other task answers single sentences; a record holds the tasks that
answer its input. Torch-free: the ONNX runtime shares it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError, InputError

RawInput = Example | str | list[str] | tuple[Any, Any]
"""An ``Example``; raw text; a list of tokens; or a sentence pair, a tuple ``(first, second)`` of texts or token lists."""


def _sentence(value: Any, origin: str, what: str, error: type[DataError] = DataError) -> tuple[list[str], str | None]:
    """Tokens and text of one sentence given as text or as a token list."""
    if isinstance(value, str):
        tokens = simple_tokenize(value)
        if not tokens:
            raise error.at(origin, f"the {what} is empty")
        return tokens, value
    if isinstance(value, list) and value and all(isinstance(t, str) and t for t in value):
        return list(value), None
    raise error.at(origin, f"the {what} must be a non-empty string or a non-empty list of non-empty strings, "
                               f"got {value!r}")


def as_example(item: RawInput, origin: str, error: type[DataError] = DataError) -> Example:
    """``item`` as an Example (an Example is returned as it is); a malformed input is a DataError naming ``origin``.

    A tuple is always a sentence pair: ``("A man sleeps.", "Nobody sleeps.")``; tokens are a list.
    """
    if isinstance(item, Example):
        return item
    if isinstance(item, tuple):
        if len(item) != 2:
            raise error.at(origin, f"a sentence pair is a tuple (first, second), got a tuple of {len(item)}")
        tokens, text = _sentence(item[0], origin, "first sentence", error)
        tokens_pair, text_pair = _sentence(item[1], origin, "second sentence", error)
        return Example(tokens=tokens, origin=origin, text=text, tokens_pair=tokens_pair, text_pair=text_pair)
    tokens, text = _sentence(item, origin, "input", error)
    return Example(tokens=tokens, origin=origin, text=text)


def as_examples(inputs: Any) -> tuple[list[Example], bool]:
    """The examples of Python-API ``inputs`` and whether it was a single input (answered by one record, not a list).

    A single input is a string, a sentence-pair tuple ``(first, second)`` or an ``Example``;
    anything else must be a list (or another non-string sequence) of inputs: texts, token lists
    (``[["New", "York"]]`` is one pre-split sentence), pairs or examples. A malformed input is an
    ``InputError`` naming it (``input 3: ...``).
    """
    if isinstance(inputs, (str, Example, tuple)):
        return [as_example(inputs, "input 0", InputError)], True
    if isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, Sequence):
        raise InputError(f"expected a text, a list of texts or token lists, or a (text, text_pair) tuple; got "
                         f"{type(inputs).__name__}")
    return [as_example(item, f"input {i}", InputError) for i, item in enumerate(inputs)], False


def tasks_by_form(task_names: Sequence[str], pair_tasks: Collection[str],
                  examples: Sequence[Example]) -> dict[bool, list[str]]:
    """The tasks answering pair inputs (``True``) and single sentences (``False``).

    An input no task answers is a DataError naming it: a pair for a model without pair tasks, or one
    sentence for a model whose every task reads pairs.
    """
    forms = {True: [t for t in task_names if t in pair_tasks], False: [t for t in task_names if t not in pair_tasks]}
    for example in examples:
        if not forms[example.is_pair]:
            if example.is_pair:
                raise DataError.at(example.origin, f"a sentence pair, but no task of this model reads pairs "
                                                   f"(its tasks: {', '.join(task_names)})")
            raise DataError.at(example.origin, f"one sentence, but every task of this model reads sentence pairs "
                                               f"({', '.join(task_names)}): give the second sentence too")
    return forms


def predict_by_form(predict: Any, task_names: Sequence[str], pair_tasks: Collection[str],
                    examples: Sequence[Example]) -> list[dict[str, Any]]:
    """Records in input order, from ``predict(tasks, examples)`` run once per input form present."""
    forms = tasks_by_form(task_names, pair_tasks, examples)
    records: list[dict[str, Any] | None] = [None] * len(examples)
    for is_pair, tasks in forms.items():
        indices = [i for i, e in enumerate(examples) if e.is_pair == is_pair]
        if indices:
            for i, record in zip(indices, predict(tasks, [examples[i] for i in indices])):
                records[i] = record
    return records  # type: ignore[return-value]
