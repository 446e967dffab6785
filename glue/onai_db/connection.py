"""Opening a database connection with a one-line error a person can act on."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

import psycopg
from psycopg.conninfo import conninfo_to_dict

from .errors import ConfigError, DatabaseUnreachableError, OnaiDbError


def _url_parts(url: str) -> tuple[str, str]:
    """(user:password, host:port/db?options) of a URL; ("", url) for a key=value string. A
    password may hold an unescaped '@': the host follows the last one."""
    if "://" not in url:
        return "", url
    userinfo, _, rest = url.split("://", 1)[1].rpartition("@")
    return userinfo, rest


_UNREADABLE = "(an unreadable connection string)"


def describe_url(url: str) -> str:
    """host:port/db of a connection string without credentials or options (never print a
    password), as libpq reads it: a URL's ``?host=``/``?port=``/``?dbname=`` count (found by
    review: a URL with its host in the query was described as "/postgres"); a URL libpq would
    misread (an '@' or '/' in its password) is described by its text after the last '@'."""
    userinfo, rest = _url_parts(url)
    parts = None if _misread_userinfo(userinfo) else _parsed(url)
    if parts is None:
        return rest.split("?", 1)[0] if "://" in url else _UNREADABLE
    host = parts.get("host") or parts.get("hostaddr") or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"{host}{port}/{parts.get('dbname') or parts.get('user') or ''}"


def _parsed(url: str) -> dict[str, Any] | None:
    """libpq's reading of a connection string, or None when it cannot read it."""
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        return None


def _misread_userinfo(userinfo: str) -> str | None:
    """The character of a URL's user:password that libpq ends it at, so that it would take the
    host (and port) from inside the password: an '@' or a '/' (libpq's URL parser stops at the
    first of either; found by review: "pa/ss" gave "failed to resolve host 'u'")."""
    return next((ch for ch in "@/" if ch in userinfo), None)


def scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    """The first column of the one row a query returns (``select count(*) ...``,
    ``select exists ...``); a query that returns no row is a bug (the CLI reports it as one)."""
    row = conn.execute(query, params).fetchone()
    if row is None:
        raise RuntimeError(f"no row from {query!r} (expected one)")
    return row[0]


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text, or its class name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# errors that mean the connection itself is gone (a restart, a failover, a terminated
# backend, a network cut), not that the server refused a statement
CONNECTION_LOST = (psycopg.OperationalError, psycopg.InterfaceError)

# a long-running client's connections notice a network cut within about 30 s (TCP keepalive,
# and unacknowledged data after 30 s): without them a thread waited in recv() for ever and
# SIGTERM could not stop the worker (found by review)
KEEPALIVE: dict[str, Any] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}


def connect(
    url: str,
    what: str = "",
    *,
    autocommit: bool = False,
    application_name: str | None = None,
    keepalive: bool = False,
) -> psycopg.Connection:
    """A connection to ``url``; unreachable, refused or an unknown database raise
    :class:`DatabaseUnreachableError` naming the database (``what``: "source", ...), a URL
    that cannot be read a :class:`ConfigError` (``conninfo``)."""
    label = _label(what)
    conninfo(url, what)
    try:
        # UTF-8 whatever PGCLIENTENCODING or the database's default says: text is sent and COPY
        # data streamed as UTF-8 (a LATIN1 session stored Cyrillic names garbled, with no error)
        extra: dict[str, Any] = {"application_name": application_name} if application_name else {}
        if keepalive:
            extra.update(KEEPALIVE)
        return psycopg.connect(
            url, autocommit=autocommit, connect_timeout=10, client_encoding="UTF8", **extra
        )
    except psycopg.Error as exc:
        raise DatabaseUnreachableError(
            f"cannot connect to {label} {describe_url(url)}: {masked(first_line(exc), url)}"
        ) from None


def _label(what: str) -> str:
    return f"the {what} database" if what else "the database"


