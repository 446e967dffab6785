"""The outbox queue in SQL: enqueue, claim with leases, complete, fail with backoff, dead,
requeue, lease recovery, release, retention; and bad input rejected clearly."""

from __future__ import annotations

import threading

import psycopg
import pytest

from onai_db.outbox import Outbox, connect


def _status(conn: psycopg.Connection, job_id: int) -> dict:
    row = conn.execute(
        "select status::text, attempts, run_after - now() as wait, lease_owner, last_error"
        " from public.outbox_jobs where id = %s",
        (job_id,),
    ).fetchone()
    assert row is not None
    return {
        "status": row[0],
        "attempts": row[1],
        "wait": row[2].total_seconds() if row[2] is not None else None,  # run_after is NULL unless pending
        "owner": row[3],
        "error": row[4],
    }


def _logs(conn: psycopg.Connection, job_id: int) -> list[tuple]:
    return conn.execute(
        "select service_name, action, status, attempt, error_message from public.integration_logs"
        " where job_id = %s order by id",
        (job_id,),
    ).fetchall()


def test_enqueue_is_idempotent_per_key(queue: Outbox) -> None:
    first = queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz"}, "pw/1")
    again = queue.enqueue("email", {"template": "password_changed", "to": "other@example.kz"}, "pw/1")
    assert first == again
    assert queue.conn.execute("select count(*) from public.outbox_jobs").fetchone()[0] == 1
    # the job that holds the key is never changed: a job under way would change its recipient,
    # and personal data would come back into a payload retention emptied (mutation review)
    assert queue.conn.execute(
        "select payload ->> 'to' from public.outbox_jobs where id = %s", (first,)
    ).fetchone() == ("a@example.kz",)


@pytest.mark.parametrize("key", ["password", "generated_password", "action_link", "access_token"])
def test_payloads_with_secrets_are_refused(queue: Outbox, key: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        queue.enqueue("email", {"to": "a@example.kz", key: "x"}, f"secret/{key}")
    assert err.value.diag.message_hint and "ids and template names" in err.value.diag.message_hint


def test_the_table_itself_refuses_secret_payloads(queue: Outbox) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        queue.conn.execute(
            "insert into public.outbox_jobs (kind, payload, idempotency_key)"
            " values ('email', '{\"generated_password\": \"x\"}', 'direct/1')"
        )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("select public.enqueue_outbox_job('sms', '[]'::jsonb, 'k')", "JSON object payload"),
        ("select public.enqueue_outbox_job('sms', '{}'::jsonb, '')", "idempotency key"),
        ("select public.enqueue_outbox_job('sms', '{}'::jsonb, 'k', null, 0)", "max_attempts"),
        ("select * from public.claim_outbox_jobs('', 1, 10)", "worker id"),
        ("select * from public.claim_outbox_jobs('w', 0, 10)", "claim limit"),
        ("select * from public.claim_outbox_jobs('w', 1, 0)", "lease"),
        ("select * from public.prune_integration_history(0)", "one day"),
    ],
)
def test_bad_arguments_raise_22023_with_a_message(queue: Outbox, call: str, message: str) -> None:
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message):
        queue.conn.execute(call)


def test_claim_leases_due_jobs_oldest_first_and_not_future_ones(queue: Outbox) -> None:
    a = queue.enqueue("sms", {"to": "+77011234567", "text": "a"}, "a")
    b = queue.enqueue("sms", {"to": "+77011234567", "text": "b"}, "b")
    queue.conn.execute(
        "update public.outbox_jobs set run_after = now() + interval '1 hour' where id = %s", (b,)
    )
    jobs = queue.claim("w1", 10, 30)
    assert [j.id for j in jobs] == [a]
    job = jobs[0]
    assert job.status == "running" and job.attempts == 1 and job.lease_owner == "w1"
    assert queue.claim("w2", 10, 30) == []


def test_claim_returns_a_batch_oldest_run_after_first(queue: Outbox) -> None:
    ids = [queue.enqueue("sms", {"to": "+77011234567", "text": t}, f"order-{t}") for t in "abc"]
    # first the oldest job is the most overdue, then the newest: the order follows run_after, not id
    for minutes, job_id in zip((1, 2, 3), ids, strict=True):
        queue.conn.execute(
            "update public.outbox_jobs set run_after = now() - make_interval(mins => %s) where id = %s",
            (4 - minutes, job_id),
        )
    jobs = queue.claim("w1", 10, 30)
    assert [j.id for j in jobs] == ids
    for minutes, job_id in zip((3, 2, 1), ids, strict=True):
        queue.conn.execute(
            "update public.outbox_jobs set status = 'pending', lease_owner = null, lease_expires_at = null,"
            " run_after = now() - make_interval(mins => %s) where id = %s",
            (4 - minutes, job_id),
        )
    assert [j.id for j in queue.claim("w1", 2, 30)] == ids[2:0:-1]


