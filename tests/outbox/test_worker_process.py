"""The worker as a real process: killed with SIGKILL mid-job the job is retried after its
lease and not lost; SIGTERM lets the job in flight finish and exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from onai_db.outbox import Outbox
from support.fake_providers import FakeProviders, Reply
from support.outbox_fixtures import worker_env


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture()
def spawn(fake: FakeProviders, db_url: str) -> Iterator[Callable[..., subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(*args: str, **env: str) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-m", "onai_db.cli", "worker", *args],
            env={**os.environ, **worker_env(fake, db_url, **env)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _job(conn: psycopg.Connection, job_id: int) -> tuple:
    return conn.execute(
        "select status::text, attempts, lease_owner from public.outbox_jobs where id = %s", (job_id,)
    ).fetchone()


def test_a_worker_killed_mid_job_loses_nothing(fake: FakeProviders, queue: Outbox, spawn: Callable) -> None:
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "kill me"}, "kill/1")
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "1"}, "message": ""}, delay=30))
    first = spawn(
        "--services",
        "sms",
        "--concurrency",
        "1",
        OUTBOX_LEASE_SECONDS="1.5",
        OUTBOX_HTTP_TIMEOUT_SECONDS="60",
    )
    _wait_for(lambda: len(fake.calls("mobizon")) == 1, 20, "the first worker to call Mobizon")
    status, attempts, owner = _job(queue.conn, job_id)
    assert (status, attempts) == ("running", 1) and owner.split(":")[1] == str(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    second = spawn("--services", "sms", "--concurrency", "1", OUTBOX_LEASE_SECONDS="1.5")
    _wait_for(lambda: _job(queue.conn, job_id)[0] == "done", 20, "the job to be retried and finished")
    assert _job(queue.conn, job_id)[:2] == ("done", 2)
    assert len(fake.calls("mobizon")) == 2
    logs = queue.conn.execute(
        "select service_name, action, status, attempt from public.integration_logs where job_id = %s order by id",
        (job_id,),
    ).fetchall()
    assert logs == [("outbox", "lease_expired", "failed", 1), ("mobizon", "send_sms", "success", 2)]
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0


def test_sigterm_finishes_the_job_in_flight_then_exits(
    fake: FakeProviders, queue: Outbox, spawn: Callable
) -> None:
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "finish me"}, "term/1")
    later = queue.enqueue("sms", {"to": "+77011234567", "text": "not started"}, "term/2")
    queue.conn.execute(
        "update public.outbox_jobs set run_after = now() + interval '2 seconds' where id = %s", (later,)
    )
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "7"}, "message": ""}, delay=1.0))
    proc = spawn("--services", "sms", "--concurrency", "1", OUTBOX_HTTP_TIMEOUT_SECONDS="10")
    _wait_for(lambda: len(fake.calls("mobizon")) == 1, 20, "the worker to call Mobizon")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    assert _job(queue.conn, job_id) == ("done", 1, None)
    assert _job(queue.conn, later) == ("pending", 0, None)
    assert "1 sent" in proc.stderr.read()


def test_a_stop_during_start_up_housekeeping_is_not_ignored(
    fake: FakeProviders, queue: Outbox, owner_conn: psycopg.Connection, db_url: str, spawn: Callable
) -> None:
    """Start-up housekeeping waiting on a lock (a long migration, a session left in a
    transaction) ignored SIGTERM until the lock came free, then said "started" and served
    (found by review). The stop cancels its statement: the worker exits at once, claims
    nothing, and says why."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "not before the lock"}, "startup-stop/1")
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table public.outbox_jobs in access exclusive mode")
        proc = spawn("--services", "sms", "--concurrency", "1")
        waiting = (
            "select count(*) from pg_catalog.pg_stat_activity where datname = current_database()"
            " and application_name = 'onai-db worker' and wait_event_type = 'Lock'"
        )
        _wait_for(lambda: owner_conn.execute(waiting).fetchone()[0] == 1, 20, "housekeeping to wait")
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=10) == 0
        finally:
            holder.rollback()
    err = proc.stderr.read()
    assert "stopped during start-up housekeeping; no job was claimed" in err, err
    assert "started:" not in err and "claimed 0" in err, err
    assert _job(queue.conn, job_id) == ("pending", 0, None)
    assert fake.calls("mobizon") == []

    # the same for a running worker's periodic housekeeping (it was reported as "database
    # unreachable": a cancelled statement is an OperationalError)
    queue.conn.execute(
        "update public.outbox_jobs set run_after = now() + interval '1 hour' where id = %s", (job_id,)
    )
    proc = spawn("--services", "sms", "--concurrency", "1", OUTBOX_HOUSEKEEPING_SECONDS="0.5")
    serving = (
        "select count(*) from pg_catalog.pg_stat_activity where datname = current_database()"
        " and application_name = 'onai-db worker' and query like '%claim_outbox_jobs%'"
    )
    _wait_for(lambda: owner_conn.execute(serving).fetchone()[0] == 1, 20, "the worker to serve")
    with psycopg.connect(db_url) as holder:
        holder.execute("lock table public.outbox_jobs in access exclusive mode")
        recovering = waiting + " and query like '%recover_expired_outbox_leases%'"
        _wait_for(lambda: owner_conn.execute(recovering).fetchone()[0] == 1, 20, "housekeeping to wait")
        proc.send_signal(signal.SIGTERM)
        _wait_for(
            lambda: owner_conn.execute(recovering).fetchone()[0] == 0, 5, "housekeeping to be cancelled"
        )
        holder.rollback()  # the serving thread's claim waits too; it ends with its statement
    assert proc.wait(timeout=10) == 0
    err = proc.stderr.read()
    assert "housekeeping cancelled by the stop" in err and "unreachable" not in err, err


