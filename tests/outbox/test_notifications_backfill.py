"""notifications.py (the demo's and backfills' enqueueing) and the Outbox wrapper's defaults:
who gets what (found by mutation review: none of these was pinned)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import psycopg

from onai_db.notifications import (
    enqueue_demo_notifications,
    enqueue_lead_notifications,
    enqueue_welcome_emails,
)
from onai_db.outbox import Outbox
from support.cast import Cast


def _job_keys(conn: psycopg.Connection, like: str) -> list[str]:
    rows = conn.execute(
        "select idempotency_key from public.outbox_jobs where idempotency_key like %s order by 1", (like,)
    ).fetchall()
    return [r[0] for r in rows]


def test_a_backfill_notifies_live_leads_only(
    queue: Outbox, owner_conn: psycopg.Connection, old_leads: Callable[..., uuid.UUID]
) -> None:
    """A merged lead is the same person as its survivor: a second "new lead" message for it
    would go to the sales chat at every backfill."""
    owner_conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-701, 'leads')")
    survivor, merged = old_leads(), old_leads()
    owner_conn.execute(
        "update public.traffic_leads set merged_into = %s, merged_at = now() where id = %s",
        (survivor, merged),
    )
    enqueue_lead_notifications(queue.conn)
    assert _job_keys(queue.conn, f"lead_notification/{survivor}/%") != []
    assert _job_keys(queue.conn, f"lead_notification/{merged}/%") == []


def test_welcome_emails_go_to_students_only(queue: Outbox, cast: Cast) -> None:
    """The tripwire welcome is for students: staff (admins, sales managers) get none."""
    student, admin, sales = (cast.by_matrix_role(r).user_id for r in ("student", "admin", "sales_manager"))
    enqueue_welcome_emails(queue.conn)
    assert _job_keys(queue.conn, f"tripwire_welcome/{student}") == [f"tripwire_welcome/{student}"]
    assert _job_keys(queue.conn, f"tripwire_welcome/{admin}") == []
    assert _job_keys(queue.conn, f"tripwire_welcome/{sales}") == []


def test_include_legacy_reaches_the_sync_sweep(queue: Outbox, old_leads: Callable[..., uuid.UUID]) -> None:
    """A lead imported from Landing is synced to AmoCRM only when asked, and then it is."""
    legacy = old_leads(legacy_source_table="landing_leads", legacy_id=str(uuid.uuid4()))
    enqueue_lead_notifications(queue.conn, lead_ids=[])
    assert _job_keys(queue.conn, f"amocrm_sync/{legacy}") == []
    enqueue_lead_notifications(queue.conn, lead_ids=[], include_legacy=True)
    assert _job_keys(queue.conn, f"amocrm_sync/{legacy}") == [f"amocrm_sync/{legacy}"]


def test_the_demo_syncs_its_imported_leads(queue: Outbox, old_leads: Callable[..., uuid.UUID]) -> None:
    """The demo's leads come from its Landing fixture: without include_legacy none is synced."""
    legacy = old_leads(legacy_source_table="landing_leads", legacy_id=str(uuid.uuid4()))
    enqueue_demo_notifications(queue.conn)
    assert _job_keys(queue.conn, f"amocrm_sync/{legacy}") == [f"amocrm_sync/{legacy}"]


def test_requeue_dead_with_an_empty_list_requeues_nothing(queue: Outbox) -> None:
    """``requeue_dead([])`` (an empty selection) is not "every dead job": that would resend
    everything that failed for good (a wrong number, a refused address)."""
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "rq-empty/1", max_attempts=1)
    queue.claim("w", 1, 30)
    assert queue.fail(job_id, "w", "mobizon: code 8") == "dead"
    assert queue.requeue_dead([]) == 0
    assert queue.conn.execute(
        "select status::text from public.outbox_jobs where id = %s", (job_id,)
    ).fetchone() == ("dead",)


def test_enqueue_defaults_to_the_sql_attempts(queue: Outbox) -> None:
    """Outbox.enqueue without max_attempts gives a job as many attempts as the SQL default."""
    py = queue.enqueue("sms", {"to": "+7", "text": "t"}, "defaults/py")
    sql = queue.conn.execute(
        'select public.enqueue_outbox_job(\'sms\', \'{"to": "+7", "text": "t"}\'::jsonb, \'defaults/sql\')'
    ).fetchone()[0]
    rows = queue.conn.execute(
        "select max_attempts from public.outbox_jobs where id = any(%s) order by id", ([py, sql],)
    ).fetchall()
    assert rows[0] == rows[1]
