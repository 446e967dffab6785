"""``onai-db monitor`` and ``onai-db worker`` as commands, the monitoring views, the demo
library functions, and the pg_cron schedule (in the cluster's ``postgres`` database)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from rich.console import Console
from typer.testing import CliRunner

from onai_db.cli import app
from onai_db.connection import describe_url
from onai_db.errors import ConfigError
from onai_db.local import DEFAULT_DB, LocalStack
from onai_db.monitor import render, snapshot
from onai_db.notifications import QueuedNotifications, enqueue_demo_notifications
from onai_db.outbox import Outbox
from onai_db.worker import run_worker
from support.cast import create_auth_user
from support.fake_providers import FakeProviders, Reply
from support.json_output import json_document
from support.outbox_fixtures import worker_env, worker_settings

runner = CliRunner()


def _activity(queue: Outbox, fake: FakeProviders, db_url: str) -> None:
    """One sent SMS, one dead SMS, one pending e-mail, Telegram groups in both states."""
    from onai_db.worker import run_worker

    queue.enqueue("sms", {"to": "+77011234567", "text": "ok"}, "mon/ok")
    queue.enqueue("sms", {"to": "+77011234567", "text": "bad"}, "mon/dead", max_attempts=1)
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "1"}, "message": ""}))
    fake.script("mobizon", Reply(200, {"code": 1, "data": {"recipient": "invalid"}, "message": "Ошибка"}))
    run_worker(worker_settings(fake, db_url, OUTBOX_CONCURRENCY="1"), once=True, services=["sms"])
    queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz"}, "mon/pending")
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, is_active, deactivated_at, deactivation_reason)"
        " values (-1, 'leads', true, null, null), (-2, 'leads', false, now(), 'Forbidden: bot was kicked')"
    )
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, bot, title, is_active, deactivated_at,"
        " deactivation_reason) values (-3, 'students', 'mentor', 'Поток 7', false, now() - interval '1 day',"
        " 'Bad Request: chat not found')"
    )


def test_snapshot_and_render(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    _activity(queue, fake, db_url)
    snap = snapshot(queue.conn)
    sms = next(r for r in snap.queue if r["kind"] == "sms")
    email = next(r for r in snap.queue if r["kind"] == "email")
    assert (sms["done"], sms["dead"], email["pending"], email["due"]) == (1, 1, 1, 1)
    assert email["oldest_pending_age"].total_seconds() >= 0
    (mobizon,) = [r for r in snap.daily if r["service_name"] == "mobizon"]
    assert (mobizon["successes"], mobizon["failures"]) == (1, 1)
    assert snap.errors[0]["error_message"] == "mobizon: code 1 fields: recipient"
    assert [d["idempotency_key"] for d in snap.dead] == ["mon/dead"]
    assert snap.telegram[0] == {
        "group_type": "leads",
        "active": 1,
        "deactivated": 1,
        "last_deactivated_at": snap.telegram[0]["last_deactivated_at"],
    }
    # the deactivated chats themselves, newest first, with bot and reason (the counts named neither)
    assert [(r["chat_id"], r["bot"], r["deactivation_reason"]) for r in snap.telegram_deactivated] == [
        (-2, "leads", "Forbidden: bot was kicked"),
        (-3, "mentor", "Bad Request: chat not found"),
    ]
    assert not snap.truncated["telegram_deactivated"]
    assert len(snapshot(queue.conn, chats=1).telegram_deactivated) == 1
    assert snapshot(queue.conn, chats=1).truncated["telegram_deactivated"]
    assert not snapshot(queue.conn, chats=2).truncated["telegram_deactivated"]  # exactly the limit: no "more"
    console = Console(record=True, width=160)
    render(snap, console)
    text = console.export_text()
    for needle in ("Outbox queue", "mobizon", "mobizon: code 1 fields: recipient", "mon/dead", "AmoCRM:"):
        assert needle in text
    chats = text[text.index("Deactivated Telegram chats") :]
    assert "-3" in chats and "Поток 7" in chats and "mentor" in chats and "chat not found" in chats, chats


def test_monitor_command_json(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    _activity(queue, fake, db_url)
    result = runner.invoke(app, ["monitor", "--json"], env={"ONAI_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    doc = json_document(result.stdout)
    assert {r["kind"] for r in doc["queue"]} == {"email", "sms", "telegram", "amocrm"}
    assert doc["dead"][0]["idempotency_key"] == "mon/dead"
    # which database the figures are about (found by the operator review: an empty exported
    # TRAFFIC_DB_URL sent commands to the local stack, and monitor never said where it looked)
    where = {"database": describe_url(db_url), "from": "ONAI_DB_URL in the environment"}
    assert doc["database"] == where
    table = runner.invoke(app, ["monitor"], env={"ONAI_DB_URL": db_url, "COLUMNS": "200"})
    assert table.exit_code == 0 and "Dead jobs" in table.output and "mon/dead" in table.output
    assert table.output.splitlines()[0] == f"database {where['database']} (ONAI_DB_URL in the environment)"


def test_worker_command_once_and_requeue(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    queue.enqueue("sms", {"to": "+77011234567", "text": "cli"}, "cli/1", max_attempts=1)
    fake.script("mobizon", Reply(500, raw=b"oops"))
    env = worker_env(fake, db_url)
    result = runner.invoke(app, ["worker", "--once", "--services", "sms"], env=env)
    assert result.exit_code == 1, result.output  # a job went dead: cron is told
    assert "1 dead" in result.output
    result = runner.invoke(app, ["worker", "--requeue-dead", "--services", "sms"], env=env)
    assert (
        f"requeued 1 dead job(s) in {describe_url(db_url)} (ONAI_DB_URL in the environment)" in result.output
    )
    result = runner.invoke(app, ["worker", "--once", "--services", "sms", "--concurrency", "2"], env=env)
    assert "1 sent" in result.output and result.exit_code == 0
    bad = runner.invoke(app, ["worker", "--once", "--services", "fax"], env=env)
    assert bad.exit_code != 0


def test_url_option_beats_the_settings(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    """`worker` and `monitor` take the database as `--url` too, ahead of every setting, and say
    so (they had no option: only the environment could point them elsewhere; found by the
    operator review). An empty `--url` is refused, not read as "use the settings"."""
    elsewhere = db_url.rsplit("/", 1)[0] + "/no_such_database_for_url_option"
    env = worker_env(fake, elsewhere)  # the settings name a database that does not exist
    queue.enqueue("sms", {"to": "+77011234567", "text": "url"}, "url/1", max_attempts=1)
    fake.script("mobizon", Reply(500, raw=b"oops"))
    sent = runner.invoke(app, ["worker", "--once", "--services", "sms", "--url", db_url], env=env)
    assert sent.exit_code == 1 and "1 dead" in sent.output, sent.output
    assert f"database {describe_url(db_url)}" in sent.output, sent.output
    doc = json_document(runner.invoke(app, ["monitor", "--json", "--url", db_url], env=env).stdout)
    assert doc["database"] == {"database": describe_url(db_url), "from": "--url"}
    assert [j["idempotency_key"] for j in doc["dead"]] == ["url/1"]
    revived = runner.invoke(app, ["worker", "--requeue-dead", "--url", db_url], env=env)
    assert f"requeued 1 dead job(s) in {describe_url(db_url)} (--url)" in revived.output, revived.output
    for args in (["monitor", "--url", " "], ["worker", "--once", "--services", "sms", "--url", ""]):
        refused = runner.invoke(app, args, env=env)
        # a ConfigError: the entry point prints its line and exits 2 (tests/test_cli_errors.py)
        assert isinstance(refused.exception, ConfigError), refused.output
        assert str(refused.exception).startswith("--url is empty"), refused.exception


def test_worker_once_exits_1_for_a_dead_job_among_sent_ones(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Cron reads the exit code: a run that sent one job and let another go dead failed
    (mutation review: only a run whose single job went dead was pinned)."""
    queue.enqueue("sms", {"to": "+77011234567", "text": "sent"}, "cli/sent", max_attempts=1)
    queue.enqueue("sms", {"to": "+77011234568", "text": "dead"}, "cli/dead", max_attempts=1)
    fake.script(
        "mobizon",
        Reply(200, {"code": 0, "data": {"campaignId": "1", "messageId": "2", "status": 1}, "message": ""}),
        Reply(500, raw=b"x"),
    )
    env = worker_env(fake, db_url, OUTBOX_CONCURRENCY="1")
    result = runner.invoke(app, ["worker", "--once", "--services", "sms"], env=env)
    assert result.exit_code == 1, result.output
    assert "1 sent" in result.output and "1 dead" in result.output
    assert "1 job(s) went dead in this run" in str(result.exception)


