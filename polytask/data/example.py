"""The raw example every reader produces and every task consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Example:
    """One input (a tokenised sentence, or a sentence pair) with the labels of the tasks it is labelled for.

    ``labels`` maps a task name to its label: a list of tags (one per token) for token
    tasks, a class name for sequence classification, a float for regression and a list of
    class names for multi-label tasks. A task absent from ``labels`` is unlabelled here
    (partial labels are normal). ``origin`` is ``"path:line"`` of the first line, for errors.
    A sentence pair (NLI, paraphrase, STS) has its second sentence in ``tokens_pair`` (and
    ``text_pair``); ``tokens_pair`` is None for a single sentence.
    """

    tokens: list[str]
    labels: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    text: str | None = None
    tokens_pair: list[str] | None = None
    text_pair: str | None = None

    @property
    def is_pair(self) -> bool:
        return self.tokens_pair is not None