def test_sigterm_during_a_trickling_answer_ends_with_the_answers_deadline_without_spinning(
    fake: FakeProviders, queue: Outbox, spawn: Callable
) -> None:
    """A provider trickling its answer (each byte within the read timeout) kept a stopped
    worker alive until it was killed, its main loop at 100% of a core (found by review). The
    answer now has a deadline of its own (two HTTP timeouts): the stop waits for it, idle,
    the job is recorded for a retry (at least once) and the worker exits long before the
    stop's own deadline (the HTTP timeout + 10 s)."""
    import resource

    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "slowly"}, "trickle/1")
    answer = {"code": 0, "data": {"messageId": "9"}, "message": ""}
    fake.script("mobizon", Reply(200, answer, trickle=0.5))  # about 25 s for the body
    proc = spawn("--services", "sms", "--concurrency", "1", OUTBOX_HTTP_TIMEOUT_SECONDS="2")
    _wait_for(lambda: len(fake.calls("mobizon")) == 1, 20, "the worker to call Mobizon")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert proc.wait(timeout=20) == 0
    waited = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert waited < 8, waited  # the answer's deadline: 2 x 2 s from the call, one read more
    assert cpu < 0.5 * max(waited, 1.0), (cpu, waited)  # not a busy loop
    err = proc.stderr.read()
    assert "still busy" not in err, err
    status, attempts, owner = _job(queue.conn, job_id)
    assert (status, attempts, owner) == ("pending", 1, None), (status, attempts, owner)
    (error,) = queue.conn.execute(
        "select last_error from public.outbox_jobs where id = %s", (job_id,)
    ).fetchone()
    assert error == "mobizon: HTTP 200 answer still arriving after 2 HTTP timeouts (not read)"


def test_a_lost_database_connection_is_reconnected_and_the_outcome_recorded(
    fake: FakeProviders, queue: Outbox, owner_conn: psycopg.Connection, spawn: Callable
) -> None:
    """The database drops every worker connection while a provider call is in flight (a
    restart, a failover): the worker reconnects, records the answer it got (no second SMS)
    and goes on serving. Before, the thread died, the worker exited 1 and the job stayed
    leased until recovery sent the SMS again."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "through a restart"}, "reconnect/1")
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "41"}, "message": ""}, delay=1.5))
    proc = spawn(
        "--services", "sms", "--concurrency", "1", OUTBOX_LEASE_SECONDS="30", OUTBOX_HTTP_TIMEOUT_SECONDS="10"
    )
    _wait_for(lambda: len(fake.calls("mobizon")) == 1, 20, "the worker to call Mobizon")
    terminated = owner_conn.execute(
        "select count(pg_catalog.pg_terminate_backend(pid)) from pg_catalog.pg_stat_activity"
        " where datname = current_database() and application_name = 'onai-db worker'"
    ).fetchone()[0]
    assert terminated >= 1  # the job's thread (the lease keeper connects at its first beat)
    _wait_for(lambda: _job(queue.conn, job_id)[0] == "done", 30, "the answer to be recorded")
    assert _job(queue.conn, job_id) == ("done", 1, None)
    assert proc.poll() is None, "the worker exited on a lost connection"

    later = queue.enqueue("sms", {"to": "+77011234567", "text": "after the restart"}, "reconnect/2")
    _wait_for(lambda: _job(queue.conn, later)[0] == "done", 30, "the next job to be served")
    assert len(fake.calls("mobizon")) == 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    err = proc.stderr.read()
    assert "started: sms; 1 thread(s); database " in err
    assert "database connection lost" in err and "reconnecting in 1 s" in err
    assert "claimed 2: 2 sent" in err


def test_once_exits_1_when_a_job_went_dead(fake: FakeProviders, queue: Outbox, spawn: Callable) -> None:
    queue.enqueue("sms", {"to": "+77011234567", "text": "x"}, "dead-once/1", max_attempts=1)
    fake.script("mobizon", Reply(200, {"code": 999, "data": [], "message": "Internal error"}))
    proc = spawn("--once", "--services", "sms")
    assert proc.wait(timeout=30) == 1
    err = proc.stderr.read()
    assert "1 dead" in err and "1 job(s) went dead in this run" in err and "--requeue-dead" in err
    assert "is dead: mobizon: code 999" in err


def test_an_empty_services_list_is_refused(fake: FakeProviders, queue: Outbox, spawn: Callable) -> None:
    proc = spawn("--once", "--services", " , ")
    assert proc.wait(timeout=30) == 2
    assert "--services names no service" in proc.stderr.read()


def test_once_records_the_answer_it_got_before_ending_on_a_lost_connection(
    fake: FakeProviders, queue: Outbox, owner_conn: psycopg.Connection, spawn: Callable
) -> None:
    """`--once` ends on a lost connection (cron runs it again), but first records the answer of
    the call it made: before, the job stayed leased and the next run sent the SMS again."""
    job_id = queue.enqueue("sms", {"to": "+77011234567", "text": "once"}, "once-lost/1")
    fake.script("mobizon", Reply(200, {"code": 0, "data": {"messageId": "42"}, "message": ""}, delay=1.5))
    proc = spawn("--once", "--services", "sms", "--concurrency", "1", OUTBOX_HTTP_TIMEOUT_SECONDS="10")
    _wait_for(lambda: len(fake.calls("mobizon")) == 1, 20, "the worker to call Mobizon")
    owner_conn.execute(
        "select pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity"
        " where datname = current_database() and application_name = 'onai-db worker'"
    )
    assert proc.wait(timeout=30) == 1
    assert _job(queue.conn, job_id) == ("done", 1, None)
    assert len(fake.calls("mobizon")) == 1
