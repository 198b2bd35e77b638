"""One-sentence-per-line files whose label is given per file (Pang & Lee polarity, subjectivity).

The corpora ship one file per class, already tokenised and lower-cased.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from polytask.data.example import Example
from polytask.data.readers._text import iter_lines, no_examples, origin


def read_lines(path: Path, fields: Mapping[str, str | int], *, encoding: str = "utf-8") -> list[Example]:
    """Read one example per non-blank line; ``fields`` maps each task to the label of every line.

    Tokens are the whitespace split of the (already tokenised) line and ``text`` the stripped line.
    """
    examples = [
        Example(tokens=line.split(), labels=dict(fields), origin=origin(path, number), text=line.strip())
        for number, line in iter_lines(path, encoding)
        if line.strip()
    ]
    if not examples:
        raise no_examples(path)
    return examples


def read_labelled_lines(
    files: Mapping[str, str | Path], task: str, *, encoding: str = "utf-8"
) -> list[Example]:
    """Read one file per label (``{"positive": ".../rt-polarity.pos", ...}``) for one task.

    Examples come file by file in the order given, then line by line, so the result is deterministic.
    """
    examples: list[Example] = []
    for label, path in files.items():
        examples.extend(read_lines(Path(path), {task: label}, encoding=encoding))
    return examples