def test_dry_run_refuses_a_remote_database(fake: FakeProviders) -> None:
    from onai_db.errors import ConfigError
    from onai_db.worker import WorkerConfig

    remote = "postgresql://postgres:x@db.example.supabase.co:5432/postgres"
    settings = worker_settings(fake, remote)
    with pytest.raises(ConfigError, match="local database"):
        WorkerConfig.from_settings(settings, dry_run=True)
    assert WorkerConfig.from_settings(settings, dry_run=False).db_url == remote
    # libpq connects to hostaddr whatever host says
    for disguised in (
        "postgresql://postgres:x@localhost:5432/postgres?hostaddr=203.0.113.5",
        "host=localhost hostaddr=203.0.113.5 dbname=postgres user=postgres",
    ):
        with pytest.raises(ConfigError, match="local database"):
            WorkerConfig.from_settings(worker_settings(fake, disguised), dry_run=True)


@pytest.fixture()
def demo_people(owner_conn: psycopg.Connection) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
    email = f"demo-{uuid.uuid4().hex[:8]}@example.kz"
    uid = create_auth_user(owner_conn, email, ("student",))
    lead = owner_conn.execute(
        "insert into public.traffic_leads (name, phone, source) values ('Demo', %s, 'profitest') returning id",
        (f"+7705{uuid.uuid4().int % 10**7:07d}",),
    ).fetchone()[0]
    yield uid, lead
    owner_conn.execute("delete from private.traffic_lead_identifiers where lead_id = %s", (lead,))
    owner_conn.execute("delete from public.traffic_leads where id = %s", (lead,))
    owner_conn.execute("delete from auth.users where id = %s", (uid,))


