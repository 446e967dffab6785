"""Opening a database connection with a one-line error a person can act on."""

from __future__ import annotations

import psycopg

from .errors import DatabaseUnreachableError


def describe_url(url: str) -> str:
    """host:port/db of a URL without credentials or options (never print a password)."""
    tail = url.split("@", 1)[-1]
    return tail.split("?", 1)[0]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its class name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(url: str, what: str = "", *, autocommit: bool = False) -> psycopg.Connection:
    """A connection to ``url``; unreachable, refused, unknown database or a malformed URL
    raise :class:`DatabaseUnreachableError` naming the database (``what``: "source", ...)."""
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        label = f"the {what} database" if what else "the database"
        raise DatabaseUnreachableError(
            f"cannot connect to {label} {describe_url(url)}: {first_line(exc)}"
        ) from None


# the database lacks an object the command needs: most likely the migrations are missing
_MISSING_OBJECT = {"42P01", "42883", "3F000", "42704"}


def describe_error(exc: psycopg.Error) -> str:
    """One line for a database error that reached the command line: message, SQLSTATE, hint."""
    code = exc.sqlstate
    text = first_line(exc)
    if code is None:
        return f"database error: {text}"
    hint = exc.diag.message_hint
    if code in _MISSING_OBJECT:
        hint = (
            "is this a database with the onai-db migrations? `onai-db local status` (local) or "
            "`npx supabase migration list --db-url <url>` shows what is applied"
        )
    return f"{text} (SQLSTATE {code})" + (f"; hint: {hint}" if hint else "")