def test_claim_can_filter_kinds(queue: Outbox) -> None:
    queue.enqueue("sms", {"to": "+77011234567", "text": "a"}, "sms/1")
    mail = queue.enqueue("email", {"template": "password_changed", "to": "a@example.kz"}, "mail/1")
    assert [j.id for j in queue.claim("w", 10, 30, ["email"])] == [mail]


def test_complete_needs_the_lease_and_logs_one_row(queue: Outbox) -> None:
    job = queue.claim("w1", 1, 30) if queue.enqueue("sms", {"to": "+7", "text": "t"}, "c/1") else []
    assert queue.complete("intruder", [job[0].id]) == []
    assert queue.complete("w1", [job[0].id], [12], ["msg-1"]) == [job[0].id]
    assert _status(queue.conn, job[0].id)["status"] == "done"
    assert _logs(queue.conn, job[0].id) == [("mobizon", "send_sms", "success", 1, None)]
    assert queue.complete("w1", [job[0].id]) == []  # a second completion changes nothing


def test_failures_back_off_exponentially_with_jitter_then_die(queue: Outbox) -> None:
    job_id = queue.enqueue("telegram", {"chat_id": 1, "text": "t"}, "f/1", max_attempts=3)
    waits = []
    for attempt in (1, 2, 3):
        queue.conn.execute("update public.outbox_jobs set run_after = now() where id = %s", (job_id,))
        (job,) = queue.claim("w", 1, 30)
        assert job.attempts == attempt
        status = queue.fail(
            job_id,
            "w",
            f"telegram: HTTP 502 attempt {attempt}",
            backoff_base_seconds=10,
            backoff_cap_seconds=25,
        )
        waits.append(_status(queue.conn, job_id)["wait"])  # None once dead
        assert status == ("dead" if attempt == 3 else "pending")
    # equal jitter: between half and all of min(cap, base * 2^(attempt-1))
    assert 5 - 1 <= waits[0] <= 10 + 1
    assert 10 - 1 <= waits[1] <= 20 + 1
    state = _status(queue.conn, job_id)
    assert state["status"] == "dead" and state["error"] == "telegram: HTTP 502 attempt 3"
    logs = _logs(queue.conn, job_id)
    assert [(r[2], r[3]) for r in logs] == [("failed", 1), ("failed", 2), ("failed", 3)]
    assert logs[0][4] == "telegram: HTTP 502 attempt 1"


def test_permanent_failure_is_dead_at_once_and_rate_limit_keeps_the_attempt(queue: Outbox) -> None:
    a = queue.enqueue("email", {"template": "x", "to": "a@example.kz"}, "p/1")
    queue.claim("w", 1, 30)
    assert queue.fail(a, "w", "resend: HTTP 422 validation_error", permanent=True) == "dead"
    b = queue.enqueue("telegram", {"chat_id": 1, "text": "t"}, "p/2")
    queue.claim("w", 1, 30)
    assert queue.fail(b, "w", "telegram: HTTP 429", retry_in_seconds=7, count_attempt=False) == "pending"
    state = _status(queue.conn, b)
    assert state["attempts"] == 0 and 6 <= state["wait"] <= 7.5


