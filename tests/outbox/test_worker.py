"""The worker end to end against the fake providers: welcome e-mail with a set-password
link and no stored secret, SMS, Telegram fan-out and deactivation, retries, poison jobs,
429 snoozes, two workers on one queue, housekeeping without pg_cron."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from onai_db.errors import ConfigError
from onai_db.local import pg_bindir
from onai_db.outbox import Outbox
from onai_db.outbox_handlers import Handlers
from onai_db.settings import Settings
from onai_db.worker import Worker, WorkerConfig, _in_batches, run_worker
from support.cast import create_auth_user
from support.fake_providers import (
    ADMIN_BOT,
    AMO_CLIENT_SECRET,
    LEADS_BOT,
    MOBIZON_KEY,
    RESEND_KEY,
    SERVICE_KEY,
    FakeProviders,
    Reply,
)
from support.outbox_fixtures import worker_settings


@pytest.fixture()
def student(owner_conn: psycopg.Connection) -> Iterator[tuple[uuid.UUID, str]]:
    email = f"welcome-{uuid.uuid4().hex[:8]}@example.kz"
    with owner_conn.transaction():
        uid = create_auth_user(owner_conn, email, ("student",))
        owner_conn.execute(
            'update auth.users set raw_user_meta_data = \'{"full_name": "Айгерим"}\' where id = %s', (uid,)
        )
    yield uid, email
    owner_conn.execute("delete from auth.users where id = %s", (uid,))


def _job(conn: psycopg.Connection, key: str) -> dict:
    row = conn.execute(
        "select id, status::text, attempts, last_error from public.outbox_jobs where idempotency_key = %s",
        (key,),
    ).fetchone()
    assert row is not None, key
    return {"id": row[0], "status": row[1], "attempts": row[2], "error": row[3]}


def _logs(conn: psycopg.Connection, job_id: int) -> list[tuple]:
    return conn.execute(
        "select service_name, action, status, attempt, error_message, provider_ref from public.integration_logs"
        " where job_id = %s order by id",
        (job_id,),
    ).fetchall()


def _dump(settings: Settings, db_url: str) -> str:
    """The whole test database as SQL text (data only)."""
    pg_dump = pg_bindir(settings) / "pg_dump"
    exe = str(pg_dump) if pg_dump.exists() else shutil.which("pg_dump")
    assert exe, "pg_dump not found"
    out = subprocess.run(
        [exe, "--data-only", "--no-owner", db_url], capture_output=True, text=True, check=True
    )
    return out.stdout


def test_welcome_email_carries_a_set_password_link_and_nothing_stores_it(
    fake: FakeProviders, queue: Outbox, db_url: str, student: tuple[uuid.UUID, str]
) -> None:
    uid, email = student
    job_id = queue.conn.execute(
        "select public.enqueue_account_email(%s, 'tripwire_welcome')", (uid,)
    ).fetchone()[0]
    payload = queue.conn.execute(
        "select payload from public.outbox_jobs where id = %s", (job_id,)
    ).fetchone()[0]
    assert payload == {"template": "tripwire_welcome", "user_id": str(uid), "to": email, "name": "Айгерим"}

    report = run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    assert report.succeeded == 1

    (link,) = fake.links
    (auth_call,) = fake.calls("gotrue")
    assert auth_call.json()["email"] == email and auth_call.json()["type"] == "recovery"
    (sent,) = fake.calls("resend")
    body = sent.json()
    assert sent.headers["Idempotency-Key"] == f"tripwire_welcome/{uid}"
    assert body["to"] == [email] and "Айгерим" in body["html"]
    assert link in body["text"] and link.replace("&", "&amp;") in body["html"]
    assert "парол" in body["text"].lower() and "generated_password" not in body["html"]

    state = _job(queue.conn, f"tripwire_welcome/{uid}")
    assert state["status"] == "done"
    (log,) = _logs(queue.conn, job_id)
    assert log[:4] == ("resend", "send_email", "success", 1) and log[5]
    token = link.split("token=")[1].split("&")[0]
    dump = _dump(Settings.load(), db_url)
    assert email in dump  # the dump does contain the job: the grep below is meaningful
    assert token not in dump and link not in dump


def test_a_failed_link_request_is_retried_and_never_sends_without_a_link(
    fake: FakeProviders, queue: Outbox, db_url: str, student: tuple[uuid.UUID, str]
) -> None:
    uid, _ = student
    queue.conn.execute("select public.enqueue_account_email(%s, 'tripwire_welcome')", (uid,))
    fake.script("gotrue", Reply(500, {"code": 500, "error_code": "unexpected_failure", "msg": "boom"}))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    assert (report.retried, report.succeeded) == (1, 1)
    assert len(fake.calls("resend")) == 1 and len(fake.calls("gotrue")) == 2
    job = _job(queue.conn, f"tripwire_welcome/{uid}")
    assert [r[2] for r in _logs(queue.conn, job["id"])] == ["failed", "success"]


def test_a_welcome_email_whose_answer_was_lost_is_sent_again_with_the_live_link(
    fake: FakeProviders, queue: Outbox, db_url: str, student: tuple[uuid.UUID, str]
) -> None:
    """Resend took the first e-mail but its answer was lost (502). The retry makes a new link,
    which cancels the first e-mail's; Resend refuses the key with the new body (409), so the
    e-mail goes out again under a key of its own, and the user has a link that works."""
    uid, email = student
    queue.conn.execute("select public.enqueue_account_email(%s, 'tripwire_welcome')", (uid,))
    fake.script("resend", Reply(502, raw=b"<html>502 Bad Gateway</html>", accepted=True))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    assert (report.retried, report.succeeded, report.skipped) == (1, 1, 0)

    first_link, live_link = fake.links
    first, refused, resent = fake.calls("resend")
    key = f"tripwire_welcome/{uid}"
    assert first.headers["Idempotency-Key"] == refused.headers["Idempotency-Key"] == key
    assert first_link in first.json()["text"] and live_link in refused.json()["text"]
    assert resent.headers["Idempotency-Key"].startswith(key + "/")
    assert resent.json()["to"] == [email] and live_link in resent.json()["text"]
    job = _job(queue.conn, key)
    assert job["status"] == "done"
    assert [r[2] for r in _logs(queue.conn, job["id"])] == ["failed", "success"]


def test_an_email_without_a_link_whose_answer_was_lost_is_not_sent_twice(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The same body under the same key: Resend answers the first e-mail's id again."""
    queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz", "name": "Ерлан"}, "pw/1")
    fake.script("resend", Reply(502, raw=b"<html>502 Bad Gateway</html>", accepted=True))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    assert (report.retried, report.succeeded) == (1, 1)
    first, second = fake.calls("resend")
    assert first.body == second.body and first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    assert len(fake.resend_keys) == 1


