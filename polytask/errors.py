"""User-facing errors: each renders as one line naming the file, line or config field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple


class PolytaskError(Exception):
    """A mistake in the user's input; the CLI prints it on one line and exits with code 2."""


class ConfigProblem(NamedTuple):
    """One invalid configuration value: what is wrong, the dotted field and where the value came from."""

    message: str
    field: str | None = None
    file: str | None = None
    """the config file, or the ``--set KEY=VALUE`` override that gave the value"""


class ConfigError(PolytaskError):
    """Invalid configuration values, each named by its dotted field path and its origin (file or ``--set``).

    Several problems found together are all listed, on one line: ``origin: field: message; field: message``.
    """

    def __init__(self, message: str, *, field: str | None = None, file: str | None = None):
        self.problems: list[ConfigProblem] = [ConfigProblem(message, field, file)]
        super().__init__(_render(self.problems))
        self.field, self.file = field, file

    @classmethod
    def of(cls, problems: Sequence[ConfigProblem]) -> ConfigError:
        """One error listing every problem (``problems`` is not empty)."""
        first = problems[0]
        error = cls(first.message, field=first.field, file=first.file)
        error.problems = list(problems)
        error.args = (_render(error.problems),)
        return error


def _render(problems: Sequence[ConfigProblem]) -> str:
    """``origin: field: message``, consecutive problems of one origin sharing its prefix, joined by ``; ``."""
    parts, previous = [], object()
    for problem in problems:
        where = [problem.file] if problem.file and problem.file != previous else []
        where += [problem.field] if problem.field else []
        parts.append(": ".join([*where, problem.message]))
        previous = problem.file
    return "; ".join(parts)


class DataError(PolytaskError):
    """A malformed input file, named by path and 1-based line number."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        where = f"{file}:{line}" if file and line else (file or "")
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line, self.detail = file, line, message

    @classmethod
    def at(cls, origin: str, message: str) -> DataError:
        """A DataError located at an example's ``origin`` (``"path:line"``)."""
        path, _, line = origin.rpartition(":")
        if path and line.isdigit():
            return cls(message, file=path, line=int(line))
        return cls(message, file=origin or None)


class MissingDependencyError(PolytaskError):
    """An optional extra is needed for the requested feature."""

    def __init__(self, package: str, extra: str, feature: str):
        super().__init__(
            f"{feature} needs the optional package '{package}': pip install 'polytask[{extra}]'"
        )


def not_a_file(path: str | Path, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as a file (``"WHAT is a directory, not a file: PATH"``, ``"... not found"``), or None."""
    path = Path(path)
    if path.is_file():
        return None
    if path.is_dir():
        return f"{what} is a directory, not a file: {path}"
    return f"{what} not found: {path}"


class InputError(DataError):
    """A prediction input through the Python API that is not a text, a token list or a sentence pair."""
