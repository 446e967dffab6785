"""``onai-db monitor``: the integration health views, read and rendered.

Reads the monitoring views (20261121120500 and amocrm_sync_backlog): queue depth and the
age of the oldest pending job per kind, successes / failures per service per day, the
latest errors, dead jobs, Telegram groups active / deactivated, AmoCRM leads not synced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .errors import ConfigError
from .render import plain


@dataclass
class MonitorSnapshot:
    queue: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    telegram: list[dict[str, Any]]
    amocrm: dict[str, Any]
    # the deactivated chats themselves, newest first: what the runbook's re-enable needs
    # (the per-type counts named neither chat nor bot)
    telegram_deactivated: list[dict[str, Any]] = field(default_factory=list)
    # connections named "onai-db worker" the database shows now (a pooler may drop the name)
    worker_connections: int = 0
    # more errors / dead jobs / deactivated chats exist than the lists hold
    truncated: dict[str, bool] = field(default_factory=dict)
    # rules a migration added for new and changed rows only, because rows stored before
    # break them (`supabase db push` does not show the migration's warning)
    constraints_not_validated: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For JSON: times as ISO 8601 in UTC, ages as ``<name>_seconds`` numbers."""
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            # an age is "<name>_seconds" also when there is none (null), so the key never moves
            if isinstance(item, timedelta) or (item is None and key.endswith("_age")):
                out[f"{key}_seconds"] = None if item is None else round(item.total_seconds(), 3)
            else:
                out[key] = _jsonable(item)
        return out
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _utc(value: Any) -> Any:
    return value.astimezone(UTC) if isinstance(value, datetime) and value.tzinfo else value


def _rows(conn: psycopg.Connection, query: str, params: tuple = ()) -> list[dict[str, Any]]:
    """Rows as dicts, every time in UTC whatever the session's time zone (PGTZ, the role's or
    the database's setting: "(UTC)" showed Almaty time)."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)
        return [{k: _utc(v) for k, v in row.items()} for row in cur.fetchall()]


def _newest(conn: psycopg.Connection, query: str, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The first ``limit`` rows of ``query`` (already ordered), and whether more exist."""
    rows = _rows(conn, f"{query} limit %s", (limit + 1,))
    return rows[:limit], len(rows) > limit


def require_full_view(conn: psycopg.Connection) -> None:
    """The views are security_invoker: a login under row-level security that may read them
    sees no rows and the monitor said "all healthy" (found by review)."""
    row = conn.execute(
        "select current_user::text, r.rolbypassrls or r.rolsuper"
        " or pg_catalog.pg_has_role(current_user, c.relowner, 'member')"
        " from pg_catalog.pg_roles as r, pg_catalog.pg_class as c"
        " where r.rolname = current_user and c.oid = 'public.outbox_jobs'::regclass"
    ).fetchone()
    if row is not None and not row[1]:
        raise ConfigError(
            f"the monitor's login acts as {row[0]}, to which row-level security applies: it would see no jobs"
            " and report all healthy; connect as postgres or a login that is a member of service_role"
        )


def snapshot(
    conn: psycopg.Connection, days: int = 7, errors: int = 10, dead: int = 20, chats: int = 20
) -> MonitorSnapshot:
    """Everything ``onai-db monitor`` shows, as plain rows."""
    require_full_view(conn)
    error_rows, more_errors = _newest(conn, "select * from public.integration_recent_errors", errors)
    dead_rows, more_dead = _newest(
        conn, "select * from public.outbox_dead_jobs order by updated_at desc", dead
    )
    chat_rows, more_chats = _newest(
        conn,
        "select chat_id, title, group_type, bot, deactivated_at, deactivation_reason"
        " from public.telegram_groups where not is_active order by deactivated_at desc, chat_id",
        chats,
    )
    workers = conn.execute(
        "select count(*) from pg_catalog.pg_stat_activity"
        " where datname = current_database() and application_name = 'onai-db worker'"
    ).fetchone()
    return MonitorSnapshot(
        queue=_rows(conn, "select * from public.outbox_queue_stats order by kind"),
        daily=_rows(
            conn,
            "select * from public.integration_daily_stats"
            " where log_date > (now() at time zone 'utc')::date - %s order by log_date desc, service_name",
            (days,),
        ),
        errors=error_rows,
        dead=dead_rows,
        telegram=_rows(conn, "select * from public.telegram_group_stats order by group_type"),
        amocrm=_rows(conn, "select * from public.amocrm_sync_backlog")[0],
        telegram_deactivated=chat_rows,
        worker_connections=int(workers[0]) if workers else 0,
        truncated={"errors": more_errors, "dead": more_dead, "telegram_deactivated": more_chats},
        constraints_not_validated=_rows(conn, _NOT_VALIDATED),
    )


