"""Tab- and comma-separated tables with a header row: one example per row, one column per field.

Read with the ``csv`` module: csv honours quoting, tsv uses no quoting (quotes are text, as in GLUE).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from polytask.data.example import Example
from polytask.data.readers._text import iter_lines, no_examples, origin
from polytask.data.tokenize import simple_tokenize
from polytask.errors import DataError

TableFormat = Literal["tsv", "csv"]


def _dialect(fmt: TableFormat) -> dict[str, object]:
    """csv module options for a format."""
    if fmt == "tsv":
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE, "quotechar": None}
    return {"delimiter": ",", "quoting": csv.QUOTE_MINIMAL}


def _rows(path: Path, fmt: TableFormat, encoding: str) -> Iterator[tuple[int, list[str]]]:
    """Non-blank rows with the 1-based line number where each starts (quoted csv cells may span lines)."""
    last_line = 0

    def numbered() -> Iterator[str]:
        nonlocal last_line
        for number, line in iter_lines(path, encoding):
            last_line = number
            yield line + "\n"

    reader = csv.reader(numbered(), strict=True, **_dialect(fmt))  # type: ignore[arg-type]
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise DataError(f"malformed {fmt} row: {error}", file=str(path), line=end + 1) from None
        start, end = end + 1, last_line
        if any(cell.strip() for cell in row):
            yield start, row


class _Segment:
    """Where one sentence of a row comes from: a ``tokens`` column (space-joined) or a ``text`` column (tokenised).

    The text column is optional when a tokens column is given (its text is then None if the column is absent).
    """

    def __init__(self, text_option: str, text_field: str | None, tokens_option: str, tokens_field: str | None,
                 index: Mapping[str, int]):
        self.text_option, self.tokens_option = text_option, tokens_option
        self.text_field, self.tokens_field = text_field, tokens_field
        self.use_text = text_field is not None and (tokens_field is None or text_field in index)
        self.used = self.use_text or tokens_field is not None
        self.text_column = index.get(text_field) if self.use_text and text_field is not None else None
        self.tokens_column = index.get(tokens_field) if tokens_field is not None else None

    def wanted(self) -> list[tuple[str, str]]:
        """(option, column) pairs the header must hold."""
        named = [(self.tokens_option, self.tokens_field)] if self.tokens_field is not None else []
        return named + ([(self.text_option, self.text_field)] if self.use_text and self.text_field is not None else [])

    def read(self, row: list[str], file: str, number: int) -> tuple[list[str], str | None]:
        """The sentence's tokens and text in ``row``; an empty cell is a DataError at ``file:number``."""
        text = row[self.text_column].strip() if self.text_column is not None else None
        if self.tokens_column is not None:
            tokens = row[self.tokens_column].split()
            if not tokens:
                raise DataError(f"empty tokens in column {self.tokens_field!r} ({self.tokens_option})",
                                file=file, line=number)
            return tokens, text
        if not text:
            raise DataError(f"empty text in column {self.text_field!r} ({self.text_option})", file=file, line=number)
        tokens = simple_tokenize(text)
        if not tokens:
            raise DataError(f"no tokens in the text of column {self.text_field!r} ({self.text_option})",
                            file=file, line=number)
        return tokens, text