@pytest.mark.parametrize("old", ["old@example.kz", "mailto:Old@Example.kz.", "\u202aold@example.kz\u202c"])
def test_email_changed_goes_to_the_old_address(
    fake: FakeProviders, queue: Outbox, db_url: str, student: tuple[uuid.UUID, str], old: str
) -> None:
    """As normalize_email reads it: a pasted address passed the check since 20261214100400
    but went to Resend as sent, before 20261214100600 (found by review)."""
    uid, email = student
    queue.conn.execute("select public.enqueue_account_email(%s, 'email_changed', 'change-1', %s)", (uid, old))
    run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    (sent,) = fake.calls("resend")
    assert sent.json()["to"] == ["old@example.kz"] and email in sent.json()["text"]
    assert fake.calls("gotrue") == []


def test_a_change_notice_needs_an_event_key_and_each_change_gets_its_own(
    queue: Outbox, student: tuple[uuid.UUID, str]
) -> None:
    """Without p_event_key a second password change of the user queued nothing."""
    uid, email = student
    for template, old in (("password_changed", None), ("email_changed", "old@example.kz")):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
            queue.conn.execute("select public.enqueue_account_email(%s, %s, null, %s)", (uid, template, old))
        assert err.value.diag.message_primary == (
            f"{template} needs p_event_key: without it a later change of the same user would send nothing"
        )
        assert "id of this change" in (err.value.diag.message_hint or "")
    first, again, second = (
        queue.conn.execute(
            "select public.enqueue_account_email(%s, 'password_changed', %s)", (uid, key)
        ).fetchone()[0]
        for key in ("change-1", "change-1", "change-2")
    )
    assert first == again != second
    sent_to = queue.conn.execute(
        "select payload ->> 'to' from public.outbox_jobs where id = any(%s)", ([first, second],)
    ).fetchall()
    assert sent_to == [(email,), (email,)]


def test_the_welcome_email_is_once_per_user_whatever_event_key_is_passed(
    queue: Outbox, student: tuple[uuid.UUID, str]
) -> None:
    """Each call with a new p_event_key queued another welcome e-mail, each with a new
    set-password link cancelling the one before (found by review)."""
    uid, _ = student
    ids = {
        queue.conn.execute(
            "select public.enqueue_account_email(%s, 'tripwire_welcome', %s)", (uid, key)
        ).fetchone()[0]
        for key in (None, "signup-1", "signup-2")
    }
    assert len(ids) == 1
    (key,) = queue.conn.execute(
        "select idempotency_key from public.outbox_jobs where id = any(%s)", (list(ids),)
    )
    assert key == (f"tripwire_welcome/{uid}",)


@pytest.mark.parametrize(
    ("call", "args", "sqlstate", "message"),
    [
        (
            "select public.enqueue_account_email(%s, 'email_changed', 'ev1', %s)",
            ["  "],
            "22023",
            "p_old_email '  ' is not an e-mail address",
        ),
        (
            "select public.enqueue_account_email(%s, 'email_changed', 'ev1', %s)",
            ["not an address"],
            "22023",
            "p_old_email 'not an address' is not an e-mail address",
        ),
        (
            "select public.enqueue_account_email(%s, 'password_changed', %s)",
            ["x" * 201],
            "22001",
            "p_event_key is too long: 201 characters, at most 200 are allowed",
        ),
        (
            "select public.enqueue_telegram_notification(array['leads'], 'hi', %s)",
            [None],
            "22023",
            "p_idempotency_key must not be NULL or blank",
        ),
        (
            "select public.enqueue_telegram_notification(array['leads'], 'hi', %s)",
            ["k" * 181],
            "22001",
            "p_idempotency_key is too long: 181 characters, at most 180 are allowed",
        ),
        (
            "select public.enqueue_telegram_notification(%s, 'hi', 'lead/1')",
            [None],
            "22023",
            "p_group_types must name at least one group type, without NULLs",
        ),
        (
            "select public.enqueue_telegram_notification(%s::text[], 'hi', 'lead/1')",
            [[]],
            "22023",
            "p_group_types must name at least one group type, without NULLs",
        ),
    ],
)
def test_enqueue_functions_refuse_bad_arguments_of_their_own(
    queue: Outbox, student: tuple[uuid.UUID, str], call: str, args: list, sqlstate: str, message: str
) -> None:
    """A blank or invalid old address went dead at send time with the bad value in the
    payload; an over-long key failed with a message about a derived key the caller never
    passed; a Telegram call without a key or group types failed only when a group existed,
    or returned 0 in silence (found by review). Each is now refused up front, queuing nothing."""
    uid, _ = student
    params = [uid, *args] if "enqueue_account_email" in call else args
    with pytest.raises(psycopg.Error) as err:
        queue.conn.execute(call, params)
    assert (err.value.sqlstate, err.value.diag.message_primary) == (sqlstate, message)
    assert err.value.diag.message_hint
    assert queue.conn.execute("select count(*) from public.outbox_jobs").fetchone()[0] == 0


