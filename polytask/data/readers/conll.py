"""CoNLL column files: one token per line, whitespace-separated columns, blank line between sentences.

The layout of CoNLL-2000 (``word POS CHUNK``) and CoNLL-2003 (``word TAG``, ``-DOCSTART-`` lines).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from polytask.data.example import Example
from polytask.data.readers._text import SentenceCollector, iter_lines
from polytask.errors import DataError

DOCSTART = "-DOCSTART-"


def _column_index(task: str, value: object, path: Path) -> int:
    """A task's label column as a 0-based int; configs may give it as an int or a digit string."""
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise DataError(
            f"fields[{task!r}] must be a 0-based column index (a non-negative integer), got {value!r}",
            file=str(path),
        )
    return int(value)


def read_conll(
    path: Path,
    fields: Mapping[str, str | int],
    *,
    token_column: int = 0,
    encoding: str = "utf-8",
    comment: str | None = None,
) -> list[Example]:
    """Read sentences of a CoNLL column file; ``fields`` maps task name to its 0-based column.

    Separators are tabs or runs of spaces, trailing whitespace is ignored and ``-DOCSTART-``
    lines are document markers, not sentences. Each label is the list of the column's tags.
    ``comment`` (e.g. ``"#"``): lines starting with it are skipped. Off by default, because a
    line starting with ``#`` is a real token in the WSJ data (``# $ ...``) and is read as one.
    """
    columns = {task: _column_index(task, value, path) for task, value in fields.items()}
    token_column = _column_index("token_column", token_column, path)
    needed = max([token_column, *columns.values()]) + 1

    sentences = SentenceCollector(path, columns)
    for number, line in iter_lines(path, encoding):
        if comment is not None and line.startswith(comment):
            continue
        cells = line.split()
        if not cells:
            sentences.end()
            continue
        if cells[0] == DOCSTART:
            sentences.end()
            continue
        if len(cells) < needed:
            missing = next(
                (f"column {c} for task {t!r}" for t, c in columns.items() if c >= len(cells)),
                f"column {token_column} for the tokens (token_column)",
            )
            raise DataError(
                f"found {len(cells)} column(s) but need at least {needed}: missing {missing} (0-based)",
                file=str(path),
                line=number,
            )
        sentences.add(number, cells[token_column], {task: cells[column] for task, column in columns.items()})
    return sentences.finish()


def write_conll(
    examples: Iterable[Example],
    path: str | Path,
    fields: Mapping[str, int],
    *,
    token_column: int = 0,
    separator: str = " ",
    encoding: str = "utf-8",
) -> None:
    """Write token-level labels as a CoNLL column file that ``read_conll`` reads back identically.

    Used by ``predict`` to emit tags; columns not named by ``fields`` are written as ``_``.
    """
    width = max([token_column, *fields.values()]) + 1
    if len({token_column, *fields.values()}) != len(fields) + 1:
        raise ValueError(f"columns must be distinct: token_column={token_column}, fields={dict(fields)}")
    lines: list[str] = []
    for example in examples:
        for task in fields:
            label = example.labels.get(task)
            if not isinstance(label, list) or len(label) != len(example.tokens):
                raise ValueError(
                    f"{example.origin or 'example'}: task {task!r} needs one tag per token "
                    f"({len(example.tokens)}), got {label!r}"
                )
        for position, token in enumerate(example.tokens):
            row = ["_"] * width
            row[token_column] = token
            for task, column in fields.items():
                row[column] = str(example.labels[task][position])
            if any(not cell or any(ch.isspace() for ch in cell) for cell in row):
                raise ValueError(f"{example.origin or 'example'}: empty cell or whitespace in {row!r}")
            lines.append(separator.join(row))
        lines.append("")
    Path(path).write_text("".join(line + "\n" for line in lines), encoding=encoding)