def test_a_job_rate_limited_again_and_again_backs_off(queue: Outbox) -> None:
    """A provider answering 429 with Retry-After: 1 for ever was called every second, a log
    row each time, before 20261214100100; the first three snoozes still honour it."""
    job_id = queue.enqueue("email", {"template": "x", "to": "a@example.kz"}, "rl/1")

    def round_trip(retry_in: float | None, count_attempt: bool = False) -> float:
        queue.conn.execute("update public.outbox_jobs set run_after = now() where id = %s", (job_id,))
        assert [j.id for j in queue.claim("w", 1, 30)] == [job_id]
        status = queue.fail(
            job_id,
            "w",
            "resend: HTTP 429 rate_limit_exceeded",
            retry_in_seconds=retry_in,
            count_attempt=count_attempt,
            backoff_base_seconds=10,
            backoff_cap_seconds=25,
        )
        assert status == "pending"
        return _status(queue.conn, job_id)["wait"]

    waits = [round_trip(1) for _ in range(7)]
    assert all(0 < w <= 1.5 for w in waits[:3]), waits
    # from the fourth: min(cap, base * 2^(n - 4)) with equal jitter
    assert 5 - 1 <= waits[3] <= 10 + 1 and 10 - 1 <= waits[4] <= 20 + 1, waits
    assert all(12.5 - 1 <= w <= 25 + 1 for w in waits[5:]), waits
    # a longer Retry-After still wins
    assert 60 - 1 <= round_trip(60) <= 60 + 1
    assert _status(queue.conn, job_id)["attempts"] == 0
    # a counted failure starts the count again
    assert 5 - 1 <= round_trip(None, count_attempt=True) <= 10 + 1
    assert round_trip(1) <= 1.5
    assert len(_logs(queue.conn, job_id)) == 10
    # an expired lease (it counts the attempt) and a requeue of a dead job start it again too
    for _ in range(4):
        round_trip(1)
    queue.conn.execute("update public.outbox_jobs set run_after = now() where id = %s", (job_id,))
    queue.claim("w", 1, 30)
    queue.conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 s' where id = %s", (job_id,)
    )
    assert queue.conn.execute("select public.recover_expired_outbox_leases()").fetchone()[0] == 1
    assert round_trip(1) <= 1.5
    for _ in range(4):
        round_trip(1)
    queue.conn.execute(
        "update public.outbox_jobs set status = 'dead', run_after = null where id = %s", (job_id,)
    )
    assert queue.requeue_dead([job_id]) == 1
    assert round_trip(1) <= 1.5


def test_fail_without_the_lease_changes_nothing(queue: Outbox) -> None:
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "nl/1")
    queue.claim("w1", 1, 30)
    assert queue.fail(job_id, "w2", "boom") is None
    assert _status(queue.conn, job_id)["status"] == "running"
    assert _logs(queue.conn, job_id) == []


def test_requeue_dead_revives_with_fresh_attempts(queue: Outbox) -> None:
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "rq/1", max_attempts=1)
    queue.claim("w", 1, 30)
    assert queue.fail(job_id, "w", "mobizon: code 8") == "dead"
    assert queue.requeue_dead(kind="email") == 0
    assert queue.requeue_dead([job_id]) == 1
    state = _status(queue.conn, job_id)
    assert state["status"] == "pending" and state["attempts"] == 0 and state["wait"] <= 0.5


def test_an_expired_lease_is_recovered_logged_and_claimable(queue: Outbox) -> None:
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "exp/1")
    queue.claim("lost-worker", 1, 30)
    queue.conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 second' where id = %s",
        (job_id,),
    )
    assert queue.claim("w2", 1, 30) == []  # still leased until recovered
    assert queue.recover_expired() == 1
    (job,) = queue.claim("w2", 1, 30)
    assert job.id == job_id and job.attempts == 2 and job.lease_owner == "w2"
    assert _logs(queue.conn, job_id) == [
        (
            "outbox",
            "lease_expired",
            "failed",
            1,
            "lease of worker lost-worker expired before the job finished",
        )
    ]
    # the lost worker can no longer finish it
    assert queue.complete("lost-worker", [job_id]) == []


def test_an_expired_lease_on_the_last_attempt_ends_dead(queue: Outbox) -> None:
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "exp/2", max_attempts=1)
    queue.claim("lost", 1, 30)
    queue.conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 second' where id = %s",
        (job_id,),
    )
    assert queue.recover_expired() == 1
    assert _status(queue.conn, job_id)["status"] == "dead"


def test_release_and_extend(queue: Outbox) -> None:
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "rel/1")
    queue.claim("w", 1, 1)
    assert queue.extend("other", [job_id], 600) == 0
    assert queue.extend("w", [job_id], 600) == 1
    lease = queue.conn.execute(
        "select lease_expires_at - now() from public.outbox_jobs where id = %s", (job_id,)
    ).fetchone()[0]
    assert lease.total_seconds() > 500
    assert queue.release("w", [job_id]) == 1
    state = _status(queue.conn, job_id)
    assert state["status"] == "pending" and state["attempts"] == 0 and state["owner"] is None