def test_sms_retry_then_success(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "Комиссия 5000 KZT"}, "sale/1")
    fake.script("mobizon", Reply(503, raw=b"unavailable"))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    assert (report.retried, report.succeeded) == (1, 1)
    logs = _logs(queue.conn, job_id)
    assert [(r[2], r[3]) for r in logs] == [("failed", 1), ("success", 2)]
    assert logs[0][4] == "mobizon: HTTP 503" and logs[1][5]


def test_a_poison_job_ends_dead_after_max_attempts_with_every_error_logged(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "poison/1", max_attempts=3)
    fake.script("mobizon", *[Reply(200, {"code": 999, "data": [], "message": "Internal error"})] * 3)
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    assert (report.retried, report.dead) == (2, 1)
    job = _job(queue.conn, "poison/1")
    assert job["status"] == "dead" and job["attempts"] == 3 and job["error"] == "mobizon: code 999"
    assert [(r[2], r[3], r[4]) for r in _logs(queue.conn, job_id)] == [
        ("failed", n, "mobizon: code 999") for n in (1, 2, 3)
    ]
    dead = queue.conn.execute("select id from public.outbox_dead_jobs").fetchall()
    assert dead == [(job_id,)]


def test_telegram_fans_out_and_deactivates_a_group_that_kicked_the_bot(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, title) values"
        " (-1001, 'leads', 'Sales A'), (-1002, 'leads', 'Sales B'), (-1003, 'admin', 'Admins')"
    )
    n = queue.conn.execute(
        "select public.enqueue_telegram_notification(array['leads'], 'Новый лид', 'lead/42')"
    ).fetchone()[0]
    assert n == 2
    fake.script(
        "telegram",
        Reply(
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was kicked from the supergroup chat",
            },
        ),
    )
    report = run_worker(
        worker_settings(fake, db_url, OUTBOX_CONCURRENCY="1"), once=True, services=["telegram"]
    )
    assert report.succeeded == 1 and report.skipped == 1
    assert sorted(c.json()["chat_id"] for c in fake.calls("telegram")) == [-1002, -1001]
    kicked = fake.calls("telegram")[0].json()["chat_id"]  # the first send got the 403
    group = queue.conn.execute(
        "select is_active, deactivation_reason from public.telegram_groups where chat_id = %s", (kicked,)
    ).fetchone()
    assert group == (False, "telegram: HTTP 403 Forbidden: bot was kicked from the supergroup chat")
    gone = _job(queue.conn, f"lead/42/{kicked}/leads")
    assert gone["status"] == "done"
    (log,) = _logs(queue.conn, gone["id"])
    assert log[2] == "failed" and "group deactivated" in log[4]
    stats = queue.conn.execute(
        "select group_type, active, deactivated from public.telegram_group_stats order by 1"
    ).fetchall()
    assert stats == [("admin", 1, 0), ("leads", 1, 1)]
    # a later notification no longer targets the deactivated group
    assert (
        queue.conn.execute(
            "select public.enqueue_telegram_notification(array['leads'], 'x', 'lead/43')"
        ).fetchone()[0]
        == 1
    )


def test_telegram_429_waits_retry_after_without_spending_an_attempt(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    job_id = queue.enqueue("telegram", {"chat_id": -1001, "text": "t", "bot": "leads"}, "tg/429")
    fake.script(
        "telegram",
        Reply(
            429,
            {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 30",
                "parameters": {"retry_after": 30},
            },
        ),
    )
    run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    row = queue.conn.execute(
        "select status::text, attempts, extract(epoch from run_after - now()) from public.outbox_jobs where id = %s",
        (job_id,),
    ).fetchone()
    assert row[0] == "pending" and row[1] == 0 and 28 <= float(row[2]) <= 30.5
    assert _logs(queue.conn, job_id)[0][4] == "telegram: HTTP 429 Too Many Requests: retry after 30"


def test_telegram_group_migrated_to_a_supergroup_is_followed(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    queue.conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-2001, 'leads')")
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'hi', 'mig/1')")
    fake.script(
        "telegram",
        Reply(
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1002001},
            },
        ),
    )
    report = run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    assert report.succeeded == 1
    assert [c.json()["chat_id"] for c in fake.calls("telegram")] == [-2001, -1002001]
    assert queue.conn.execute("select chat_id from public.telegram_groups").fetchall() == [(-1002001,)]


KICKED = Reply(
    403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was kicked from the supergroup chat"}
)
MIGRATED = Reply(
    400,
    {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: group chat was upgraded to a supergroup chat",
        "parameters": {"migrate_to_chat_id": -1003001},
    },
)


def test_a_bot_kicked_from_a_chat_leaves_the_other_bots_groups_there_active(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, bot) values (-3001, 'leads', 'leads'),"
        " (-3001, 'admin', 'admin')"
    )
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'x', 'kick/1')")
    fake.script("telegram", KICKED)
    run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    states = dict(
        queue.conn.execute(
            "select group_type, is_active from public.telegram_groups where chat_id = -3001"
        ).fetchall()
    )
    assert states == {"leads": False, "admin": True}
    assert queue.conn.execute(
        "select public.enqueue_telegram_notification(array['admin'], 'y', 'kick/2')"
    ).fetchone() == (1,)
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_bot must not be NULL"):
        queue.conn.execute("select public.deactivate_telegram_group(-3001, 'x', null)")


