"""CoNLL-U files (Universal Dependencies): ten tab-separated columns, ``#`` comments, blank line between sentences.

Tasks name the column they read (``upos``, ``xpos``, ``feats``, ``deprel``, ``lemma``, ...).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from polytask.data.example import Example
from polytask.data.readers._text import SentenceCollector, iter_lines
from polytask.errors import DataError

COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
LABEL_COLUMNS = ("upos", "xpos", "feats", "deprel", "lemma", "head", "deps", "misc")


def read_conllu(path: Path, fields: Mapping[str, str | int], *, encoding: str = "utf-8") -> list[Example]:
    """Read the syntactic words of each sentence, with the named columns as token labels.

    Multi-word token ranges (``1-2``) and empty nodes (``8.1``) are skipped, so tokens are
    the syntactic words; ``origin`` is the line of the sentence's first word.
    """
    columns: dict[str, int] = {}
    for task, name in fields.items():
        if not isinstance(name, str) or name.lower() not in LABEL_COLUMNS:
            raise DataError(
                f"fields[{task!r}] must name a CoNLL-U column ({', '.join(LABEL_COLUMNS)}), got {name!r}",
                file=str(path),
            )
        columns[task] = COLUMNS.index(name.lower())

    sentences = SentenceCollector(path, columns)
    for number, line in iter_lines(path, encoding):
        if not line.strip():
            sentences.end()
            continue
        if line.startswith("#"):
            continue
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            hint = " (columns must be separated by tabs)" if len(cells) == 1 and " " in line else ""
            raise DataError(
                f"expected 10 tab-separated columns (ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC), "
                f"found {len(cells)}{hint}",
                file=str(path),
                line=number,
            )
        word_id = cells[0]
        if "-" in word_id or "." in word_id:
            continue
        if not word_id.isdigit():
            raise DataError(
                f"column ID must be an integer, a range or a decimal, got {word_id!r}", file=str(path), line=number
            )
        sentences.add(number, cells[1], {task: cells[column] for task, column in columns.items()})
    return sentences.finish()