_NOT_VALIDATED = """
select c.conrelid::regclass::text as table_name, c.conname::text as constraint_name,
  -- the definition without the ' NOT VALID' pg_get_constraintdef appends to such a constraint
  pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(c.oid), ' NOT VALID$', '') as definition
from pg_catalog.pg_constraint as c
join pg_catalog.pg_namespace as n on c.connamespace = n.oid
where not c.convalidated and n.nspname in ('public', 'private')
order by 1, 2
"""


def _age(value: Any) -> str:
    if value is None:
        return "-"
    seconds = int(value.total_seconds())
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def _stale_kinds(queue: list[dict[str, Any]]) -> list[str]:
    """A line per kind whose oldest due job has waited more than 5 minutes: a backlog when the
    kind has jobs running under a live lease (a worker serves it), else no worker serves it
    (found by review: one line summed every kind's due jobs and said "no worker" while a
    worker was draining a long AmoCRM backlog)."""
    lines = []
    for r in queue:
        age = r.get("oldest_due_age")
        if not int(r["due"]) or age is None or age <= timedelta(minutes=5):
            continue
        kind, due = plain(r["kind"]), int(r["due"])
        serving = int(r["running"]) - int(r.get("expired_leases") or 0)
        if serving > 0:
            lines.append(
                f"[yellow]{kind}: {due} job(s) due, the oldest for {_age(age)}[/yellow]: a backlog; {serving}"
                " running now, so a worker serves this kind (more workers or --concurrency drain it sooner)"
            )
        else:
            lines.append(
                f"[red]{kind}: {due} job(s) due, the oldest for {_age(age)}[/red]: no worker serves them"
                f" (is `onai-db worker` running, with {kind} in its --services and settings?)"
            )
    return lines