def test_demo_enqueue_and_dry_run_worker(
    fake: FakeProviders, queue: Outbox, db_url: str, demo_people: tuple[uuid.UUID, uuid.UUID], cast: object
) -> None:
    uid, lead = demo_people
    queue.conn.execute(
        "insert into public.telegram_groups (chat_id, group_type) values (-501, 'leads'), (-502, 'leads_profitest')"
    )
    queued = enqueue_demo_notifications(queue.conn)
    assert queued.welcome_emails >= 2  # the cast's student and ours
    key = f"tripwire_welcome/{uid}"
    assert (
        queue.conn.execute(
            "select count(*) from public.outbox_jobs where idempotency_key = %s", (key,)
        ).fetchone()[0]
        == 1
    )
    assert queued.telegram_jobs >= 2 and queued.amocrm_sync_jobs >= 1
    total = queue.conn.execute("select count(*) from public.outbox_jobs").fetchone()[0]
    again = enqueue_demo_notifications(queue.conn)
    assert again == QueuedNotifications(
        queued.welcome_emails, queued.telegram_jobs, 0
    )  # offered again, none queued
    assert total == queue.conn.execute("select count(*) from public.outbox_jobs").fetchone()[0]
    text = queue.conn.execute(
        "select payload ->> 'text' from public.outbox_jobs where idempotency_key = %s",
        (f"lead_notification/{lead}/-502/leads_profitest",),
    ).fetchone()[0]
    assert text.startswith("Новый лид (ПРОФТЕСТ)")
    # a dry run sends nothing anywhere and finishes every job
    result = runner.invoke(app, ["worker", "--once", "--dry-run"], env={"ONAI_DB_URL": db_url})
    assert result.exit_code == 0, result.output
    assert fake.requests == []
    left = queue.conn.execute("select count(*) from public.outbox_jobs where status <> 'done'").fetchone()[0]
    assert left == 0
    assert queue.conn.execute(
        "select amocrm_synced from public.traffic_leads where id = %s", (lead,)
    ).fetchone()[0]