def _a_done_and_a_dead_job(queue: Outbox, prefix: str) -> tuple[int, int]:
    """Two SMS jobs with the text "t": one sent (done), one failed for good (dead)."""
    done = queue.enqueue("sms", {"to": "+7", "text": "t"}, f"{prefix}/done")
    queue.claim("w", 1, 30)
    queue.complete("w", [done])
    dead = queue.enqueue("sms", {"to": "+7", "text": "t"}, f"{prefix}/dead", max_attempts=1)
    queue.claim("w", 1, 30)
    queue.fail(dead, "w", "x")
    return done, dead


def test_retention_prunes_old_logs_and_done_jobs_only(
    queue: Outbox, clean_outbox: psycopg.Connection
) -> None:
    done, dead = _a_done_and_a_dead_job(queue, "ret")
    # logs are append-only for the service role: age them as the owner
    clean_outbox.execute("update public.integration_logs set created_at = now() - interval '40 days'")
    queue.conn.execute(
        "update public.outbox_jobs set completed_at = now() - interval '40 days' where id = %s", (done,)
    )
    result = queue.prune(30)
    assert (result.logs_deleted, result.jobs_emptied) == (2, 1)
    left = queue.conn.execute("select id, status, payload from public.outbox_jobs order by id").fetchall()
    assert left == [(done, "done", {}), (dead, "dead", {"to": "+7", "text": "t"})]
    assert queue.prune(30).jobs_emptied == 0  # emptied once
    # the key stays used: queuing the same event again after retention sends nothing
    assert queue.enqueue("sms", {"to": "+7", "text": "t"}, "ret/done") == done
    assert (
        queue.conn.execute("select count(*) from public.outbox_jobs where status = 'pending'").fetchone()[0]
        == 0
    )


def test_retention_keeps_what_is_younger_than_its_days(
    queue: Outbox, clean_outbox: psycopg.Connection
) -> None:
    """Only logs and payloads older than the days kept go: a retention that took the recent
    ones too (its age check dropped, or hours for days) left monitoring without its history
    and passed, every row of the test above being 40 days old (mutation review)."""
    old = queue.enqueue("sms", {"to": "+7", "text": "old"}, "ret2/old")
    recent = queue.enqueue("sms", {"to": "+7", "text": "recent"}, "ret2/recent")
    queue.claim("w", 2, 30)
    queue.complete("w", [old, recent])
    for job_id, age in ((old, "40 days"), (recent, "2 days")):
        clean_outbox.execute(
            "update public.integration_logs set created_at = now() - %s::interval where job_id = %s",
            (age, job_id),
        )
        queue.conn.execute(
            "update public.outbox_jobs set completed_at = now() - %s::interval where id = %s", (age, job_id)
        )
    result = queue.prune(30)
    assert (result.logs_deleted, result.jobs_emptied) == (1, 1)
    assert len(_logs(queue.conn, recent)) == 1 and _logs(queue.conn, old) == []
    assert queue.conn.execute(
        "select payload from public.outbox_jobs where id = %s", (recent,)
    ).fetchone() == ({"to": "+7", "text": "recent"},)


def test_requeue_of_every_dead_job_leaves_the_others_alone(queue: Outbox) -> None:
    """``requeue_dead()`` without a kind revives dead jobs only: done ones would send every
    e-mail and SMS again, pending ones would lose their wait (mutation review: the test above
    has only dead jobs)."""
    done, dead = _a_done_and_a_dead_job(queue, "rq")
    later = queue.enqueue("sms", {"to": "+7", "text": "l"}, "rq/later")
    queue.conn.execute(
        "update public.outbox_jobs set run_after = now() + interval '1 hour' where id = %s", (later,)
    )
    assert queue.requeue_dead() == 1
    assert [_status(queue.conn, j)["status"] for j in (done, dead, later)] == ["done", "pending", "pending"]
    assert _status(queue.conn, later)["wait"] > 3000


def test_release_by_another_worker_changes_nothing(queue: Outbox) -> None:
    """Only the lease's holder gives a job back: another worker's release would put a job
    under way back in the queue, and it would be sent twice (mutation review)."""
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "rel/x")
    queue.claim("w1", 1, 30)
    assert queue.release("w2", [job_id]) == 0
    state = _status(queue.conn, job_id)
    assert (state["status"], state["attempts"], state["owner"]) == ("running", 1, "w1")


