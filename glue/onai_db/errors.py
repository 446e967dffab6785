"""Errors raised by the glue, each with a message a person can act on."""

from __future__ import annotations


class OnaiDbError(Exception):
    """Base class: the CLI prints ``str(error)`` as one line and exits non-zero."""

    exit_code = 1


class ConfigError(OnaiDbError):
    """A setting is missing or malformed."""

    exit_code = 2


class MissingDependencyError(OnaiDbError):
    """A program the command needs is not installed (the message says what to install)."""

    exit_code = 3


class StackError(OnaiDbError):
    """The local PostgreSQL stack could not be started, stopped or inspected."""


class MigrationError(OnaiDbError):
    """A migration failed to apply; the database keeps its previous state."""

    def __init__(self, file: str | None, detail: str) -> None:
        self.file = file
        self.detail = detail
        where = f"migration {file} failed" if file else "supabase db push failed"
        super().__init__(f"{where}: {detail}")


class DatabaseUnreachableError(OnaiDbError):
    """A database URL could not be connected to."""


class ConsolidationError(OnaiDbError):
    """Landing -> Traffic consolidation cannot run (wrong schema, missing migrations, busy)."""