def test_pg_cron_schedules_housekeeping_where_it_exists(stack: LocalStack, queue: Outbox) -> None:
    # the test database has no pg_cron: the migration applied and scheduled nothing
    assert not queue.has_pg_cron()
    # the cluster's postgres database (what `onai-db local up` builds) has pg_cron
    stack.up(DEFAULT_DB)
    with psycopg.connect(stack.database_url(DEFAULT_DB), autocommit=True) as conn:
        jobs = dict(
            conn.execute("select jobname, command from cron.job where jobname like 'onai-%'").fetchall()
        )
    assert jobs == {
        "onai-outbox-recover-leases": "select public.recover_expired_outbox_leases()",
        "onai-integration-retention": "select * from public.prune_integration_history(30)",
        "onai-lead-stats-fold": "select private.fold_lead_daily_stats()",
    }


def test_provider_text_is_shown_as_it_is_and_never_breaks_the_monitor_or_the_worker(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Rich read error text as markup: "[/b]" in a Telegram description crashed `monitor` and
    the worker's dead-job line, "[field: X]" in an AmoCRM error vanished, and an ESC reached
    the terminal (found by review)."""
    queue.conn.execute(
        "insert into public.integration_logs (service_name, action, status, error_message) values"
        " ('amocrm', 'sync_lead', 'failed', 'Request validation failed [custom_fields_values.0.field_code:"
        " NotSupportedChoice]'), ('telegram', 'send_message', 'failed', e'x [/b] y \\x1b[2J')"
    )
    table = runner.invoke(app, ["monitor"], env={"ONAI_DB_URL": db_url, "COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "[custom_fields_values.0.field_code: NotSupportedChoice]" in table.output
    assert "x [/b] y \\x1b[2J" in table.output and "\x1b[2J" not in table.output
    from onai_db.render import one_line, plain

    assert plain("a \u202e b").plain == "a \\u202e b"  # a bidi override would reorder the line
    # invisible characters a table counts as no width, and the separators many viewers break
    # lines at, in a label (found by review: passed through, misaligning the report's rows)
    assert plain("a\u200bb\ufeffc\u061cd").plain == "a\\u200bb\\ufeffc\\u061cd"
    assert one_line("ls\u2028sep\u2029ps\nnl").plain == "ls\\u2028sep\\u2029ps\\nnl"

    queue.conn.execute("delete from public.integration_logs")
    queue.conn.execute("insert into public.telegram_groups (chat_id, group_type) values (-77, 'leads')")
    for n in (1, 2):
        queue.conn.execute(
            "select public.enqueue_telegram_notification(array['leads'], %s, %s)", (f"msg {n}", f"markup/{n}")
        )
    fake.script(
        "telegram",
        Reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: Unsupported end tag [/b]"}),
    )
    env = worker_env(fake, db_url, OUTBOX_CONCURRENCY="1", COLUMNS="250")
    result = runner.invoke(app, ["worker", "--once", "--services", "telegram"], env=env)
    assert "internal error" not in result.output, result.output
    assert "Unsupported end tag [/b]" in result.output
    assert (
        queue.conn.execute(
            "select count(*) from public.outbox_jobs where status = 'pending' and kind = 'telegram'"
        ).fetchone()[0]
        == 0
    )  # the second job was served too


def test_times_are_utc_and_a_waiting_retry_is_not_a_missing_worker(
    queue: Outbox, owner_conn: psycopg.Connection, db_url: str
) -> None:
    """ "when (UTC)" showed the session's time zone; "oldest pending" counted a retry waiting
    out its backoff as days of waiting, and a running job whose worker died looked normal."""
    waiting = queue.enqueue("sms", {"to": "+77011234567", "text": "later"}, "tz/retry")
    due = queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz"}, "tz/due")
    orphan = queue.enqueue("sms", {"to": "+77011234567", "text": "orphan"}, "tz/orphan")
    owner_conn.execute(
        "update public.outbox_jobs set created_at = now() - interval '3 days',"
        " run_after = now() + interval '1 hour' where id = %s",
        (waiting,),
    )
    owner_conn.execute(
        "update public.outbox_jobs set created_at = now() - interval '10 minutes',"
        " run_after = now() - interval '10 minutes' where id = %s",
        (due,),
    )
    assert queue.claim("gone-worker", 1, 60, ["sms"])[0].id == orphan
    owner_conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 minute' where id = %s",
        (orphan,),
    )
    queue.conn.execute(
        "insert into public.integration_logs (service_name, action, status, error_message, created_at)"
        " values ('mobizon', 'send_sms', 'failed', 'at noon UTC', '2026-01-05 12:00:00+00')"
    )
    queue.conn.execute("set timezone = 'Asia/Almaty'")
    snap = snapshot(queue.conn)
    assert snap.errors[0]["created_at"].isoformat() == "2026-01-05T12:00:00+00:00"
    sms = next(r for r in snap.queue if r["kind"] == "sms")
    email = next(r for r in snap.queue if r["kind"] == "email")
    assert sms["oldest_due_age"] is None and sms["expired_leases"] == 1
    assert 590 <= email["oldest_due_age"].total_seconds() < 900
    # queued just now with a run_after long past: due since it was queued, not for 400 days
    queue.conn.execute(
        "select public.enqueue_outbox_job('telegram', '{\"text\": \"x\"}', 'tz/backdated', now() - interval '400 days')"
    )
    telegram = next(r for r in snapshot(queue.conn).queue if r["kind"] == "telegram")
    assert telegram["oldest_due_age"].total_seconds() < 60
    console = Console(record=True, width=200)
    render(snap, console)
    text = console.export_text()
    assert "2026-01-05 12:00:00" in text
    assert "email: 1 job(s) due, the oldest for 10m: no worker serves them" in text
    assert "1 running job(s) with an expired lease" in text

    doc = json.loads(
        runner.invoke(app, ["monitor", "--json"], env={"ONAI_DB_URL": db_url, "PGTZ": "Asia/Almaty"}).output
    )
    email_doc = next(r for r in doc["queue"] if r["kind"] == "email")
    assert (
        isinstance(email_doc["oldest_due_age_seconds"], float) and email_doc["oldest_due_age_seconds"] >= 590
    )
    assert doc["errors"][0]["created_at"] == "2026-01-05T12:00:00+00:00"
    assert (
        doc["truncated"] == {"errors": False, "dead": False, "telegram_deactivated": False}
        and "worker_connections" in doc
    )


def test_a_kind_a_worker_is_draining_is_a_backlog_not_a_missing_worker(
    queue: Outbox, owner_conn: psycopg.Connection
) -> None:
    """A worker draining a long backlog of one kind was reported in red as "no worker serves
    them", with every kind's due jobs summed (found by review). Each kind is judged alone:
    jobs running under a live lease mean a worker serves it."""
    backlog = [queue.enqueue("amocrm", {"lead_id": str(uuid.uuid4())}, f"backlog/{i}") for i in range(3)]
    owner_conn.execute(
        "update public.outbox_jobs set created_at = now() - interval '10 minutes',"
        " run_after = now() - interval '10 minutes' where id = any(%s)",
        (backlog,),
    )
    assert len(queue.claim("busy-worker", 1, 300, ["amocrm"])) == 1  # its lease is live
    queue.enqueue("sms", {"to": "+77011234567", "text": "fresh"}, "backlog/sms")  # due just now
    console = Console(record=True, width=220)
    render(snapshot(queue.conn), console)
    text = console.export_text()
    assert "amocrm: 2 job(s) due, the oldest for 10m: a backlog; 1 running now" in text, text
    assert "no worker serves" not in text and "sms:" not in text, text


def test_a_login_under_row_level_security_is_refused_not_told_all_is_well(
    stack: LocalStack, test_db: str
) -> None:
    with psycopg.connect(stack.database_url(test_db, "supabase_admin"), autocommit=True) as conn:
        conn.execute("set role pg_read_all_data")  # may read every table, but RLS applies
        from onai_db.errors import ConfigError

        with pytest.raises(ConfigError, match="row-level security applies"):
            snapshot(conn)


def test_a_constraint_not_validated_is_shown_and_ages_keep_their_keys(
    clean_outbox: psycopg.Connection, db_url: str
) -> None:
    """A migration that finds rows breaking its new rule leaves the constraint not validated
    and says so in a warning, which `supabase db push` does not show (found by review): the
    monitor names it with the way out. An empty queue's ages are `<name>_seconds` null, the
    key a script reads when there is an age (found by review: the key moved)."""
    table, name = "public.telegram_groups", "telegram_groups_monitor_probe"
    conn = clean_outbox
    conn.execute(
        "insert into public.telegram_groups (chat_id, group_type, is_active) values (-99, 'leads', true)"
    )
    conn.execute(f"alter table {table} add constraint {name} check (chat_id < -100) not valid")
    try:
        snap = snapshot(conn)
        assert [(c["table_name"], c["constraint_name"]) for c in snap.constraints_not_validated] == [
            ("telegram_groups", name)
        ]
        console = Console(record=True, width=400)
        render(snap, console)
        text = console.export_text()
        assert f"constraint {name} on telegram_groups is not validated" in text
        assert f"alter table telegram_groups validate constraint {name}" in text
        # the condition rows are found by, without the NOT VALID that is no part of it
        assert "rows stored before it break CHECK ((chat_id < '-100'::integer)); it checks" in text
        doc = snap.as_dict()
        assert doc["constraints_not_validated"][0]["definition"] == "CHECK ((chat_id < '-100'::integer))"
        assert all(
            r["oldest_due_age_seconds"] is None and r["oldest_pending_age_seconds"] is None
            for r in doc["queue"]
        )
    finally:
        conn.execute(f"alter table {table} drop constraint {name}")
        conn.execute("delete from public.telegram_groups where chat_id = -99")
    assert snapshot(conn).constraints_not_validated == []


def test_a_kind_whose_only_running_job_lost_its_lease_has_no_worker(
    queue: Outbox, owner_conn: psycopg.Connection
) -> None:
    """A job whose lease lapsed (its worker died) is no sign of a worker: the monitor said "a
    backlog; a worker serves this kind" with none alive (mutation review)."""
    queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz"}, "mon2/due")
    queue.enqueue("email", {"template": "password_changed", "to": "b@example.kz"}, "mon2/orphan")
    assert len(queue.claim("gone-worker", 1, 60, ["email"])) == 1
    owner_conn.execute(
        "update public.outbox_jobs set created_at = now() - interval '10 minutes',"
        " run_after = now() - interval '10 minutes' where idempotency_key like 'mon2/%' and status = 'pending'"
    )
    owner_conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 minute'"
        " where idempotency_key like 'mon2/%' and status = 'running'"
    )
    console = Console(record=True, width=220)
    render(snapshot(queue.conn), console)
    text = console.export_text()
    assert "email: 1 job(s) due, the oldest for 10m: no worker serves them" in text, text
    assert "a backlog" not in text, text


def test_requeue_dead_revives_only_the_services_named(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """A dead e-mail revived by `--requeue-dead --services sms` is sent by the next worker:
    a message the operator meant to leave dead (found by mutation testing)."""
    sms = queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "rq/sms", max_attempts=1)
    email = queue.enqueue(
        "email", {"template": "password_changed", "to": "a@example.kz"}, "rq/email", max_attempts=1
    )
    fake.script("mobizon", Reply(500, raw=b"x"))
    fake.script("resend", Reply(500, raw=b"x"))
    run_worker(worker_settings(fake, db_url), once=True, services=["sms", "email"])
    status = "select id, status::text from public.outbox_jobs where id in (%s, %s) order by id"
    assert dict(queue.conn.execute(status, (sms, email)).fetchall()) == {sms: "dead", email: "dead"}
    result = CliRunner().invoke(
        app, ["worker", "--requeue-dead", "--services", "sms"], env=worker_env(fake, db_url)
    )
    assert result.exit_code == 0 and "requeued 1 dead job(s)" in result.output, result.output
    assert dict(queue.conn.execute(status, (sms, email)).fetchall()) == {sms: "pending", email: "dead"}