def test_a_migrated_chat_is_followed_into_a_supergroup_registered_already_or_that_kicked_the_bot(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The supergroup already has a row for the group type: the message goes there and the old
    row is switched off (the rows' move used to fail on the unique chat and group type, and the
    job died). The supergroup refuses the bot: its group there is switched off, the job done."""
    queue.conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-3002, 'leads')")
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'hi', 'mig/2')")
    queue.conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-1003001, 'leads')")
    fake.script("telegram", MIGRATED)
    report = run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    assert report.succeeded == 1 and report.dead == 0
    assert [c.json()["chat_id"] for c in fake.calls("telegram")] == [-3002, -1003001]
    rows = queue.conn.execute(
        "select chat_id, is_active from public.telegram_groups where chat_id in (-3002, -1003001) order by 1"
    ).fetchall()
    assert rows == [(-1003001, True), (-3002, False)]
    # migrated, and the bot is not in the supergroup
    queue.conn.execute("delete from public.telegram_groups where chat_id in (-3002, -1003001)")
    queue.conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-3003, 'leads')")
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'hi', 'mig/3')")
    fake.script("telegram", MIGRATED, KICKED)
    run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    job = _job(queue.conn, "mig/3/-3003/leads")
    assert job["status"] == "done"
    assert queue.conn.execute(
        "select chat_id, is_active from public.telegram_groups where group_type = 'leads' and chat_id in (-3003, -1003001)"
    ).fetchall() == [(-1003001, False)]


def test_two_workers_on_one_queue_never_process_a_job_twice(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    for i in range(120):
        queue.enqueue("sms", {"to": "+77011234567", "text": f"msg {i}"}, f"two/{i}")
    settings = worker_settings(fake, db_url, OUTBOX_CONCURRENCY="3")
    workers = [Worker(WorkerConfig.from_settings(settings, ["sms"])) for _ in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"once": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    texts = Counter(c.form()["text"][0] for c in fake.calls("mobizon"))
    assert len(texts) == 120 and set(texts.values()) == {1}
    assert all(w.report.claimed > 0 for w in workers), [w.report.claimed for w in workers]
    assert sum(w.report.succeeded for w in workers) == 120
    counts = queue.conn.execute(
        "select count(*) filter (where status = 'done'), (select count(*) from public.integration_logs"
        " where job_id is not null) from public.outbox_jobs"
    ).fetchone()
    assert counts == (120, 120)


def test_without_pg_cron_the_worker_recovers_leases_and_prunes_logs(
    fake: FakeProviders, queue: Outbox, db_url: str, clean_outbox: psycopg.Connection
) -> None:
    assert not queue.has_pg_cron()
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "hk/1")
    queue.claim("vanished-worker", 1, 30)
    clean_outbox.execute("update public.outbox_jobs set lease_expires_at = now() - interval '1 minute'")
    clean_outbox.execute(
        "insert into public.integration_logs (service_name, action, status, created_at)"
        " values ('mobizon', 'send_sms', 'success', now() - interval '90 days')"
    )
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    assert report.recovered == 1 and report.succeeded == 1
    assert _job(queue.conn, "hk/1")["status"] == "done"
    assert [r[1:3] for r in _logs(queue.conn, job_id)] == [
        ("lease_expired", "failed"),
        ("send_sms", "success"),
    ]
    old = queue.conn.execute(
        "select count(*) from public.integration_logs where created_at < now() - interval '30 days'"
    )
    assert old.fetchone()[0] == 0
    # daily: the next run of the day prunes nothing (found by review: every cron-run --once
    # pruned and folded), the daily tasks' successes are in the log
    clean_outbox.execute(
        "insert into public.integration_logs (service_name, action, status, created_at)"
        " values ('mobizon', 'send_sms', 'success', now() - interval '90 days')"
    )
    run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    old = queue.conn.execute(
        "select count(*) from public.integration_logs where created_at < now() - interval '30 days'"
    )
    assert old.fetchone()[0] == 1
    daily = queue.conn.execute(
        "select action, count(*) from public.integration_logs where service_name = 'outbox'"
        " and status = 'success' group by action order by action"
    ).fetchall()
    assert daily == [("fold_lead_stats", 1), ("retention", 1)]


def test_the_worker_leaves_to_pg_cron_only_the_jobs_it_has(
    fake: FakeProviders, queue: Outbox, db_url: str, superuser_url: str, clean_outbox: psycopg.Connection
) -> None:
    """pg_cron enabled after the push has none of the housekeeping jobs (the migrations
    schedule them only when it is there): the worker stopped all of it as soon as the
    extension existed, and expired leases and old logs stayed (found by review). It now
    leaves a job to pg_cron only when ``cron.job`` has it. Here ``cron.job`` is a table of
    the same shape holding only the lease recovery."""
    recover = "select public.recover_expired_outbox_leases()"
    with psycopg.connect(superuser_url, autocommit=True) as su:
        su.execute("create schema cron")
        su.execute("create table cron.job (jobid bigint, jobname text, command text, active boolean)")
        su.execute("insert into cron.job values (1, 'onai-outbox-recover-leases', %s, true)", (recover,))
        try:
            # as on hosted Supabase: the service role may not even look into the schema
            assert queue.scheduled_cron_jobs() == {}  # (the demo failed with 42501 here)
            su.execute("grant usage on schema cron to postgres")  # the worker's login may
            su.execute("grant select on cron.job to postgres")
            with psycopg.connect(db_url, autocommit=True) as login:
                assert Outbox(login).scheduled_cron_jobs() == {"onai-outbox-recover-leases": recover}
            queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "hk/cron")
            queue.claim("vanished-worker", 1, 30)
            clean_outbox.execute(
                "update public.outbox_jobs set lease_expires_at = now() - interval '1 minute'"
            )
            clean_outbox.execute(
                "insert into public.integration_logs (service_name, action, status, created_at)"
                " values ('mobizon', 'send_sms', 'success', now() - interval '90 days')"
            )
            report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
            assert report.recovered == 0 and _job(queue.conn, "hk/cron")["status"] == "running"  # pg_cron's
            old = queue.conn.execute(
                "select count(*) from public.integration_logs where created_at < now() - interval '30 days'"
            )
            assert old.fetchone()[0] == 0  # retention is not in cron.job: the worker pruned
            su.execute("update cron.job set active = false")
            report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
            assert report.recovered == 1 and _job(queue.conn, "hk/cron")["status"] == "done"
            # pg_cron's retention keeps what its command says: a different OUTBOX_RETENTION_DAYS
            # is named with the way to change it (found by review: it did nothing, silently)
            su.execute(
                "insert into cron.job values (2, 'onai-integration-retention',"
                " 'select * from public.prune_integration_history(30)', true)"
            )
            for days, warned in (("7", True), ("30", False)):
                lines: list[str] = []
                settings = worker_settings(fake, db_url, OUTBOX_RETENTION_DAYS=days)
                Worker(WorkerConfig.from_settings(settings, ["sms"]), echo=lines.append).run(once=True)
                warning = [line for line in lines if "onai-integration-retention keeps 30 day(s)" in line]
                assert bool(warning) is warned, lines
        finally:
            su.execute("drop schema cron cascade")


def test_without_pg_cron_the_worker_folds_the_lead_stats_of_past_days(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The nightly fold (pg_cron's onai-lead-stats-fold) runs in the worker's daily
    housekeeping, as the login role: the worker itself acts as service_role."""
    assert not queue.has_pg_cron()
    with psycopg.connect(db_url, autocommit=True) as owner:
        owner.execute(
            "insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)"
            " values ('fb_worker_fold', '2020-05-05', '', 3, 2), ('fb_worker_fold', '2020-05-05', '', 7, 1)"
        )
        try:
            run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
            rows = owner.execute(
                "select shard, leads from public.traffic_lead_daily_stats where utm_source = 'fb_worker_fold'"
            ).fetchall()
            assert rows == [(0, 3)]
        finally:
            owner.execute("delete from public.traffic_lead_daily_stats where utm_source = 'fb_worker_fold'")


def test_a_login_that_may_not_fold_gets_a_warning_and_the_worker_carries_on(
    fake: FakeProviders, queue: Outbox, authenticator_url: str
) -> None:
    said: list[str] = []
    key = f"fold-warn/{uuid.uuid4()}"
    queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, key)
    report = run_worker(
        worker_settings(fake, authenticator_url), once=True, services=["sms"], echo=said.append
    )
    assert report.succeeded >= 1 and _job(queue.conn, key)["status"] == "done"
    assert any(m.startswith("lead stats not folded: permission denied") for m in said), said


