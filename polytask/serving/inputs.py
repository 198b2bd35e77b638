"""Raw Python prediction inputs (a text, texts, token lists) as the ``Example`` records every predictor reads.

Why: ``model.predict("some text")`` should take what a ``pipeline`` or ``nlp(text)`` takes and
tokenise it exactly as ``polytask predict --format text`` and ``POST /predict`` do. Torch-free:
the ONNX predictor uses it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polytask.data.example import Example
from polytask.data.tokenize import simple_tokenize
from polytask.errors import InputError

PredictInput = str | tuple[str, str] | Sequence[str] | Example
"""One input: a text, a ``(text, text_pair)`` sentence pair, a token list (inside a list) or an ``Example``."""


def as_examples(inputs: Any) -> tuple[list[Example], bool]:
    """The examples of ``inputs`` and whether it was a single input (answered by one record, not a list).

    A single input is a string, a ``(text, text_pair)`` tuple of two strings or an ``Example``.
    Anything else must be a list (or another non-string sequence) of inputs: strings, token
    lists (``list[str]``, so ``[["New", "York"]]`` is one pre-split sentence), pairs or examples.
    """
    if isinstance(inputs, (str, Example)) or _is_pair(inputs):
        return [as_example(inputs, 0)], True
    if isinstance(inputs, (bytes, bytearray)) or not isinstance(inputs, Sequence):
        raise InputError(f"expected a text, a list of texts or token lists, or a (text, text_pair) tuple; got "
                         f"{type(inputs).__name__}")
    return [as_example(item, i) for i, item in enumerate(inputs)], False


def as_example(item: Any, index: int) -> Example:
    """Input ``index`` as an Example: a text is tokenised like ``--format text``; a token list is kept as given."""
    where = f"input {index}"
    if isinstance(item, Example):
        return item
    if isinstance(item, str):
        if not item.strip():
            raise InputError(f"{where} is an empty text")
        return Example(tokens=simple_tokenize(item), origin=where, text=item)
    if _is_pair(item):
        return pair_example(item[0], item[1], where)
    if isinstance(item, Sequence) and not isinstance(item, (bytes, bytearray)):
        if not item:
            raise InputError(f"{where} is an empty token list")
        bad = [t for t in item if not isinstance(t, str) or not t.strip()]
        if bad:
            raise InputError(f"{where}: a token list holds non-empty strings, not {bad[0]!r}")
        return Example(tokens=list(item), origin=where)
    raise InputError(f"{where}: expected a text, a token list or a (text, text_pair) tuple; got "
                     f"{type(item).__name__}")


def pair_example(text: str, text_pair: str, where: str) -> Example:
    """A ``(text, text_pair)`` sentence pair as one Example.

    The seam for sentence-pair tasks: until a model can read pairs, a pair is refused here,
    once for every predictor (torch, ONNX) and the Python API.
    """
    raise InputError(f"{where} is a sentence pair (text, text_pair), but this polytask has no sentence-pair tasks: "
                     "pass one text, or join the two (for several texts pass a list, not a tuple)")


def _is_pair(item: Any) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and all(isinstance(part, str) for part in item)