def test_a_late_attempts_backoff_stays_under_its_cap(queue: Outbox) -> None:
    """The cap binds where the exponential wait would pass it (the attempt-12 wait is 10 x 2^11
    s uncapped); tested only where it did not bind, a retry could wait for years (mutation
    review)."""
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "cap/1", max_attempts=20)
    queue.claim("w", 1, 30)
    queue.conn.execute("update public.outbox_jobs set attempts = 12 where id = %s", (job_id,))
    assert queue.fail(job_id, "w", "HTTP 502", backoff_base_seconds=10, backoff_cap_seconds=60) == "pending"
    assert 29 <= _status(queue.conn, job_id)["wait"] <= 61


def test_a_snooze_logs_the_attempt_it_made(queue: Outbox) -> None:
    """A rate-limited try gives its attempt back, but its log row says which attempt it was
    (1), not the count after the give-back (0) (mutation review)."""
    job_id = queue.enqueue("telegram", {"chat_id": 1, "text": "t"}, "snz/1")
    queue.claim("w", 1, 30)
    queue.fail(job_id, "w", "HTTP 429", retry_in_seconds=1, count_attempt=False)
    assert [row[3] for row in _logs(queue.conn, job_id)] == [1]
    assert _status(queue.conn, job_id)["attempts"] == 0


def test_claim_skips_a_job_another_transaction_holds(queue: Outbox, db_url: str) -> None:
    """A job row locked by another session (an operator's open transaction, a slow
    completion) is passed over: a claim that waited for it stopped every worker behind one
    lock (mutation review)."""
    held = queue.enqueue("sms", {"to": "+7", "text": "a"}, "lock/a")
    free = queue.enqueue("sms", {"to": "+7", "text": "b"}, "lock/b")
    queue.conn.execute(
        "update public.outbox_jobs set run_after = now() - interval '1 minute' where id = %s", (held,)
    )
    with connect(db_url) as holder:
        holder.autocommit = False
        holder.execute("select 1 from public.outbox_jobs where id = %s for update", (held,))
        queue.conn.execute("set lock_timeout = '2s'")
        try:
            jobs = queue.claim("w", 1, 30)  # the oldest is held: the next one, at once
        finally:
            queue.conn.execute("reset lock_timeout")
            holder.rollback()
    assert [j.id for j in jobs] == [free]


def test_lease_recovery_passes_over_a_job_completed_while_it_waits(queue: Outbox, db_url: str) -> None:
    """A lease lapses while its worker commits the job's completion: recovery, meeting the
    row locked, must not wait and then set the finished job pending again, or the message is
    sent twice (mutation review: recovery returned 1 for a job just completed)."""
    job_id = queue.enqueue("sms", {"to": "+7", "text": "t"}, "race/1")
    queue.claim("w", 1, 30)
    queue.conn.execute(
        "update public.outbox_jobs set lease_expires_at = now() - interval '1 second' where id = %s",
        (job_id,),
    )
    recovered: list[int] = []
    with connect(db_url) as finisher:
        finisher.autocommit = False
        finisher.execute("select public.complete_outbox_jobs('w', array[%s]::bigint[])", (job_id,))

        def recover() -> None:
            with connect(db_url) as conn:
                recovered.append(conn.execute("select public.recover_expired_outbox_leases()").fetchone()[0])

        thread = threading.Thread(target=recover)
        thread.start()
        thread.join(1.0)  # a recovery that waits for the row is still waiting here
        finisher.commit()
        thread.join(10)
    assert recovered == [0]
    assert _status(queue.conn, job_id)["status"] == "done"


def test_concurrent_claimers_never_get_the_same_job(db_url: str, queue: Outbox) -> None:
    for i in range(400):
        queue.enqueue("sms", {"to": "+7", "text": str(i)}, f"cc/{i}")
    seen: list[list[int]] = [[] for _ in range(4)]

    def claimer(n: int) -> None:
        with connect(db_url) as conn:
            q = Outbox(conn)
            while jobs := q.claim(f"w{n}", 7, 30):
                seen[n].extend(j.id for j in jobs)
                q.complete(f"w{n}", [j.id for j in jobs])

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in seen for i in ids]
    assert len(everything) == 400 and len(set(everything)) == 400
    assert queue.conn.execute("select count(*) from public.integration_logs").fetchone()[0] == 400