def test_a_service_without_settings_is_a_config_error(fake: FakeProviders, db_url: str) -> None:
    env = worker_settings(fake, db_url).env
    settings = Settings(
        project_dir=Settings.load().project_dir, env={k: v for k, v in env.items() if k != "MOBIZON_API_KEY"}
    )
    with pytest.raises(ConfigError, match="MOBIZON_API_KEY"):
        WorkerConfig.from_settings(settings, ["sms"])
    with pytest.raises(ConfigError, match="unknown service"):
        WorkerConfig.from_settings(settings, ["fax"])
    assert "sms" not in WorkerConfig.from_settings(settings).kinds


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("OUTBOX_LEASE_SECONDS", "0", "OUTBOX_LEASE_SECONDS must be a number at least 0.5"),
        ("OUTBOX_LEASE_SECONDS", "nan", "OUTBOX_LEASE_SECONDS must be"),
        ("OUTBOX_POLL_SECONDS", "0", "OUTBOX_POLL_SECONDS must be a number above 0"),
        ("OUTBOX_HTTP_TIMEOUT_SECONDS", "ten", "OUTBOX_HTTP_TIMEOUT_SECONDS must be a number"),
        ("OUTBOX_BACKOFF_BASE_SECONDS", "-1", "OUTBOX_BACKOFF_BASE_SECONDS must be"),
        ("OUTBOX_BACKOFF_BASE_SECONDS", "60", "OUTBOX_BACKOFF_CAP_SECONDS \\(0\\) is below"),
        ("OUTBOX_RETENTION_DAYS", "0", "OUTBOX_RETENTION_DAYS must be a number at least 1"),
        ("OUTBOX_CONCURRENCY", "2.5", "OUTBOX_CONCURRENCY must be a whole number"),
        ("OUTBOX_CONCURRENCY", "0", "OUTBOX_CONCURRENCY must be a number at least 1"),
        (
            "MOBIZON_API_URL",
            "api.mobizon.kz",
            "not an absolute http\\(s\\) URL: MOBIZON_API_URL='api.mobizon.kz'",
        ),
        ("RESEND_API_URL", "https://api.resend.com:port", "RESEND_API_URL="),
        ("PLATFORM_URL", "expresscourse.onai.academy/login", "PLATFORM_URL="),
        ("AMOCRM_BASE_URL", "ftp://onai.amocrm.ru", "AMOCRM_BASE_URL"),
    ],
)
def test_bad_worker_settings_stop_it_before_it_claims_a_job(
    fake: FakeProviders, queue: Outbox, db_url: str, name: str, value: str, says: str
) -> None:
    """Checked at start-up with the setting's name: before, a URL without a scheme failed
    every attempt until the job was dead, and a backoff base above its cap stopped the run
    with the job still leased."""
    key = f"bad-setting/{uuid.uuid4()}"
    queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, key)
    settings = worker_settings(fake, db_url, **{name: value})
    with pytest.raises(ConfigError, match=says):
        run_worker(settings, once=True)
    assert _job(queue.conn, key)["attempts"] == 0 and fake.requests == []


def test_a_slow_call_keeps_its_job_through_the_lease_heartbeat(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "slow"}, "slow/1")
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "9"}, "message": ""}, delay=2.0))
    # lease 0.6 s, housekeeping every 0.3 s: without the heartbeat the job would be recovered mid-call
    settings = worker_settings(
        fake, db_url, OUTBOX_LEASE_SECONDS="0.6", OUTBOX_HTTP_TIMEOUT_SECONDS="5", OUTBOX_CONCURRENCY="1"
    )
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]))
    stopper = threading.Timer(3.5, worker.stop.set)
    stopper.start()
    report = worker.run()
    stopper.cancel()
    assert (report.succeeded, report.lost, report.recovered) == (1, 0, 0)
    assert _job(queue.conn, "slow/1") == {"id": job_id, "status": "done", "attempts": 1, "error": None}
    assert len(fake.calls("mobizon")) == 1


