"""User-facing errors: each renders as one line naming the file, line or config field."""

from __future__ import annotations


class PolytaskError(Exception):
    """A mistake in the user's input; the CLI prints it on one line and exits with code 2."""


class ConfigError(PolytaskError):
    """An invalid configuration value, named by its dotted field path and its file."""

    def __init__(self, message: str, *, field: str | None = None, file: str | None = None):
        where = ": ".join(p for p in (file, field) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.field, self.file = field, file


class DataError(PolytaskError):
    """A malformed input file, named by path and 1-based line number."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        where = f"{file}:{line}" if file and line else (file or "")
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.line = file, line

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