def read_table(
    path: Path,
    fields: Mapping[str, str | int],
    *,
    fmt: TableFormat = "tsv",
    text_field: str | None = "text",
    tokens_field: str | None = None,
    text_pair_field: str | None = None,
    tokens_pair_field: str | None = None,
    encoding: str = "utf-8",
) -> list[Example]:
    """Read rows of a tsv/csv file with a header; ``fields`` maps each task to its column name.

    Tokens come from ``tokens_field`` (a space-joined string) if given, else ``simple_tokenize``
    of the ``text_field`` cell. ``text_pair_field`` / ``tokens_pair_field`` read a second sentence
    the same way (sentence-pair tasks). An empty label cell leaves the row unlabelled for that task.
    """
    file = str(path)
    for task, column in fields.items():
        if not isinstance(column, str) or not column:
            raise DataError(f"fields[{task!r}] must be a column name of the {fmt} header, got {column!r}", file=file)
    if text_field is None and tokens_field is None:
        raise DataError("set text_field or tokens_field so the rows have an input", file=file)
    rows = _rows(path, fmt, encoding)
    header_row = next(rows, None)
    if header_row is None:
        raise no_examples(path)
    header_line, header = header_row[0], [name.strip() for name in header_row[1]]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(f"duplicate column name(s) in the header: {', '.join(duplicates)}", file=file, line=header_line)
    index = {name: position for position, name in enumerate(header)}

    first = _Segment("text_field", text_field, "tokens_field", tokens_field, index)
    second = _Segment("text_pair_field", text_pair_field, "tokens_pair_field", tokens_pair_field, index)
    wanted = [(f"task {task!r}", column) for task, column in fields.items()] + first.wanted() + second.wanted()
    missing = [f"{what} column {column!r}" for what, column in wanted if column not in index]
    if missing:
        raise DataError(
            f"missing from the header row ({', '.join(header)}): {'; '.join(missing)}; "
            f"{fmt} files need a header row naming their columns",
            file=file,
            line=header_line,
        )
    label_columns = {task: index[str(column)] for task, column in fields.items()}

    examples: list[Example] = []
    for number, row in rows:
        if len(row) != len(header):
            short = header[len(row) :] if len(row) < len(header) else []
            detail = f"; missing column(s): {', '.join(short)}" if short else ""
            raise DataError(
                f"row has {len(row)} cell(s) but the header has {len(header)}{detail}", file=file, line=number
            )
        tokens, text = first.read(row, file, number)
        tokens_pair, text_pair = second.read(row, file, number) if second.used else (None, None)
        labels = {task: row[column].strip() for task, column in label_columns.items() if row[column].strip()}
        examples.append(Example(tokens=tokens, labels=labels, origin=origin(path, number), text=text,
                                tokens_pair=tokens_pair, text_pair=text_pair))
    if not examples:
        raise no_examples(path)
    return examples


def read_tsv(
    path: Path,
    fields: Mapping[str, str | int],
    *,
    text_field: str | None = "text",
    tokens_field: str | None = None,
    text_pair_field: str | None = None,
    tokens_pair_field: str | None = None,
    encoding: str = "utf-8",
) -> list[Example]:
    """Read a tab-separated table with a header row (no quoting: quotes are part of the text)."""
    return read_table(path, fields, fmt="tsv", text_field=text_field, tokens_field=tokens_field,
                      text_pair_field=text_pair_field, tokens_pair_field=tokens_pair_field, encoding=encoding)


def read_csv(
    path: Path,
    fields: Mapping[str, str | int],
    *,
    text_field: str | None = "text",
    tokens_field: str | None = None,
    text_pair_field: str | None = None,
    tokens_pair_field: str | None = None,
    encoding: str = "utf-8",
) -> list[Example]:
    """Read a comma-separated table with a header row (standard csv quoting)."""
    return read_table(path, fields, fmt="csv", text_field=text_field, tokens_field=tokens_field,
                      text_pair_field=text_pair_field, tokens_pair_field=tokens_pair_field, encoding=encoding)


def write_table(
    examples: Iterable[Example],
    path: str | Path,
    fields: Mapping[str, str],
    *,
    fmt: TableFormat = "tsv",
    text_field: str | None = "text",
    tokens_field: str | None = None,
    text_pair_field: str | None = None,
    tokens_pair_field: str | None = None,
    encoding: str = "utf-8",
) -> None:
    """Write examples as a tsv/csv table with a header that ``read_table`` reads back identically.

    Labels must be scalars (sequence-level tasks); a task an example lacks is an empty cell. The
    pair fields write each example's second sentence (sentence pairs).
    """
    inputs = (text_field, tokens_field, text_pair_field, tokens_pair_field)
    columns = [name for name in inputs if name is not None] + list(fields.values())
    with Path(path).open("w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n", **_dialect(fmt))  # type: ignore[arg-type]
        writer.writerow(columns)
        for example in examples:
            row = []
            if text_field is not None:
                row.append(example.text if example.text is not None else " ".join(example.tokens))
            if tokens_field is not None:
                row.append(" ".join(example.tokens))
            pair = example.tokens_pair or []
            if text_pair_field is not None:
                row.append(example.text_pair if example.text_pair is not None else " ".join(pair))
            if tokens_pair_field is not None:
                row.append(" ".join(pair))
            for task in fields:
                label = example.labels.get(task)
                if isinstance(label, list | dict):
                    raise ValueError(f"{example.origin or 'example'}: task {task!r} label {label!r} is not a scalar")
                row.append("" if label is None else str(label))
            if fmt == "tsv" and any(("\t" in cell or "\n" in cell) for cell in row):
                raise ValueError(f"{example.origin or 'example'}: a tsv cell cannot hold a tab or newline: {row!r}")
            writer.writerow(row)