def test_a_worker_whose_database_vanishes_fails_loudly(fake: FakeProviders) -> None:
    settings = worker_settings(fake, "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    from onai_db.errors import DatabaseUnreachableError

    with pytest.raises(DatabaseUnreachableError):
        run_worker(settings, once=True, services=["sms"])


def test_two_workers_of_one_host_and_pid_have_distinct_ids(fake: FakeProviders, db_url: str) -> None:
    """host:pid repeats across containers (each worker is pid 1) and across Worker objects of
    one process; two workers with one id shared leases and token refreshes (found by review)."""
    config = WorkerConfig.from_settings(worker_settings(fake, db_url), ["sms"])
    first, second = Worker(config), Worker(config)
    assert first.id_prefix != second.id_prefix
    assert first.id_prefix.startswith(f"{socket.gethostname()}:{os.getpid()}:")


def test_worker_connections_notice_a_network_cut(
    fake: FakeProviders, queue: Outbox, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thread waiting in recv() on a cut network waited for ever (SIGTERM could not stop the
    worker; found by review): every worker connection has TCP keepalive and a user timeout."""
    import onai_db.worker as worker_mod

    opened: list[dict[str, str]] = []
    real = worker_mod.connect

    def recording(*args: object, **kwargs: object) -> psycopg.Connection:
        conn = real(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(conn.info.get_parameters())
        return conn

    monkeypatch.setattr(worker_mod, "connect", recording)
    queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "keepalive/1")
    run_worker(worker_settings(fake, db_url, OUTBOX_LEASE_SECONDS="0.6"), once=True, services=["sms"])
    assert opened
    for params in opened:
        assert (params.get("keepalives"), params.get("tcp_user_timeout")) == ("1", "30000"), params


def test_once_ends_while_a_provider_keeps_answering_429(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """A rate-limited job is snoozed without counting an attempt; with `Retry-After: 1` it
    was due again before a `--once` run ended, which claimed it again, for ever (found by
    review: cron piled up processes and nothing went dead). It now waits for the next run."""
    # a pass over the jobs takes longer than the snooze (4 x 0.4 s against 1 s)
    ids = [queue.enqueue("sms", {"to": "+77011234567", "text": f"r{i}"}, f"once429/{i}") for i in range(4)]
    fake.script(
        "mobizon", *[Reply(429, raw=b"Too Many Requests", headers={"retry-after": "1"}, delay=0.4)] * 500
    )
    worker = Worker(WorkerConfig.from_settings(worker_settings(fake, db_url), ["sms"], concurrency=1))
    ran = threading.Thread(target=worker.run, kwargs={"once": True})
    ran.start()
    ran.join(timeout=30)
    if ran.is_alive():
        worker.stop.set()
        ran.join(timeout=30)
        pytest.fail(f"--once did not end: {len(fake.calls('mobizon'))} calls to Mobizon")
    assert len(fake.calls("mobizon")) <= 2 * len(ids), len(fake.calls("mobizon"))
    rows = queue.conn.execute(
        "select status::text, attempts from public.outbox_jobs where id = any(%s)", (ids,)
    ).fetchall()
    assert rows == [("pending", 0)] * len(ids)


def test_a_locked_job_row_does_not_stop_the_other_leases(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The lease keeper extended one job after another on one connection without a lock
    timeout: an operator's `select ... for update` on one job held up every other lease, and
    another job's SMS was sent again each time its lease ran out (found by review)."""
    held = queue.enqueue("sms", {"to": "+77011234567", "text": "held"}, "keeper/held")
    other = queue.enqueue("sms", {"to": "+77011234568", "text": "other"}, "keeper/other")
    answer = {"code": 0, "data": {"messageId": "5"}, "message": ""}
    fake.script("mobizon", *[Reply(200, answer, delay=6)] * 10)
    settings = worker_settings(
        fake, db_url, OUTBOX_LEASE_SECONDS="1.5", OUTBOX_HTTP_TIMEOUT_SECONDS="10", OUTBOX_CONCURRENCY="3"
    )
    lines: list[str] = []
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]), echo=lines.append)
    ran = threading.Thread(target=worker.run)
    ran.start()
    try:
        with psycopg.connect(db_url) as operator:
            deadline = time.monotonic() + 10
            while len(fake.calls("mobizon")) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            operator.execute("select 1 from public.outbox_jobs where id = %s for update", (held,))
            time.sleep(5)  # past three leases of the other job
            operator.rollback()
        deadline = time.monotonic() + 20
        while (
            time.monotonic() < deadline
            and queue.conn.execute(
                "select count(*) from public.outbox_jobs where id = any(%s) and status <> 'done'",
                ([held, other],),
            ).fetchone()[0]
        ):
            time.sleep(0.1)
    finally:
        worker.stop.set()
        ran.join(timeout=30)
    texts = Counter(c.form()["text"][0] for c in fake.calls("mobizon"))
    assert texts["other"] == 1, (texts, lines)
    assert any(f"job {held}: lease not extended, its row is locked" in line for line in lines), lines


