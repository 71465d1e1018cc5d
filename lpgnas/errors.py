"""Errors that the command line turns into a one-line message and exit code 2.

Every error a user can cause (a bad file, a bad field, a bad flag value) is raised as a subclass of
:class:`LpgnasError` with a message that names the file or field and what is wrong.
"""

from __future__ import annotations

__all__ = ["LpgnasError", "DataError", "ConfigError"]


class LpgnasError(Exception):
    """Base class of the errors caused by user input (exit code 2 on the command line)."""


class DataError(LpgnasError, ValueError):
    """A dataset file is missing, truncated or malformed. The message names the file."""

    def __init__(self, path: object, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class ConfigError(LpgnasError, ValueError):
    """A configuration value (CLI flag, JSON or YAML field) is invalid. The message names the field."""

    def __init__(self, field: str, problem: str, *, source: object | None = None):
        self.field = field
        self.problem = problem
        self.source = None if source is None else str(source)
        where = f"{self.source}: " if self.source else ""
        super().__init__(f"{where}{field}: {problem}")
