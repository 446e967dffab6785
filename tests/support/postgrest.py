"""Run SQL exactly the way PostgREST runs a request.

PostgREST logs in as ``authenticator`` and, per request: ``begin``; one
``select set_config(...)`` with ``is_local = true`` for search_path, ``role`` (from the
JWT, ``anon`` without one), ``request.jwt.claims`` (the whole JWT payload),
``request.method``, ``request.path``, ``request.headers``; then the query; then commit
(or rollback on error). See ../shared/research/supabase-platform.md §4.

For fast isolation a test runs inside one outer transaction that is rolled back at the
end; each request is then a savepoint, so its ``set local`` settings and, on error,
its changes are undone exactly as a PostgREST transaction would be.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

EXPOSED_SEARCH_PATH = "public, extensions"


@dataclass(frozen=True)
class Actor:
    """Who makes a request: an API role and, for signed-in users, their JWT claims."""

    label: str
    role: str  # anon | authenticated | service_role
    user_id: uuid.UUID | None = None
    email: str | None = None
    app_roles: tuple[str, ...] = ()
    team_id: uuid.UUID | None = None
    extra_claims: dict[str, Any] = field(default_factory=dict)

    def claims(self) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {"role": self.role, "iss": "supabase", "iat": now, "exp": now + 3600}
        if self.user_id is not None:
            base.update(
                sub=str(self.user_id),
                aud="authenticated",
                email=self.email,
                phone="",
                app_metadata={"provider": "email", "providers": ["email"]},
                user_metadata={},
                aal="aal1",
                amr=[{"method": "password", "timestamp": now}],
                session_id=str(uuid.uuid4()),
                is_anonymous=False,
            )
        base.update(self.extra_claims)
        return base


ANON = Actor("anon", "anon")
SERVICE = Actor("service_role", "service_role")


def http_status(sqlstate: str | None, role: str) -> int:
    """PostgREST's SQLSTATE -> HTTP mapping (Error.hs pgErrorStatus)."""
    code = sqlstate or ""
    if code == "42501":
        return 401 if role == "anon" else 403
    if code in ("23505", "23503"):
        return 409
    if code == "25006":
        return 405
    if code in ("42883", "42P01"):
        return 404
    if code.startswith("PT") and code[2:].isdigit():
        return int(code[2:])
    if code == "P0001":
        return 400
    if code.startswith("P0"):
        return 500
    if code.startswith(("08", "53", "57P01")):
        return 503
    if code.startswith(("09", "25", "2D", "38", "39", "3B", "40", "54", "55", "57", "58", "F0", "HV", "XX")):
        return 500
    if code.startswith(("0L", "0P", "28")):
        return 403
    return 400


class ApiError(Exception):
    """A request that PostgREST would answer with an error body {code, message, details, hint}."""

    def __init__(self, exc: psycopg.Error, role: str) -> None:
        diag = exc.diag
        self.code = exc.sqlstate
        self.message = diag.message_primary or str(exc)
        self.details = diag.message_detail
        self.hint = diag.message_hint
        self.status = http_status(exc.sqlstate, role)
        super().__init__(f"{self.status} {self.code}: {self.message}")


class PostgrestSession:
    """One authenticator connection; each ``request`` is one PostgREST transaction."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._n = 0

    def _begin_request(self, actor: Actor, method: str, path: str) -> None:
        self.conn.execute(
            "select set_config('search_path', %s, true), set_config('role', %s, true),"
            " set_config('request.jwt.claims', %s, true), set_config('request.method', %s, true),"
            " set_config('request.path', %s, true), set_config('request.headers', %s, true)",
            (
                EXPOSED_SEARCH_PATH,
                actor.role,
                json.dumps(actor.claims()),
                method,
                path,
                json.dumps({"content-type": "application/json", "prefer": "return=representation"}),
            ),
        )

    @contextmanager
    def request(self, actor: Actor, method: str = "POST", path: str = "/") -> Iterator[psycopg.Cursor]:
        """A request as ``actor``; errors become :class:`ApiError` and are rolled back."""
        self._n += 1
        name = sql.Identifier(f"req_{self._n}")
        self.conn.execute(sql.SQL("savepoint {}").format(name))
        try:
            self._begin_request(actor, method, path)
            with self.conn.cursor(row_factory=dict_row) as cur:
                yield cur
        except psycopg.Error as exc:
            self.conn.execute(sql.SQL("rollback to savepoint {}").format(name))
            self.conn.execute("select set_config('role', 'none', true)")
            raise ApiError(exc, actor.role) from exc
        else:
            self.conn.execute(sql.SQL("release savepoint {}").format(name))
            self.conn.execute("select set_config('role', 'none', true)")

    def query(
        self, actor: Actor, query: str, params: Sequence[Any] | dict[str, Any] | None = None
    ) -> list[dict]:
        """Run one statement as ``actor`` and return its rows (``[]`` for no result set)."""
        with self.request(actor) as cur:
            cur.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def rpc(self, actor: Actor, function: str, **args: Any) -> Any:
        """``POST /rpc/<function>`` with a JSON body: named arguments, as PostgREST calls them.

        JSON objects and arrays in the body arrive as json(b) values, as from PostgREST.
        """
        args = {k: Jsonb(v) if isinstance(v, dict | list) else v for k, v in args.items()}
        assigns = sql.SQL(", ").join(
            sql.SQL("{} := {}").format(sql.Identifier(k), sql.Placeholder(k)) for k in args
        )
        schema, _, name = function.rpartition(".")
        ident = sql.Identifier(schema or "public", name)
        stmt = sql.SQL("select * from {}({})").format(ident, assigns)
        with self.request(actor, "POST", f"/rpc/{name}") as cur:
            cur.execute(stmt, args)
            return cur.fetchall()

    @contextmanager
    def probe(self) -> Iterator[None]:
        """Undo whatever happens inside (used to try writes without keeping them)."""
        self._n += 1
        name = sql.Identifier(f"probe_{self._n}")
        self.conn.execute(sql.SQL("savepoint {}").format(name))
        try:
            yield
        finally:
            self.conn.execute(sql.SQL("rollback to savepoint {}").format(name))