def render(snap: MonitorSnapshot, console: Console) -> None:
    """Print the snapshot as tables."""
    queue = Table(title="Outbox queue")
    columns = ("kind", "pending", "due", "waiting since", "running", "lease expired", "dead", "done")
    for col in columns:
        queue.add_column(col, justify="left" if col == "kind" else "right")
    for r in snap.queue:
        queue.add_row(
            str(r["kind"]),
            str(r["pending"]),
            str(r["due"]),
            _age(r.get("oldest_due_age")),
            str(r["running"]),
            f"[red]{r['expired_leases']}[/red]" if r.get("expired_leases") else "0",
            f"[red]{r['dead']}[/red]" if r["dead"] else "0",
            str(r["done"]),
        )
    console.print(queue)
    expired = sum(int(r.get("expired_leases") or 0) for r in snap.queue)
    console.print(
        f"worker connections now: {snap.worker_connections} (named `onai-db worker`; a pooler may hide the name)"
    )
    for line in _stale_kinds(snap.queue):
        console.print(line)
    if expired:
        console.print(
            f"[red]{expired} running job(s) with an expired lease[/red]: their worker is gone;"
            " lease recovery (pg_cron, or a running worker) makes them pending again"
        )

    daily = Table(title="Integration calls per day (UTC)")
    for col in ("day", "service", "success", "failed", "skipped", "avg ms"):
        daily.add_column(col, justify="left" if col in ("day", "service") else "right")
    for r in snap.daily:
        daily.add_row(
            str(r["log_date"]),
            plain(r["service_name"]),
            str(r["successes"]),
            f"[red]{r['failures']}[/red]" if r["failures"] else "0",
            str(r["skipped"]),
            "-" if r["avg_duration_ms"] is None else str(r["avg_duration_ms"]),
        )
    if not snap.daily:
        daily.add_row("-", "no calls yet", "", "", "", "")
    console.print(daily)

    errors = Table(
        title="Latest errors" + (" (more in integration_logs)" if snap.truncated.get("errors") else "")
    )
    for col in ("when (UTC)", "service", "action", "job", "attempt", "error"):
        errors.add_column(col)
    for r in snap.errors:
        errors.add_row(
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            plain(r["service_name"]),
            plain(r["action"]),
            str(r["job_id"] or "-"),
            str(r["attempt"] or "-"),
            plain(r["error_message"]),
        )
    if not snap.errors:
        errors.add_row("-", "none", "", "", "", "")
    console.print(errors)

    more = ", newest first; more in outbox_dead_jobs" if snap.truncated.get("dead") else ""
    dead = Table(title=f"Dead jobs (onai-db worker --requeue-dead revives them{more})")
    for col in ("id", "kind", "key", "attempts", "last error"):
        dead.add_column(col)
    for r in snap.dead:
        dead.add_row(
            str(r["id"]),
            str(r["kind"]),
            plain(r["idempotency_key"]),
            str(r["attempts"]),
            plain(r["last_error"]),
        )
    if not snap.dead:
        dead.add_row("-", "none", "", "", "")
    console.print(dead)

    tg = Table(title="Telegram groups")
    for col in ("group type", "active", "deactivated", "last deactivated (UTC)"):
        tg.add_column(col)
    for r in snap.telegram:
        last = r["last_deactivated_at"]
        tg.add_row(
            plain(r["group_type"]),
            str(r["active"]),
            str(r["deactivated"]),
            last.strftime("%Y-%m-%d %H:%M") if last else "-",
        )
    if not snap.telegram:
        tg.add_row("none configured", "", "", "")
    console.print(tg)
    if snap.telegram_deactivated:
        more = "; more in telegram_groups" if snap.truncated.get("telegram_deactivated") else ""
        off = Table(title=f"Deactivated Telegram chats (newest first{more})")
        for col in ("chat", "title", "group type", "bot", "since (UTC)", "reason"):
            off.add_column(col, overflow="fold")
        for r in snap.telegram_deactivated:
            off.add_row(
                str(r["chat_id"]),
                plain(r["title"] or "-"),
                plain(r["group_type"]),
                plain(r["bot"]),
                r["deactivated_at"].strftime("%Y-%m-%d %H:%M") if r["deactivated_at"] else "-",
                plain(r["deactivation_reason"] or "-"),
            )
        console.print(off)

    a = snap.amocrm
    oldest = a["oldest_unsynced_at"].strftime("%Y-%m-%d %H:%M UTC") if a["oldest_unsynced_at"] else "-"
    console.print(
        f"AmoCRM: {a['unsynced']} live leads not synced (oldest {oldest}); "
        f"{a['queued']} queued, {a['dead']} dead, {a['not_queued']} not queued yet"
    )
    if a.get("legacy_not_queued"):
        console.print(
            f"  {a['legacy_not_queued']} of those not queued were imported from Landing and wait for a decision: "
            "select enqueue_amocrm_lead_sync(p_include_legacy => true), repeated until it returns 0, queues them"
            " (runbook, after the cut-over)"
        )
    for c in snap.constraints_not_validated:
        table, name = plain(c["table_name"]), plain(c["constraint_name"])
        console.print(
            Text.assemble(
                Text("constraint ", style="red"),
                name,
                Text(" on ", style="red"),
                table,
                Text(" is not validated", style="red"),
                ": rows stored before it break ",
                plain(c["definition"]),
                "; it checks new and changed rows only. Find those rows by that condition, fix or delete"
                " them, then `alter table ",
                table,
                " validate constraint ",
                name,
                "`",
            )
        )
