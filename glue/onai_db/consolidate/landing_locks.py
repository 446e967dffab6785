"""Reading Landing's tables while another session may hold them: bounded, announced waits.

A Landing session holding or awaiting an exclusive lock on a legacy table (a migration's
ALTER TABLE, maybe queued behind a long read) made the run wait without a word for as long as
it lasted, in the preflight as in the backup (found by review). :func:`locked` runs a piece
of work in one transaction that first takes ACCESS SHARE on the tables it reads, all of them
or none (NOWAIT): a run never holds one table while it waits for another, which deadlocked
with a migration that altered them in the other order (found by review), and never queues
ahead of such a migration. A try that finds a table taken names the sessions in the way at
once; the run tries again every quarter of a second and stops after LOCK_WAIT_S with kind
``source_busy`` (nothing written).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import psycopg
from psycopg import sql

from ..errors import ConsolidationError

T = TypeVar("T")

# how long a run waits for Landing's tables (an ALTER TABLE running or queued there)
LOCK_WAIT_S = 60.0
POLL_S = 0.25  # between tries


def locked(
    conn: psycopg.Connection,
    tables: Sequence[str],
    notice: Callable[[str], None],
    work: Callable[[], T],
    what: str = "the checks",
) -> T:
    """``work()``'s result, run in one transaction of ``conn`` (idle, not autocommit; its
    isolation level as set) whose first statement takes ACCESS SHARE on ``tables``, so no
    ALTER TABLE runs on them until it ends, and LOCK takes no snapshot. ``what`` names the
    work in the notice that it goes on."""
    since = time.monotonic()
    waited = False
    while True:
        try:
            with conn.transaction():
                conn.execute(
                    sql.SQL("lock table {} in access share mode nowait").format(
                        sql.SQL(", ").join(sql.Identifier("public", t) for t in tables)
                    )
                )
                if waited:
                    notice(f"Landing's tables are free: going on with {what}")
                return work()
        except psycopg.errors.LockNotAvailable:  # only the NOWAIT lock above raises it
            pass
        in_the_way = sessions_in_the_way(conn, tables)
        conn.rollback()  # the question above is no part of the next try's snapshot
        if time.monotonic() - since > LOCK_WAIT_S:
            raise ConsolidationError(
                f"Landing's tables stay locked{in_the_way}: waited {LOCK_WAIT_S:g} s for {what};"
                " run again once that session ends (a migration on Landing during the cut-over?)",
                kind="source_busy",
            )
        if not waited:
            notice(f"waiting for Landing's tables{in_the_way}; up to {LOCK_WAIT_S:g} s")
            waited = True
        time.sleep(POLL_S)


def sessions_in_the_way(conn: psycopg.Connection, tables: Sequence[str]) -> str:
    """ " (server process N holds/awaits an exclusive lock on T: <its statement>; ...)" for
    the sessions holding or awaiting an exclusive lock on one of ``tables``, a waiting one with
    the sessions it waits for (found by review: a DDL queued behind an idle transaction was
    named, not the transaction), when the login may see them; "" otherwise. A statement the
    login may not see is left out."""
    rows = conn.execute(
        "select l.pid, l.granted, c.relname::text, a.query,"
        " case when not l.granted then (select coalesce(pg_catalog.json_agg(pg_catalog.json_build_array("
        "  b.pid, b.state, b.query) order by b.pid), '[]') from pg_catalog.pg_stat_activity as b"
        "  where b.pid = any(pg_catalog.pg_blocking_pids(l.pid))) end"
        " from pg_catalog.pg_locks as l"
        " join pg_catalog.pg_class as c on l.relation = c.oid"
        " join pg_catalog.pg_namespace as n on c.relnamespace = n.oid"
        " left join pg_catalog.pg_stat_activity as a on l.pid = a.pid"
        " where n.nspname = 'public' and c.relname = any(%s) and l.pid <> pg_catalog.pg_backend_pid()"
        " and l.mode = 'AccessExclusiveLock'"
        " order by l.granted desc, l.pid",
        (list(tables),),
    ).fetchall()
    said = []
    for pid, granted, table, query, blockers in rows:
        line = f"server process {pid} {'holds' if granted else 'awaits'} an exclusive lock on {table}{_statement(query)}"
        behind = [
            f"server process {b_pid}" + (f" ({state})" if state else "") + _statement(q)
            for b_pid, state, q in blockers or []
        ]
        said.append(line + (f", behind {', '.join(behind)}" if behind else ""))
    return f" ({'; '.join(said)})" if said else ""


def _statement(query: str | None) -> str:
    """ ": <the statement's first 80 characters on one line>", or "" when there is none the
    login may see."""
    if not query or query.startswith("<insufficient privilege>"):
        return ""
    return ": " + " ".join(query.split())[:80]