def test_a_trickling_answer_is_cut_at_its_deadline_and_the_job_retried(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """httpx's timeout bounds each read, so a provider trickling its answer kept the job
    running, its lease extended, for as long as it liked (found by review). The whole answer
    now has two HTTP timeouts; past them the call is a transient failure."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "slowly"}, "trickle/once")
    answer = {"code": 0, "data": {"messageId": "9"}, "message": ""}
    fake.script("mobizon", Reply(200, answer, trickle=0.3))  # about 15 s for the body
    started = time.monotonic()
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    assert time.monotonic() - started < 8
    assert (report.retried, report.succeeded) == (1, 1)
    logs = _logs(queue.conn, job_id)
    assert [(r[2], r[3]) for r in logs] == [("failed", 1), ("success", 2)]
    assert logs[0][4] == "mobizon: HTTP 200 answer still arriving after 2 HTTP timeouts (not read)"


def test_an_answer_past_its_size_limit_is_not_read(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    """A huge answer (a proxy's page, a runaway body) was read whole into memory (found by
    review); past 1 MiB the call is a transient failure and nothing more is read."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "big"}, "huge/1")
    fake.script("mobizon", Reply(502, raw=b"x" * (1024 * 1024 + 1)), Reply(502, raw=b"x" * (1024 * 1024)))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    assert (report.retried, report.succeeded) == (2, 1)
    errors = [r[4] for r in _logs(queue.conn, job_id)]
    assert errors == ["mobizon: HTTP 502 answer larger than 1024 KiB (not read)", "mobizon: HTTP 502", None]


def test_a_stop_gives_up_on_a_call_past_its_deadline_and_names_the_busy_thread(
    queue: Outbox, db_url: str, fake: FakeProviders
) -> None:
    """A call no timeout ends (here a transport that ignores them) is waited for up to the
    HTTP timeout + 10 s after a stop; then the worker ends, naming the busy thread, and the
    job keeps its lease until recovery retries it."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "stuck"}, "stuck/1")
    entered, release = threading.Event(), threading.Event()

    def stuck(request: httpx.Request) -> httpx.Response:
        entered.set()
        release.wait(60)
        return httpx.Response(200, json={"code": 0, "data": {"messageId": "1"}, "message": ""})

    lines: list[str] = []
    settings = worker_settings(fake, db_url, OUTBOX_CONCURRENCY="1", OUTBOX_LEASE_SECONDS="30")
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]), httpx.MockTransport(stuck), lines.append)
    ran = threading.Thread(target=worker.run)
    ran.start()
    try:
        assert entered.wait(20), lines
        worker.stop.set()
        started = time.monotonic()
        ran.join(timeout=30)
        waited = time.monotonic() - started
        assert not ran.is_alive() and 10 <= waited < 20, (waited, lines)
        assert any("1 thread(s) still busy as the worker stops" in line for line in lines), lines
        assert _job(queue.conn, "stuck/1")["status"] == "running"  # until recovery takes it back
    finally:
        release.set()
        worker.stop.set()
        ran.join(timeout=30)
        # the released thread records its answer: let it, before the next test empties the tables
        deadline = time.monotonic() + 10
        while _job(queue.conn, "stuck/1")["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert _job(queue.conn, "stuck/1")["id"] == job_id


def test_provider_text_is_stored_with_every_credential_redacted(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Telegram's description reaches the job's error, its log's note and the group's
    deactivation reason. A provider that echoes a credential (a proxy's debug page, a
    misconfigured gateway) must leave none of them in the database: no test caught a worker
    storing the text as it came, nor the AmoCRM client secret left out of the list
    (mutation review), and the deactivation reason was stored unredacted (found so)."""
    secrets = (AMO_CLIENT_SECRET, MOBIZON_KEY, SERVICE_KEY, ADMIN_BOT, LEADS_BOT, RESEND_KEY)
    echoed = "echo: " + " ".join(secrets)
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, title) values (-1001, 'leads', 'Sales A')"
    )
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'x', 'lead/50')")
    fake.script(
        "telegram",
        Reply(500, {"ok": False, "error_code": 500, "description": f"Internal Server Error {echoed}"}),
        Reply(403, {"ok": False, "error_code": 403, "description": f"Forbidden: bot was kicked {echoed}"}),
    )
    report = run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    assert (report.retried, report.skipped) == (1, 1)
    job = _job(queue.conn, "lead/50/-1001/leads")
    (failed, gone) = _logs(queue.conn, job["id"])
    (reason,) = queue.conn.execute(
        "select deactivation_reason from public.telegram_groups where chat_id = -1001"
    ).fetchone()
    stored = {"job error": job["error"], "failed log": failed[4], "gone log": gone[4], "reason": reason}
    for where, text in stored.items():
        assert text and "echo: <redacted>" in text, (where, text)
        assert not [s for s in secrets if s in text or s.split(":")[-1] in text], (where, text)


@pytest.mark.parametrize(
    ("raised", "attempts", "error"),
    [
        (TypeError("bad payload"), 1, "TypeError while handling the job"),
        (KeyError("to"), 1, "KeyError while handling the job"),
        (ValueError("bad payload"), 1, "ValueError while handling the job"),
        (RuntimeError("a bug"), 5, "unexpected RuntimeError"),  # no backoff in tests: all five
    ],
    ids=["TypeError", "KeyError", "ValueError", "RuntimeError"],
)
def test_a_handlers_own_error_is_dead_at_once_for_a_malformed_payload_and_retried_otherwise(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    raised: Exception,
    attempts: int,
    error: str,
) -> None:
    """A handler that trips over its payload (a KeyError, TypeError or ValueError) will trip
    again: the job is dead at its first attempt, not after five. Any other exception may be
    passing (a bug met once, a library's hiccup) and is retried. Only the exception's type
    is stored: its text may carry the payload (mutation review: neither was pinned)."""

    def broken(self: Handlers, job: object) -> None:
        raise raised

    monkeypatch.setattr(Handlers, "_sms", broken)
    queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "broken/1", max_attempts=5)
    run_worker(worker_settings(fake, db_url), once=True, services=["sms"])
    job = _job(queue.conn, "broken/1")
    assert (job["status"], job["attempts"], job["error"]) == ("dead", attempts, error)
    assert fake.calls("mobizon") == []


