"""Errors raised by the glue, each with a message a person can act on."""

from __future__ import annotations


class OnaiDbError(Exception):
    """Base class: the CLI prints ``str(error)`` as one line and exits non-zero.

    ``kind`` is a stable name for what went wrong, for machines (the ``error_kind`` of a
    ``--json`` command's error document; README, "Errors and exit codes"): a subclass sets
    its default, a raise site may name a narrower one."""

    exit_code = 1
    kind = "error"

    def __init__(self, message: str = "", *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind


class ConfigError(OnaiDbError):
    """A setting is missing or malformed."""

    exit_code = 2
    kind = "config"


class MissingDependencyError(OnaiDbError):
    """A program the command needs is not installed (the message says what to install)."""

    exit_code = 3
    kind = "missing_program"


class StackError(OnaiDbError):
    """The local PostgreSQL stack could not be started, stopped or inspected."""

    kind = "local_stack"


class MigrationError(OnaiDbError):
    """A migration failed to apply; the database keeps its previous state."""

    kind = "migration"

    def __init__(self, file: str | None, detail: str) -> None:
        self.file = file
        self.detail = detail
        where = f"migration {file} failed" if file else "supabase db push failed"
        super().__init__(f"{where}: {detail}")


class DeadJobsError(OnaiDbError):
    """``worker --once``: a job went dead in the run (exit 1, so cron reports it)."""

    kind = "dead_jobs"


class DatabaseUnreachableError(OnaiDbError):
    """A database URL could not be connected to."""

    kind = "database_unreachable"


class ConsolidationError(OnaiDbError):
    """Landing -> Traffic consolidation cannot run (wrong schema, missing migrations, busy)."""

    kind = "consolidation"
