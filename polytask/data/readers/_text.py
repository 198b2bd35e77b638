"""Line-by-line text decoding shared by the readers.

Decoding each line separately lets an undecodable byte be reported as ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from polytask.data.example import Example
from polytask.errors import DataError


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` with 1-based numbers and the line ending removed.

    A missing file, an unknown encoding or bytes the encoding cannot decode raise a
    DataError naming the path (and the line), never a bare OSError/UnicodeDecodeError.
    """
    file = str(path)
    try:
        "".encode(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} (reader option 'encoding')", file=file) from None
    if not path.exists():
        raise DataError("file not found", file=file)
    if path.is_dir():
        raise DataError("is a directory, not a file", file=file)
    if not path.is_file():
        raise DataError("not a regular file", file=file)
    try:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    line = raw.decode(encoding)
                except UnicodeDecodeError as error:
                    raise DataError(
                        f"cannot decode byte 0x{raw[error.start]:02x} at column {error.start + 1} "
                        f"as {encoding}; set the reader option 'encoding' (for example 'latin-1')",
                        file=file,
                        line=number,
                    ) from None
                if number == 1 and line.startswith("\ufeff"):
                    line = line[1:]
                yield number, line.rstrip("\r\n")
    except OSError as error:
        raise DataError(f"cannot read file: {error.strerror or error}", file=file) from None


def origin(path: Path, line: int) -> str:
    """The ``"path:line"`` string stored in ``Example.origin``."""
    return f"{path}:{line}"


def no_examples(path: Path) -> DataError:
    """The error for a file that yields no example at all."""
    return DataError("no examples (the file is empty or holds only blank/comment lines)", file=str(path))


class SentenceCollector:
    """Gathers one-token-per-line rows into sentences (CoNLL, CoNLL-U): a sentence ends at ``end()``."""

    def __init__(self, path: Path, tasks: Iterable[str]):
        self.path, self.tasks = path, list(tasks)
        self.examples: list[Example] = []
        self._start()

    def _start(self) -> None:
        self.tokens: list[str] = []
        self.tags: dict[str, list[str]] = {task: [] for task in self.tasks}
        self.first_line = 0

    def add(self, line: int, token: str, tags: Mapping[str, str]) -> None:
        if not self.tokens:
            self.first_line = line
        self.tokens.append(token)
        for task in self.tasks:
            self.tags[task].append(tags[task])

    def end(self) -> None:
        if self.tokens:
            self.examples.append(Example(tokens=self.tokens, labels=self.tags, origin=origin(self.path, self.first_line)))
        self._start()

    def finish(self) -> list[Example]:
        """End the last sentence; a file without any sentence is a DataError."""
        self.end()
        if not self.examples:
            raise no_examples(self.path)
        return self.examples