def _intake(conn: psycopg.Connection, phone: str, key: str, **extra: object) -> tuple:
    args = {"p_name": "Айгерим", "p_phone": phone, "p_source": "profitest", "p_event_key": key, **extra}
    named = ", ".join(f"{k} := %({k})s" for k in args)
    return conn.execute(
        f"select lead_id, created from public.find_or_create_unified_lead({named})", args
    ).fetchone()


def _lead_jobs(conn: psycopg.Connection, lead: object) -> list[str]:
    rows = conn.execute(
        "select idempotency_key from public.outbox_jobs where idempotency_key like %s order by 1",
        (f"lead_notification/{lead}/%",),
    ).fetchall()
    return [r[0] for r in rows]


def test_intake_queues_the_new_lead_message_in_its_own_transaction(
    queue: Outbox, owner_conn: psycopg.Connection
) -> None:
    """``p_notify => true``: the call that creates a lead queues its "Новый лид" message, so a
    backend that dies between two calls no longer loses it; a lead found is not announced,
    and a caller that does not ask gets no message (it may post to Telegram itself)."""
    conn = queue.conn
    conn.execute(
        "insert into public.telegram_groups (chat_id, group_type) values"
        " (-601, 'leads'), (-602, 'leads_profitest'), (-603, 'leads_expresscourse')"
    )
    made: list[object] = []
    try:
        lead, created = _intake(conn, "+7 701 555 01 01", "notify-1", p_notify=True)
        made.append(lead)
        assert created
        assert _lead_jobs(conn, lead) == [
            f"lead_notification/{lead}/-601/leads",
            f"lead_notification/{lead}/-602/leads_profitest",
        ]
        text = conn.execute(
            "select payload ->> 'text' from public.outbox_jobs where idempotency_key = %s",
            (f"lead_notification/{lead}/-601/leads",),
        ).fetchone()[0]
        assert text.startswith("Новый лид (ПРОФТЕСТ)\nИмя: Айгерим\nТелефон: +77015550101")
        # the same person again: found, not announced again; the backend's own call adds nothing
        again, created = _intake(conn, "8 701 555 0101", "notify-2", p_notify=True)
        assert (again, created) == (lead, False)
        assert conn.execute("select public.enqueue_lead_notification(%s)", (lead,)).fetchone()[0] == 2
        assert len(_lead_jobs(conn, lead)) == 2
        # not asked: nothing queued
        quiet, created = _intake(conn, "+7 701 555 02 02", "notify-3")
        made.append(quiet)
        assert created and _lead_jobs(conn, quiet) == []
        # one transaction: rolled back, neither the lead nor its message is left
        with conn.transaction(force_rollback=True):
            gone, created = _intake(conn, "+7 701 555 03 03", "notify-4", p_notify=True)
            assert created and len(_lead_jobs(conn, gone)) == 2
        assert _lead_jobs(conn, gone) == []
        assert (
            conn.execute("select count(*) from public.traffic_leads where id = %s", (gone,)).fetchone()[0]
            == 0
        )
    finally:
        for lead in made:
            for stmt in (
                "delete from public.traffic_lead_journey where lead_id = %s",
                "delete from private.traffic_lead_identifiers where lead_id = %s",
                "delete from public.traffic_leads where id = %s",
            ):
                owner_conn.execute(stmt, (lead,))


def test_retention_empties_a_done_jobs_error_and_keeps_its_action_and_template(
    queue: Outbox, clean_outbox: psycopg.Connection
) -> None:
    """A job that failed once (its error names the recipient) and then succeeded: retention
    removes the error with the payload (found by mutation testing), and keeps the action and the template,
    which say what was sent (found by mutation testing)."""
    job = queue.enqueue(
        "email", {"action": "welcome", "template": "welcome_v2", "to": "a@example.kz", "name": "A"}, "ret3/1"
    )
    queue.claim("w", 1, 30)
    assert queue.fail(job, "w", "mailbox a@example.kz unavailable", retry_in_seconds=0) == "pending"
    queue.claim("w", 1, 30)
    queue.complete("w", [job])  # done, the first attempt's error kept
    queue.conn.execute(
        "update public.outbox_jobs set completed_at = now() - interval '40 days' where id = %s", (job,)
    )
    assert queue.prune(30).jobs_emptied == 1
    assert queue.conn.execute(
        "select payload, last_error from public.outbox_jobs where id = %s", (job,)
    ).fetchone() == ({"action": "welcome", "template": "welcome_v2"}, None)
