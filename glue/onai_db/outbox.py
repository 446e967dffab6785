"""The outbox queue from Python: thin calls to the SQL API (20261121120200_outbox_api.sql).

Every method is one statement on an autocommit connection, so each is its own
transaction exactly as a PostgREST RPC would be. Connections made by :func:`connect`
act as ``service_role`` (the only role the queue is granted to).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from .connection import connect as open_connection
from .connection import scalar

KINDS = ("email", "sms", "telegram", "amocrm")


def connect(
    url: str, *, as_service_role: bool = True, application_name: str | None = None, keepalive: bool = False
) -> psycopg.Connection:
    """An autocommit connection; switched to ``service_role`` when the login may."""
    conn = open_connection(url, autocommit=True, application_name=application_name, keepalive=keepalive)
    if as_service_role:
        use_service_role(conn)
    return conn


def use_service_role(conn: psycopg.Connection) -> None:
    """Act as ``service_role`` from now on, when the login may (``reset role`` goes back)."""
    row = conn.execute(
        "select pg_catalog.pg_has_role(current_user, 'service_role', 'member')"
        " from pg_catalog.pg_roles where rolname = 'service_role'"
    ).fetchone()
    if row and row[0]:
        conn.execute("set role service_role")


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    payload: dict[str, Any]
    idempotency_key: str
    status: str
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Job:
        return cls(**{k: row[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class PruneResult:
    logs_deleted: int
    jobs_emptied: int  # done jobs past retention: payload emptied, row and key kept


class Outbox:
    """Queue operations over one connection (not shared between threads)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        idempotency_key: str,
        run_after: datetime | None = None,
        max_attempts: int = 8,
    ) -> int:
        row = self.conn.execute(
            "select public.enqueue_outbox_job(%s::public.outbox_kind, %s, %s, %s, %s)",
            (kind, Jsonb(payload), idempotency_key, run_after, max_attempts),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def claim(
        self, worker: str, limit: int = 1, lease_seconds: float = 60.0, kinds: Sequence[str] | None = None
    ) -> list[Job]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "select * from public.claim_outbox_jobs(%s, %s, %s, %s::public.outbox_kind[])",
                (worker, limit, lease_seconds, list(kinds) if kinds else None),
            )
            return [Job.from_row(r) for r in cur.fetchall()]

    def complete(
        self,
        worker: str,
        ids: Sequence[int],
        durations_ms: Sequence[int | None] | None = None,
        provider_refs: Sequence[str | None] | None = None,
        log_status: str = "success",
        note: str | None = None,
    ) -> list[int]:
        rows = self.conn.execute(
            "select * from public.complete_outbox_jobs(%s, %s, %s, %s, %s, %s)",
            (
                worker,
                list(ids),
                list(durations_ms) if durations_ms is not None else None,
                list(provider_refs) if provider_refs is not None else None,
                log_status,
                note,
            ),
        ).fetchall()
        return [int(r[0]) for r in rows]

    def fail(
        self,
        job_id: int,
        worker: str,
        error: str,
        *,
        duration_ms: int | None = None,
        retry_in_seconds: float | None = None,
        permanent: bool = False,
        count_attempt: bool = True,
        backoff_base_seconds: float = 10.0,
        backoff_cap_seconds: float = 3600.0,
    ) -> str | None:
        """The job's new status (pending / dead), or None when the lease was lost."""
        row = self.conn.execute(
            "select public.fail_outbox_job(%s, %s, %s, %s, %s, %s, %s, %s, %s)::text",
            (
                job_id,
                worker,
                error,
                duration_ms,
                retry_in_seconds,
                permanent,
                count_attempt,
                backoff_base_seconds,
                backoff_cap_seconds,
            ),
        ).fetchone()
        return row[0] if row else None

    def release(self, worker: str, ids: Sequence[int]) -> int:
        row = self.conn.execute("select public.release_outbox_jobs(%s, %s)", (worker, list(ids))).fetchone()
        return int(row[0]) if row else 0

    def extend(self, worker: str, ids: Sequence[int], lease_seconds: float) -> int:
        row = self.conn.execute(
            "select public.extend_outbox_leases(%s, %s, %s)", (worker, list(ids), lease_seconds)
        ).fetchone()
        return int(row[0]) if row else 0

    def requeue_dead(self, ids: Sequence[int] | None = None, kind: str | None = None) -> int:
        row = self.conn.execute(
            "select public.requeue_dead_outbox_jobs(%s, %s::public.outbox_kind)",
            (list(ids) if ids is not None else None, kind),
        ).fetchone()
        return int(row[0]) if row else 0

    def enqueue_amocrm_lead_sync(self, limit: int = 1000, include_legacy: bool = False) -> int:
        """Sync jobs for the next ``limit`` live unsynced leads without one; how many it queued."""
        row = self.conn.execute(
            "select public.enqueue_amocrm_lead_sync(p_limit => %s, p_include_legacy => %s)",
            (limit, include_legacy),
        ).fetchone()
        return int(row[0]) if row and row[0] else 0

    def enqueue_amocrm_new_lead_syncs(self, limit: int = 1000) -> int:
        """Sync jobs for the next ``limit`` live unsynced leads that did not come from Landing."""
        row = self.conn.execute("select public.enqueue_amocrm_new_lead_syncs(%s)", (limit,)).fetchone()
        return int(row[0]) if row and row[0] else 0

    def recover_expired(self) -> int:
        row = self.conn.execute("select public.recover_expired_outbox_leases()").fetchone()
        return int(row[0]) if row else 0

    def prune(self, keep_days: int = 30) -> PruneResult:
        row = self.conn.execute("select * from public.prune_integration_history(%s)", (keep_days,)).fetchone()
        assert row is not None
        return PruneResult(int(row[0]), int(row[1]))

    def scheduled_cron_jobs(self) -> dict[str, str]:
        """The active pg_cron jobs, name -> command (none without pg_cron, or when the login may
        not read ``cron.job``). The migrations schedule housekeeping only when pg_cron is there
        at push time: enabled later, it runs none of it until someone schedules the jobs."""
        try:
            with self.conn.transaction():  # (to_regclass too fails without usage on the schema)
                if not scalar(self.conn, "select to_regclass('cron.job') is not null"):
                    return {}
                rows = self.conn.execute("select jobname, command from cron.job where active").fetchall()
        except psycopg.errors.InsufficientPrivilege:
            return {}
        return {str(r[0]): str(r[1] or "") for r in rows if r[0]}

    def daily_tasks_due(self, actions: Sequence[str]) -> set[str]:
        """Those of the worker's daily ``actions`` with no success in ``integration_logs``
        within the last day, in one query (found by review: cron-run ``--once`` workers pruned
        and folded at every run and never made the AmoCRM full sweep, as the last run was only
        in memory)."""
        rows = self.conn.execute(
            "select a from unnest(%s::text[]) as a where not exists (select 1 from public.integration_logs"
            " where service_name = 'outbox' and action = a and status = 'success'"
            " and created_at > now() - interval '1 day')",
            (list(actions),),
        ).fetchall()
        return {str(r[0]) for r in rows}

    def record_daily_task(self, action: str, duration_ms: int) -> None:
        """A success row for the worker's daily ``action`` (see :meth:`daily_tasks_due`)."""
        self.conn.execute(
            "insert into public.integration_logs (service_name, action, status, duration_ms)"
            " values ('outbox', %s, 'success', %s)",
            (action, max(0, duration_ms)),
        )

    def has_pg_cron(self) -> bool:
        row = self.conn.execute(
            "select exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron')"
        ).fetchone()
        return bool(row and row[0])
