"""``onai-db monitor``: the integration health views, read and rendered.

Reads the monitoring views (20261121120500 and amocrm_sync_backlog): queue depth and the
age of the oldest pending job per kind, successes / failures per service per day, the
latest errors, dead jobs, Telegram groups active / deactivated, AmoCRM leads not synced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from rich.console import Console
from rich.table import Table


@dataclass
class MonitorSnapshot:
    queue: list[dict[str, Any]]
    daily: list[dict[str, Any]]
    errors: list[dict[str, Any]]
    dead: list[dict[str, Any]]
    telegram: list[dict[str, Any]]
    amocrm: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rows(conn: psycopg.Connection, query: str, params: tuple = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query, params)  # type: ignore[arg-type]
        return list(cur.fetchall())


def snapshot(conn: psycopg.Connection, days: int = 7, errors: int = 10, dead: int = 20) -> MonitorSnapshot:
    """Everything ``onai-db monitor`` shows, as plain rows."""
    return MonitorSnapshot(
        queue=_rows(conn, "select * from public.outbox_queue_stats order by kind"),
        daily=_rows(
            conn,
            "select * from public.integration_daily_stats"
            " where log_date > (now() at time zone 'utc')::date - %s order by log_date desc, service_name",
            (days,),
        ),
        errors=_rows(conn, "select * from public.integration_recent_errors limit %s", (errors,)),
        dead=_rows(conn, "select * from public.outbox_dead_jobs order by updated_at desc limit %s", (dead,)),
        telegram=_rows(conn, "select * from public.telegram_group_stats order by group_type"),
        amocrm=_rows(conn, "select * from public.amocrm_sync_backlog")[0],
    )


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


def render(snap: MonitorSnapshot, console: Console) -> None:
    """Print the snapshot as tables."""
    queue = Table(title="Outbox queue")
    for col in ("kind", "pending", "due", "running", "dead", "done", "oldest pending"):
        queue.add_column(col, justify="left" if col == "kind" else "right")
    for r in snap.queue:
        queue.add_row(
            str(r["kind"]),
            str(r["pending"]),
            str(r["due"]),
            str(r["running"]),
            f"[red]{r['dead']}[/red]" if r["dead"] else "0",
            str(r["done"]),
            _age(r["oldest_pending_age"]),
        )
    console.print(queue)

    daily = Table(title="Integration calls per day (UTC)")
    for col in ("day", "service", "success", "failed", "skipped", "avg ms"):
        daily.add_column(col, justify="left" if col in ("day", "service") else "right")
    for r in snap.daily:
        daily.add_row(
            str(r["log_date"]),
            r["service_name"],
            str(r["successes"]),
            f"[red]{r['failures']}[/red]" if r["failures"] else "0",
            str(r["skipped"]),
            "-" if r["avg_duration_ms"] is None else str(r["avg_duration_ms"]),
        )
    if not snap.daily:
        daily.add_row("-", "no calls yet", "", "", "", "")
    console.print(daily)

    errors = Table(title="Latest errors")
    for col in ("when (UTC)", "service", "action", "job", "attempt", "error"):
        errors.add_column(col)
    for r in snap.errors:
        errors.add_row(
            r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
            r["service_name"],
            r["action"],
            str(r["job_id"] or "-"),
            str(r["attempt"] or "-"),
            r["error_message"] or "",
        )
    if not snap.errors:
        errors.add_row("-", "none", "", "", "", "")
    console.print(errors)

    dead = Table(title="Dead jobs (onai-db worker --requeue-dead revives them)")
    for col in ("id", "kind", "key", "attempts", "last error"):
        dead.add_column(col)
    for r in snap.dead:
        dead.add_row(
            str(r["id"]), str(r["kind"]), r["idempotency_key"], str(r["attempts"]), r["last_error"] or ""
        )
    if not snap.dead:
        dead.add_row("-", "none", "", "", "")
    console.print(dead)

    tg = Table(title="Telegram groups")
    for col in ("group type", "active", "deactivated", "last deactivated"):
        tg.add_column(col)
    for r in snap.telegram:
        last = r["last_deactivated_at"]
        tg.add_row(
            r["group_type"],
            str(r["active"]),
            str(r["deactivated"]),
            last.strftime("%Y-%m-%d %H:%M") if last else "-",
        )
    if not snap.telegram:
        tg.add_row("none configured", "", "", "")
    console.print(tg)

    a = snap.amocrm
    oldest = a["oldest_unsynced_at"].strftime("%Y-%m-%d %H:%M") if a["oldest_unsynced_at"] else "-"
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