def conninfo(url: str, what: str = "") -> dict[str, Any]:
    """The parameters of a connection string, or one clear error that never prints its
    password: an HTTP address (the project's API URL), an '@' or '/' in the URL's user or
    password and a string libpq cannot read are each a ConfigError (found by
    review: `worker --dry-run` read the URL before any connection, and printed libpq's
    complaint with the password in it)."""
    label = _label(what)
    if url.strip().lower().startswith(("http://", "https://")):
        # a project's API URL (SUPABASE_URL) given for its database: libpq's answer was
        # 'missing "=" after ...' (found by review)
        raise ConfigError(
            f"{label} URL {describe_url(url)} is an HTTP address (the project's API URL);"
            " give its Postgres connection string, postgresql://... (Supabase dashboard: Connect)"
        )
    # a string libpq cannot read is a setting to fix, not a database to reach: kind config,
    # exit 2, as the README says of bad settings (found by the operator review)
    bad = _misread_userinfo(_url_parts(url)[0])
    if bad:  # libpq would take the host from inside the password, and print it
        raise ConfigError(
            f"{label} URL {describe_url(url)} cannot be read: its user or password holds"
            f" {'an' if bad == '@' else 'a'} '{bad}';"
            f" write it as {quote(bad, safe='')} in the URL"
        )
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as exc:
        described = describe_url(url)
        where = "" if described == _UNREADABLE else f" {described}"
        raise ConfigError(
            f"{label} URL{where} cannot be read: {masked(first_line(exc), url)}"
            " (expected postgresql://user:password@host:port/dbname, or key=value pairs)"
        ) from None
    sslmode = params.get("sslmode")
    if sslmode is not None and sslmode not in SSLMODES:
        # libpq reads it only when it connects, and its complaint was "cannot connect"
        # (kind database_unreachable: found by the operator review)
        raise ConfigError(
            f"{label} URL {describe_url(url)} has sslmode={sslmode!r}; libpq knows {', '.join(SSLMODES)}"
        )
    return params


SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


def checked_url_option(value: str, option: str, what: str = "a Postgres URL") -> str:
    """A URL option given: refused when empty or blank (an unset ``$VAR`` in a script), never
    left to fall back on the settings or the local stack."""
    if not value.strip():
        raise ConfigError(f"{option} is empty: pass {what}, or leave the option out")
    return value


def _secrets(url: str) -> list[str]:
    """The password of a connection string as the driver may quote it: a URL's, as written and
    decoded, or a key=value string's, whole and word by word (libpq quotes the word after a
    space in it: found by review)."""
    if "://" in url:
        user, _, secret = _url_parts(url)[0].partition(":")
        return [s for s in {secret, unquote(secret)} if s and s != user]
    found = re.search(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'?|.*?)(?=\s+\w+\s*=|$)", url)
    if not found:
        return []
    whole = found.group(1).strip("'")
    return [s for s in {whole, *whole.split()} if s]


def masked(message: str, url: str) -> str:
    """``message`` without the password of ``url``, as a whole word only (a password "on"
    made "c***necti*** refused", and one equal to the user's name hid which role does not
    exist: found by review)."""
    for secret in sorted(_secrets(url), key=len, reverse=True):
        message = re.sub(rf"(?<![\w]){re.escape(secret)}(?![\w])", "***", message)
    return message


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
            "`npx supabase migration list --remote=<url>` shows what is applied"
        )
    hint = " ".join(hint.split()) if hint else hint  # one line, whatever the server's hint holds
    return f"{text} (SQLSTATE {code})" + (f"; hint: {hint}" if hint else "")


def require_migrated(conn: psycopg.Connection, url: str, hint: str) -> None:
    """One clear error for a database without the onai-db migrations (no
    ``public.traffic_leads``), instead of what a command would say of each missing object."""
    row = conn.execute("select to_regclass('public.traffic_leads') is not null").fetchone()
    if not (row and row[0]):
        if holds_landing_tables(conn):  # pushing there was the advice, into Landing (found by review)
            hint = "it holds Landing's legacy tables (public.landing_leads): point at the Traffic database"
        raise OnaiDbError(f"database {describe_url(url)} has no onai-db migrations; {hint}", kind="database")


def holds_landing_tables(conn: psycopg.Connection) -> bool:
    """Whether the database has Landing's ``public.landing_leads`` as a table (in onai-db's
    migrations it is a view), read in the catalog: the login may not use the schema."""
    return bool(
        scalar(
            conn,
            "select exists (select from pg_catalog.pg_class as c join pg_catalog.pg_namespace as n"
            " on n.oid = c.relnamespace where n.nspname = 'public' and c.relname = 'landing_leads'"
            " and c.relkind in ('r', 'p'))",
        )
    )
