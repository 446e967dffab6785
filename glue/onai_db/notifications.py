"""Queue the notifications for existing people: welcome e-mails for students, Telegram
notices and AmoCRM sync for leads. Used by the demo and by backfills; each call is
idempotent (the outbox keys are per user / per lead)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import psycopg

from .outbox import Outbox


@dataclass(frozen=True)
class QueuedNotifications:
    """Welcome e-mails and Telegram jobs count what a call offered (users; groups per lead),
    and a repeat offers the same (each job is queued once); AmoCRM sync jobs count the jobs the
    call queued, so a repeat counts 0."""

    welcome_emails: int = 0
    telegram_jobs: int = 0
    amocrm_sync_jobs: int = 0


def enqueue_welcome_emails(conn: psycopg.Connection, user_ids: Sequence[UUID] | None = None) -> int:
    """One tripwire_welcome job per given user, or per auth user holding the student role."""
    if user_ids is None:
        rows = conn.execute(
            "select user_id from public.app_user_roles where role = 'student' order by granted_at, user_id"
        ).fetchall()
        user_ids = [r[0] for r in rows]
    for uid in user_ids:
        conn.execute("select public.enqueue_account_email(%s, 'tripwire_welcome')", (uid,))
    return len(user_ids)


def enqueue_lead_notifications(
    conn: psycopg.Connection,
    lead_ids: Sequence[UUID] | None = None,
    include_legacy: bool = False,
    amocrm_batch: int = 1000,
) -> QueuedNotifications:
    """Telegram "new lead" jobs for the given (or all live) leads, plus AmoCRM sync jobs for
    every live unsynced lead that has none yet (leads imported from Landing only with
    ``include_legacy``). The AmoCRM count is of jobs queued by this call."""
    if lead_ids is None:
        rows = conn.execute(
            "select id from public.traffic_leads where merged_into is null order by created_at, id"
        ).fetchall()
        lead_ids = [r[0] for r in rows]
    telegram = 0
    for lid in lead_ids:
        row = conn.execute("select public.enqueue_lead_notification(%s)", (lid,)).fetchone()
        telegram += int(row[0]) if row else 0
    amocrm = 0
    queue = Outbox(conn)
    while queued := queue.enqueue_amocrm_lead_sync(amocrm_batch, include_legacy):  # until none is left
        amocrm += queued
    return QueuedNotifications(telegram_jobs=telegram, amocrm_sync_jobs=amocrm)


def enqueue_demo_notifications(conn: psycopg.Connection) -> QueuedNotifications:
    """Welcome e-mails for every student plus lead notifications and AmoCRM sync for every lead
    (the demo's leads are imported from its Landing fixture, so imported leads are included)."""
    welcome = enqueue_welcome_emails(conn)
    leads = enqueue_lead_notifications(conn, include_legacy=True)
    return QueuedNotifications(welcome, leads.telegram_jobs, leads.amocrm_sync_jobs)