def test_a_job_for_a_group_deactivated_after_it_was_queued_is_skipped_unsent(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Jobs queued before their group was switched off (kicked from another bot's send, or
    by an operator) are not sent: the group's row is read at send time (mutation review:
    only the enqueue side was pinned)."""
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, title) values (-1001, 'leads', 'Sales A')"
    )
    queue.conn.execute("select public.enqueue_telegram_notification(array['leads'], 'x', 'lead/60')")
    queue.conn.execute(
        "select public.deactivate_telegram_group(-1001, 'switched off by an operator', 'leads')"
    )
    report = run_worker(worker_settings(fake, db_url), once=True, services=["telegram"])
    assert (report.skipped, report.succeeded) == (1, 0) and fake.calls("telegram") == []
    (log,) = _logs(queue.conn, _job(queue.conn, "lead/60/-1001/leads")["id"])
    assert log[2] == "skipped" and log[4] == "telegram group is deactivated"


def test_the_amocrm_sweep_runs_in_batches_until_one_comes_back_short() -> None:
    """The housekeeping's AmoCRM sweep queues at most 1,000 jobs a call and 10 calls a
    period: it stops at the first short batch, and a backlog of more waits for the next
    period rather than flooding the queue (mutation review: unpinned)."""

    def sweep(answers: list[int]) -> tuple[list[int], Callable[[int], int]]:
        asked: list[int] = []

        def call(limit: int) -> int:
            asked.append(limit)
            return answers[len(asked) - 1]

        return asked, call

    asked, call = sweep([1000, 1000, 3, 1000])
    assert _in_batches(call) == 2003 and asked == [1000, 1000, 1000]
    asked, call = sweep([1000] * 12)
    assert _in_batches(call) == 10_000 and len(asked) == 10
    asked, call = sweep([0])
    assert _in_batches(call) == 0 and asked == [1000]


def test_a_lost_database_is_reconnected_after_pauses_that_double_up_to_30_s(
    fake: FakeProviders, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database away for long is asked again every 30 s, not at 1 s (a storm of
    connection attempts on a restarting server) nor at ever longer waits (mutation review:
    only the first pause was pinned). The pauses are read from the worker's log, no time
    passes."""
    config = WorkerConfig.from_settings(worker_settings(fake, db_url), ["sms"], 1, False, None)
    said: list[str] = []
    worker = Worker(config, echo=said.append)
    worker._once = False
    losses = iter(range(8))

    def serve(*_args: object, **_kwargs: object) -> None:
        if next(losses, None) is not None:
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(worker, "_serve", serve)
    monkeypatch.setattr(worker.stop, "wait", lambda _pause: False)
    worker._loop("w:0", once=False)
    pauses = [line.rsplit(" in ", 1)[1] for line in said if "reconnecting in" in line]
    assert pauses == ["1 s", "2 s", "4 s", "8 s", "16 s", "30 s", "30 s", "30 s"]


# --- found by mutation testing: what each job kind refuses and sends ---


@pytest.mark.parametrize(
    ("kind", "payload", "error"),
    [
        ("sms", {"to": "+77011234567"}, "sms job needs 'to' and 'text'"),
        ("sms", {"to": "+77011234567", "text": ""}, "sms job needs 'to' and 'text'"),
        ("sms", {"text": "Комиссия 5000 KZT"}, "sms job needs 'to' and 'text'"),
        ("email", {"template": "password_changed", "name": "Ерлан"}, "email job without a recipient"),
        ("email", {"template": "welcome_v2", "to": "a@example.kz"}, "unknown e-mail template 'welcome_v2'"),
        ("telegram", {"text": "Новый лид", "bot": "leads"}, "telegram job without a numeric chat_id"),
        ("telegram", {"chat_id": "sales", "text": "x"}, "telegram job without a numeric chat_id"),
        (
            "amocrm",
            {"action": "move_stage", "amocrm_lead_id": 555},
            "move_stage needs amocrm_lead_id and lesson",
        ),
        (
            "amocrm",
            {"action": "move_stage", "amocrm_lead_id": "x", "lesson": 2},
            "move_stage needs amocrm_lead_id and lesson",
        ),
        ("amocrm", {"action": "delete_lead", "amocrm_lead_id": 555}, "unknown amocrm action 'delete_lead'"),
    ],
)
def test_a_job_its_handler_cannot_read_is_dead_at_once_and_reaches_no_provider(
    fake: FakeProviders, queue: Outbox, db_url: str, kind: str, payload: dict, error: str
) -> None:
    """A malformed payload never heals: retrying it five times only delays the dead-letter
    alert; and an SMS without a text must not go out as the word "None"."""
    key = f"malformed/{uuid.uuid4()}"
    queue.enqueue(kind, payload, key, max_attempts=5)
    run_worker(worker_settings(fake, db_url), once=True, services=[kind])
    state = _job(queue.conn, key)
    assert (state["status"], state["attempts"], state["error"]) == ("dead", 1, error)
    assert [c.route for c in fake.requests] == []


def test_the_set_password_link_leads_to_the_configured_page(
    fake: FakeProviders, queue: Outbox, db_url: str, student: tuple[uuid.UUID, str]
) -> None:
    """SET_PASSWORD_REDIRECT_URL reaches GoTrue: without it the link lands on the project's
    Site URL, not the platform's set-password page."""
    uid, email = student
    queue.conn.execute("select public.enqueue_account_email(%s, 'tripwire_welcome')", (uid,))
    page = "https://expresscourse.onai.academy/set-password"
    run_worker(worker_settings(fake, db_url, SET_PASSWORD_REDIRECT_URL=page), once=True, services=["email"])
    (auth_call,) = fake.calls("gotrue")
    assert auth_call.json() == {"type": "recovery", "email": email, "redirect_to": page}


def test_a_name_reaches_the_email_escaped_once(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    """The name comes from sign-up metadata: markup in it must stay text, and a name with an
    apostrophe or an ampersand must read as typed (found by mutation testing: the greeting
    escaped the name twice, and the reader of the mail saw "O&#x27;Brien &amp; Co")."""
    name = 'O\'Brien & Co <a href="https://evil.example/login">'
    queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz", "name": name}, "pw/markup")
    run_worker(worker_settings(fake, db_url), once=True, services=["email"])
    (sent,) = fake.calls("resend")
    html = sent.json()["html"]
    assert '<a href="https://evil' not in html
    assert (
        "Здравствуйте, O&#x27;Brien &amp; Co &lt;a href=&quot;https://evil.example/login&quot;&gt;!" in html
    )
