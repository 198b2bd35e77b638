"""Readers turning corpus files into ``Example`` lists, keyed by the format names used in configs.

One module per format; adding a format means adding one module and one ``READERS`` line. Format ``hf``
(``readers/hf.py``) reads a whole ``datasets`` dataset with its splits, so the corpus calls it directly.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from polytask.data.example import Example
from polytask.data.readers.conll import read_conll, write_conll
from polytask.data.readers.conllu import read_conllu
from polytask.data.readers.jsonl import read_jsonl, write_jsonl
from polytask.data.readers.lines import read_labelled_lines, read_lines
from polytask.data.readers.table import read_csv, read_table, read_tsv, write_table
from polytask.errors import DataError


class ReaderFn(Protocol):
    """A reader: file path and ``{task name: where its label lives}`` to examples, raw labels kept."""

    def __call__(self, path: Path, fields: Mapping[str, str | int], **options: Any) -> list[Example]: ...


READERS: dict[str, ReaderFn] = {
    "conll": read_conll,
    "conllu": read_conllu,
    "lines": read_lines,
    "tsv": read_tsv,
    "csv": read_csv,
    "jsonl": read_jsonl,
}

def reader_options(fmt: str) -> tuple[str, ...]:
    """The option names a format accepts (for config validation and error messages)."""
    parameters = inspect.signature(READERS[fmt]).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def read_examples(fmt: str, path: str | Path, fields: Mapping[str, str | int], **options: Any) -> list[Example]:
    """Read ``path`` in format ``fmt``; every example carries the labels of all tasks in ``fields``.

    Several tasks reading different columns of one file share its examples this way.
    """
    if fmt not in READERS:
        raise DataError(f"unknown format {fmt!r}; expected one of: {', '.join(READERS)}", file=str(path))
    accepted = reader_options(fmt)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(
            f"unknown option(s) {', '.join(map(repr, unknown))} for format {fmt!r}; "
            f"accepted: {', '.join(accepted) or 'none'}",
            file=str(path),
        )
    return READERS[fmt](Path(path), fields, **options)


__all__ = [
    "READERS",
    "ReaderFn",
    "read_conll",
    "read_conllu",
    "read_csv",
    "read_examples",
    "read_jsonl",
    "read_labelled_lines",
    "read_lines",
    "read_table",
    "read_tsv",
    "reader_options",
    "write_conll",
    "write_jsonl",
    "write_table",
]
