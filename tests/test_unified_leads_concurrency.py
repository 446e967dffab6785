"""Race-freedom: many clients recording overlapping people at once end with one lead each."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial

import psycopg
import pytest

from support.leads import unique_phone

CLIENTS = 16
PEOPLE = 80


def phone_variants(national: str) -> list[str]:
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return [
        f"+7 ({a}) {b}-{c}-{d}",
        f"8{national}",
        f"8 {a} {b} {c} {d}",
        f"+7{national}",
        f"7-{a}-{b}{c}{d}",
    ]


def events_for(person: int, rng: random.Random) -> list[dict]:
    national = f"701{person:07d}"
    email = f"person{person}@example.kz"
    phones = phone_variants(national)
    emails = [email, email.upper(), f"  {email.title()} "]
    events = []
    for i in range(rng.randint(4, 8)):
        shape = rng.choice(("phone", "email", "both"))
        events.append(
            {
                "p_phone": rng.choice(phones) if shape != "email" else None,
                "p_email": rng.choice(emails) if shape != "phone" else None,
                "p_stage": rng.choice(
                    ("proftest_submitted", "expresscourse_clicked", "expresscourse_submitted")
                ),
                "p_event_key": f"race-{person}-{i}",
            }
        )
    events.append(
        {
            "p_phone": phones[0],
            "p_email": email,
            "p_stage": "payment_started",
            "p_event_key": f"race-{person}-both",
        }
    )
    return events


@pytest.fixture()
def committed_leads(db_url: str) -> Iterator[None]:
    yield
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "truncate public.traffic_lead_journey, public.traffic_lead_merges,"
            " private.traffic_lead_identifiers, public.traffic_leads"
        )


def test_concurrent_intake_is_race_free(authenticator_url: str, db_url: str, committed_leads: None) -> None:
    rng = random.Random(20261121)
    events = [e for p in range(PEOPLE) for e in events_for(p, rng)]
    retries = rng.sample(events, k=len(events) // 5)  # the same webhook delivered twice
    work = events + retries
    rng.shuffle(work)
    chunks = [work[i::CLIENTS] for i in range(CLIENTS)]
    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []

    def client(chunk: list[dict]) -> None:
        try:
            with psycopg.connect(authenticator_url, autocommit=False) as conn:
                barrier.wait()
                for args in chunk:
                    with conn.transaction():  # one PostgREST request
                        conn.execute(
                            "select set_config('role', 'service_role', true),"
                            " set_config('request.jwt.claims', %s, true)",
                            (json.dumps({"role": "service_role"}),),
                        )
                        conn.execute(
                            "select * from public.find_or_create_unified_lead(p_phone := %(p_phone)s,"
                            " p_email := %(p_email)s, p_stage := %(p_stage)s, p_event_key := %(p_event_key)s)",
                            args,
                        )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]

    with psycopg.connect(db_url, autocommit=True) as conn:
        for person in range(PEOPLE):
            live = conn.execute(
                "select id from public.traffic_leads where merged_into is null"
                " and (phone_normalized = %s or email_normalized = %s)",
                (f"+7701{person:07d}", f"person{person}@example.kz"),
            ).fetchall()
            assert len(live) == 1, f"person {person}: {len(live)} live leads"
            owners = conn.execute(
                "select distinct private.live_lead(lead_id) from private.traffic_lead_identifiers"
                " where value in (%s, %s)",
                (f"+7701{person:07d}", f"person{person}@example.kz"),
            ).fetchall()
            assert owners == live, f"person {person}: identifiers resolve to {owners}"
            keys = conn.execute(
                "select j.event_key from public.traffic_lead_journey j where j.lead_id = %s",
                (live[0][0],),
            ).fetchall()
            expected = {e["p_event_key"] for e in events if e["p_event_key"].startswith(f"race-{person}-")}
            assert sorted(k for (k,) in keys) == sorted(expected), f"person {person}: events differ"
        total = conn.execute("select count(*) from public.traffic_lead_journey").fetchone()[0]
        assert total == len(events)  # every event once, retries recorded nothing
        live_total = conn.execute(
            "select count(*) from public.traffic_leads where merged_into is null"
        ).fetchone()[0]
        assert live_total == PEOPLE


def _rpc(conn: psycopg.Connection, **args: str | None) -> tuple:
    """One PostgREST-style request on an open transaction: role, claims, the RPC."""
    conn.execute(
        "select set_config('role', 'service_role', true), set_config('request.jwt.claims', %s, true)",
        (json.dumps({"role": "service_role"}),),
    )
    names = ", ".join(f"{k} := %({k})s" for k in args)
    row = conn.execute(
        f"select lead_id, merged from public.find_or_create_unified_lead({names})", args
    ).fetchone()
    assert row is not None
    return row


def _call_into(results: dict, name: str, conn: psycopg.Connection, **args: str) -> None:
    """``_rpc`` in its own transaction on a thread; the row or the exception goes to ``results``."""
    try:
        with conn.transaction():
            results[name] = _rpc(conn, **args)
    except BaseException as exc:
        results[name] = exc


def _wait_until_blocked(monitor: psycopg.Connection, pid: int) -> None:
    for _ in range(500):
        waiting = monitor.execute("select cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()
        if waiting and waiting[0]:
            return
        time.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


def test_a_call_waiting_on_a_merged_lead_never_deadlocks_with_the_next_merge(
    authenticator_url: str, db_url: str, committed_leads: None
) -> None:
    """The review's three connections: S merges M into L and stays open; C1 (M's phone) waits
    for M; C2 (K's phone, L's email) waits for L to merge it into K; S commits. C1 must not
    hold M while it follows M to L: C2's merge re-points M. Several rounds, since which of C1
    and C2 wakes first varies (the old lock-following code deadlocked in about a third)."""
    with psycopg.connect(db_url, autocommit=True) as monitor:
        for round_no in range(8):
            phone_k, phone_l, phone_m = (unique_phone() for _ in range(3))
            email_l, email_m = (
                f"l{round_no}-{uuid.uuid4().hex[:6]}@x.kz",
                f"m{round_no}-{uuid.uuid4().hex[:6]}@x.kz",
            )
            with psycopg.connect(authenticator_url, autocommit=True) as setup:
                with setup.transaction():
                    k = _rpc(setup, p_phone=phone_k)[0]
                with setup.transaction():
                    lead_l = _rpc(setup, p_phone=phone_l, p_email=email_l)[0]
                with setup.transaction():
                    _rpc(setup, p_phone=phone_m, p_email=email_m)
            results: dict[str, tuple | BaseException] = {}
            call = partial(_call_into, results)
            with (
                psycopg.connect(authenticator_url) as s,
                psycopg.connect(authenticator_url, autocommit=True) as c1,
                psycopg.connect(authenticator_url, autocommit=True) as c2,
            ):
                assert _rpc(s, p_phone=phone_l, p_email=email_m) == (lead_l, True)  # M into L, open
                t1 = threading.Thread(target=call, args=("c1", c1), kwargs={"p_phone": phone_m})
                t1.start()
                _wait_until_blocked(monitor, c1.info.backend_pid)
                t2 = threading.Thread(
                    target=call, args=("c2", c2), kwargs={"p_phone": phone_k, "p_email": email_l}
                )
                t2.start()
                _wait_until_blocked(monitor, c2.info.backend_pid)
                s.commit()
                t1.join(timeout=60)
                t2.join(timeout=60)
            assert not [r for r in results.values() if isinstance(r, BaseException)], (round_no, results)
            assert results["c2"] == (k, True)
            live = monitor.execute(
                "select private.live_lead(l.id) from public.traffic_leads l"
                " where l.phone_normalized in (%s, %s, %s)",
                (phone_k, phone_l, phone_m),
            ).fetchall()
            assert live == [(k,)] * 3, (round_no, live)
            assert monitor.execute("select private.live_lead(%s)", (results["c1"][0],)).fetchone() == (k,)


def test_a_lead_committed_by_another_writer_meanwhile_is_found_not_duplicated(
    authenticator_url: str, db_url: str, committed_leads: None
) -> None:
    """A writer without the call's locks (a consolidation batch, a direct insert) commits a
    lead with the phone while the call inserts one: the call waits, then finds that lead
    (it failed with 23505 before)."""
    phone = unique_phone()
    with (
        psycopg.connect(db_url, autocommit=True) as monitor,
        psycopg.connect(db_url) as direct,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        direct_id = direct.execute(
            "insert into public.traffic_leads (phone, name) values (%s, 'Direct') returning id", (phone,)
        ).fetchone()[0]
        results: dict[str, tuple | BaseException] = {}
        t = threading.Thread(
            target=_call_into,
            args=(results, "call", caller),
            kwargs={"p_phone": "8" + phone[2:], "p_name": "Call"},
        )
        t.start()
        _wait_until_blocked(monitor, caller.info.backend_pid)
        direct.commit()
        t.join(timeout=60)
        assert results["call"] == (direct_id, False)
        live = monitor.execute(
            "select count(*) from public.traffic_leads where phone_normalized = %s and merged_into is null",
            (phone,),
        ).fetchone()
        assert live == (1,)


def test_an_event_key_a_direct_writer_records_meanwhile_changes_no_lead(
    authenticator_url: str, db_url: str, committed_leads: None
) -> None:
    """The service role backfills a journey row with key K on lead B (README: insert ... on
    conflict (event_key) do nothing) while a call with K about lead A runs. The call's
    journey insert met K and did nothing, but A kept the call's stage, first touch and
    created_at: an event counted by the dashboard and in no journey row (found by review).
    Now the attempt is rolled back and run again, and finds K: B, nothing changed."""
    a_phone, b_phone = unique_phone(), unique_phone()
    with (
        psycopg.connect(db_url, autocommit=True) as monitor,
        psycopg.connect(db_url) as direct,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        with caller.transaction():
            a = _rpc(caller, p_phone=a_phone, p_utm_source="fb_arystan", p_stage="proftest_submitted")[0]
        with caller.transaction():
            b = _rpc(caller, p_phone=b_phone)[0]
        before = monitor.execute(
            "select stages, first_utm_source, created_at from public.traffic_leads where id = %s", (a,)
        ).fetchone()
        direct.execute(
            "insert into public.traffic_lead_journey (lead_id, stage, event_key) values (%s, 'payment_started', 'pay-race-1')"
            " on conflict (event_key) do nothing",
            (b,),
        )
        results: dict[str, tuple | BaseException] = {}
        t = threading.Thread(
            target=_call_into,
            args=(results, "call", caller),
            kwargs={
                "p_phone": "8" + a_phone[2:],
                "p_stage": "payment_succeeded",
                "p_utm_source": "ig_arystan",
                "p_event_key": "pay-race-1",
            },
        )
        t.start()
        _wait_until_blocked(monitor, caller.info.backend_pid)
        direct.commit()
        t.join(timeout=60)
        assert results["call"] == (b, False), results
        after = monitor.execute(
            "select stages, first_utm_source, created_at from public.traffic_leads where id = %s", (a,)
        ).fetchone()
        assert after == before
        journey = monitor.execute(
            "select lead_id, stage from public.traffic_lead_journey where event_key = 'pay-race-1'"
        ).fetchall()
        assert journey == [(b, "payment_started")]


def test_filling_a_phone_another_writer_just_gave_to_a_lead_merges_the_two(
    authenticator_url: str, db_url: str, committed_leads: None
) -> None:
    """The call fills a known lead's missing phone while a writer without the call's locks
    commits another lead with that phone: the call's update gives way and the two leads are
    merged (it failed with a bare 23505 and lost the event before)."""
    phone, email = unique_phone(), f"fill-{uuid.uuid4().hex[:8]}@example.kz"
    with (
        psycopg.connect(db_url, autocommit=True) as monitor,
        psycopg.connect(db_url) as direct,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        with caller.transaction():
            known = _rpc(caller, p_email=email)[0]
        direct_id = direct.execute(
            "insert into public.traffic_leads (phone, name) values (%s, 'Direct') returning id", (phone,)
        ).fetchone()[0]
        results: dict[str, tuple | BaseException] = {}
        t = threading.Thread(
            target=_call_into,
            args=(results, "call", caller),
            kwargs={"p_phone": phone, "p_email": email, "p_event_key": f"fill-{phone}"},
        )
        t.start()
        _wait_until_blocked(monitor, caller.info.backend_pid)
        direct.commit()
        t.join(timeout=60)
        assert results["call"] == (known, True), results
        assert monitor.execute("select private.live_lead(%s)", (direct_id,)).fetchone() == (known,)
        assert monitor.execute(
            "select count(*) from public.traffic_lead_journey where event_key = %s", (f"fill-{phone}",)
        ).fetchone() == (1,)


@pytest.mark.parametrize(
    "isolation", [psycopg.IsolationLevel.READ_COMMITTED, psycopg.IsolationLevel.READ_UNCOMMITTED]
)
def test_a_merge_partner_deleted_while_the_call_waits_is_tried_again(
    authenticator_url: str, db_url: str, committed_leads: None, isolation: psycopg.IsolationLevel
) -> None:
    """One of the two leads a call is about to merge is deleted while the call waits for its
    lock: the attempt ends with 40001 and the call runs again, which finds the lead that is
    left and fills in the phone (the call looped forever at first, then failed with 40001).
    Read uncommitted too: PostgreSQL runs it as read committed, so the retry works there."""
    phone, email = unique_phone(), f"gone-{uuid.uuid4().hex[:8]}@example.kz"
    with (
        psycopg.connect(db_url, autocommit=True) as monitor,
        psycopg.connect(db_url) as deleter,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        monitor.execute("insert into public.traffic_leads (phone, name) values (%s, 'Direct')", (phone,))
        with caller.transaction():
            known = _rpc(caller, p_email=email)[0]
        caller.execute("set statement_timeout = '10s'")
        caller.isolation_level = isolation
        deleter.execute("delete from public.traffic_leads where phone_normalized = %s", (phone,))
        results: dict[str, tuple | BaseException] = {}
        t = threading.Thread(
            target=_call_into, args=(results, "call", caller), kwargs={"p_phone": phone, "p_email": email}
        )
        t.start()
        _wait_until_blocked(monitor, caller.info.backend_pid)
        deleter.commit()
        t.join(timeout=60)
        assert results["call"] == (known, False), results
        live = monitor.execute(
            "select id, phone_normalized from public.traffic_leads where merged_into is null"
            " and (phone_normalized = %s or email_normalized = %s)",
            (phone, email),
        ).fetchall()
        assert live == [(known, phone)]


def _deadlocks(monitor: psycopg.Connection) -> int:
    monitor.execute("select pg_stat_clear_snapshot()")
    row = monitor.execute(
        "select deadlocks from pg_stat_database where datname = current_database()"
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_call_that_loses_a_deadlock_is_tried_again_and_records_its_event(
    authenticator_url: str, superuser_url: str, db_url: str, committed_leads: None
) -> None:
    """A writer without the call's locks (a consolidation batch) locks the two leads of one
    person in the other order than the call merging them: PostgreSQL breaks the cycle by
    failing the call (it waited first, so its deadlock check runs first). The call's attempt
    is rolled back with its locks, the writer goes on, and the call runs again and merges
    (it failed with 40P01 and lost the event before). The retry is a LOG line (the caught
    error itself is not logged by PostgreSQL)."""
    phone, email = unique_phone(), f"dl-{uuid.uuid4().hex[:8]}@example.kz"
    key = f"deadlock-{phone}"
    with (
        psycopg.connect(db_url, autocommit=True) as monitor,
        psycopg.connect(superuser_url) as batch,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        with caller.transaction():
            older = _rpc(caller, p_phone=phone)[0]
        with caller.transaction():
            newer = _rpc(caller, p_email=email)[0]
        first, second = sorted((older, newer))  # the call locks the two leads in id order
        logged: list[tuple[str | None, str | None, str | None]] = []  # read while valid
        caller.add_notice_handler(
            lambda d: logged.append((d.severity_nonlocalized, d.message_primary, d.message_detail))
        )
        caller.execute("set client_min_messages = log")
        batch.execute("set deadlock_timeout = '30s'")  # so the call, not the batch, is the victim
        batch.execute("select 1 from public.traffic_leads where id = %s for update", (second,))
        deadlocks_before = _deadlocks(monitor)
        results: dict[str, tuple | BaseException] = {}
        t = threading.Thread(
            target=_call_into,
            args=(results, "call", caller),
            kwargs={"p_phone": phone, "p_email": email, "p_event_key": key},
        )
        t.start()
        _wait_until_blocked(monitor, caller.info.backend_pid)  # holds `first`, waits for `second`
        batch.execute("select 1 from public.traffic_leads where id = %s for update", (first,))
        batch.commit()
        t.join(timeout=60)
        assert results["call"] == (older, True), results
        retries = [(message or "", detail or "") for severity, message, detail in logged if severity == "LOG"]
        assert [m.split(":")[1] for m, _ in retries] == [" attempt 1 of 5 failed with 40P01, trying again"], (
            logged
        )
        assert "deadlock detected" in retries[0][0]
        assert "blocked by process" in retries[0][1]
        for _ in range(100):  # the statistics arrive a moment later
            if _deadlocks(monitor) > deadlocks_before:
                break
            time.sleep(0.05)
        assert _deadlocks(monitor) > deadlocks_before, "the test did not make the call lose a deadlock"
        assert monitor.execute("select private.live_lead(%s)", (newer,)).fetchone() == (older,)
        assert monitor.execute(
            "select count(*) from public.traffic_lead_journey where event_key = %s", (key,)
        ).fetchone() == (1,)


def test_a_transaction_beyond_the_sixteenth_waits_for_a_stats_shard(db_url: str) -> None:
    """With all 16 stats shards claimed by open transactions, the next writer waits for its
    pid's shard instead of sharing it unclaimed (two such writers could deadlock)."""
    holders = [psycopg.connect(db_url) for _ in range(16)]
    try:
        claimed = {h.execute("select private.lead_stats_shard()").fetchone()[0] for h in holders}
        assert claimed == set(range(16))
        with psycopg.connect(db_url, autocommit=True) as monitor, psycopg.connect(db_url) as extra:
            home = extra.info.backend_pid % 16
            got: list[object] = []
            t = threading.Thread(
                target=lambda: got.append(extra.execute("select private.lead_stats_shard()").fetchone()[0])
            )
            t.start()
            _wait_until_blocked(monitor, extra.info.backend_pid)
            assert not got
            for h in holders:
                if h.execute("select current_setting('onai.lead_stats_shard')").fetchone()[0] == str(home):
                    h.commit()
            t.join(timeout=30)
            assert got == [home]
            extra.commit()
    finally:
        for h in holders:
            h.close()


def test_a_forged_stats_shard_setting_is_not_trusted(db_url: str) -> None:
    """onai.lead_stats_shard is only a hint: a value out of range or a shard another open
    transaction holds is ignored, and the transaction claims a free shard of its own."""
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url) as forger:
        held = holder.execute("select private.lead_stats_shard()").fetchone()[0]
        forger.execute("select set_config('onai.lead_stats_shard', '99', true)")
        first = forger.execute("select private.lead_stats_shard()").fetchone()[0]
        assert 0 <= first <= 15 and first != held
        forger.rollback()
        forger.execute("select set_config('onai.lead_stats_shard', %s, true)", (str(held),))
        second = forger.execute("select private.lead_stats_shard()").fetchone()[0]
        assert second != held
        assert forger.execute("select current_setting('onai.lead_stats_shard')").fetchone() == (str(second),)


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_snapshot_transaction_gets_the_conflict_at_once_with_what_to_retry(
    authenticator_url: str, db_url: str, committed_leads: None, isolation: str
) -> None:
    """A caller in a repeatable read or serializable transaction keeps its snapshot, so trying
    the body again meets the same conflict: the call fails at the first attempt (it slept and
    tried 5 times before), keeping the SQLSTATE and message, with a hint to retry the whole
    transaction; retrying it does succeed."""
    phone = unique_phone()
    with (
        psycopg.connect(db_url, autocommit=True) as other,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        caller.execute(f"begin isolation level {isolation}")
        caller.execute("select 1")  # the snapshot is taken
        lead = other.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone := %s)", (phone,)
        )
        lead_id = lead.fetchone()[0]
        with pytest.raises(psycopg.errors.SerializationFailure) as caught:
            _rpc(caller, p_phone="8" + phone[2:], p_name="Snapshot")
        caller.execute("rollback")
        diag = caught.value.diag
        assert diag.message_primary == "could not serialize access due to concurrent update"
        assert diag.message_detail is None  # none in the original error, none added
        assert diag.message_hint is not None and f"ran in a {isolation} transaction" in diag.message_hint
        assert "retry the whole transaction" in diag.message_hint
        # the whole transaction again: it sees the lead and records the event
        caller.execute(f"begin isolation level {isolation}")
        assert _rpc(caller, p_phone="8" + phone[2:], p_name="Snapshot") == (lead_id, False)
        caller.execute("commit")


def test_a_phone_registered_to_one_lead_and_held_by_another_merges_them(
    db_url: str, committed_leads: None
) -> None:
    """The identifiers say the phone is lead A's, but A's own row no longer holds it (the
    service role cleared it) and lead C, written straight into the table, does: filling A's
    phone broke C's unique index, and the call looked A up again, forever. It now merges C
    into A (the older) and records the event; also when the call had merged before."""
    phone, email = unique_phone(), f"held-{uuid.uuid4().hex[:8]}@example.kz"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("set statement_timeout = '10s'")  # the loop it used to be ends here

        def rpc(**kw: str) -> tuple:
            names = ", ".join(f"{k} := %({k})s" for k in kw)
            return conn.execute(
                f"select lead_id, created, merged, event_recorded from public.find_or_create_unified_lead({names})",
                kw,
            ).fetchone()

        def live(value: str) -> list[tuple]:
            return conn.execute(
                "select id from public.traffic_leads where merged_into is null and phone_normalized = %s",
                (value,),
            ).fetchall()

        a = rpc(p_name="Ann", p_phone=phone)[0]
        conn.execute("update public.traffic_leads set phone = null where id = %s", (a,))
        c = conn.execute(
            "insert into public.traffic_leads (name, phone) values ('Bob', %s) returning id",
            ("8" + phone[2:],),
        ).fetchone()[0]
        assert rpc(p_name="Bob", p_phone=phone) == (a, False, True, True)
        assert live(phone) == [(a,)]
        merged = conn.execute("select merged_into from public.traffic_leads where id = %s", (c,)).fetchone()
        assert merged == (a,)
        # a merge first (phone -> X, email -> Y), then the same conflict (Z holds the phone)
        phone2 = unique_phone()
        x = rpc(p_name="X", p_phone=phone2)[0]
        conn.execute("update public.traffic_leads set phone = null where id = %s", (x,))
        y = rpc(p_name="Y", p_email=email)[0]
        z = conn.execute(
            "insert into public.traffic_leads (phone) values (%s) returning id", (phone2,)
        ).fetchone()[0]
        assert rpc(p_phone=phone2, p_email=email) == (x, False, True, True)
        assert live(phone2) == [(x,)]
        owners = conn.execute(
            "select count(*) from public.traffic_leads where id in (%s, %s) and merged_into = %s", (y, z, x)
        ).fetchone()
        assert owners == (2,)


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_a_snapshot_transaction_whose_fill_meets_an_unseen_lead_fails_at_once(
    authenticator_url: str, db_url: str, committed_leads: None, isolation: str
) -> None:
    """A repeatable read caller fills the phone of the lead it found by email, and a call
    it cannot see (committed after its snapshot) gave that phone to a new lead: the update
    breaks the unique index, and the lookup, on the old snapshot, never found that lead, so
    the call looped until a timeout, holding the phone's lock. It now fails at once with
    40001 and the hint to retry the whole transaction, which then merges the two."""
    phone, email = unique_phone(), f"unseen-{uuid.uuid4().hex[:8]}@example.kz"
    with (
        psycopg.connect(db_url, autocommit=True) as other,
        psycopg.connect(authenticator_url, autocommit=True) as caller,
    ):
        by_email = other.execute(
            "select lead_id from public.find_or_create_unified_lead(p_email := %s, p_name := 'Gus')", (email,)
        ).fetchone()[0]
        caller.execute("set statement_timeout = '10s'")
        caller.execute(f"begin isolation level {isolation}")
        caller.execute("select 1")  # the snapshot is taken
        other.execute("select public.find_or_create_unified_lead(p_phone := %s)", (phone,))
        started = time.monotonic()
        with pytest.raises(psycopg.errors.SerializationFailure) as caught:
            _rpc(caller, p_email=email, p_phone=phone)
        caller.execute("rollback")
        assert time.monotonic() - started < 5
        hint = caught.value.diag.message_hint or ""
        assert f"ran in a {isolation} transaction" in hint and "retry the whole transaction" in hint, hint
        caller.execute(f"begin isolation level {isolation}")
        assert _rpc(caller, p_email=email, p_phone=phone) == (by_email, True)
        caller.execute("commit")


def _stages(monitor: psycopg.Connection, lead_id: uuid.UUID) -> tuple[list[str], list[str]]:
    """(the lead's stages, the distinct stages of its journey rows)"""
    row = monitor.execute(
        "select l.stages, coalesce((select array_agg(distinct j.stage order by j.stage)"
        " from public.traffic_lead_journey as j where j.lead_id = l.id), '{}')"
        " from public.traffic_leads as l where l.id = %s",
        (lead_id,),
    ).fetchone()
    assert row is not None
    return list(row[0]), list(row[1])


def _in_two_transactions(
    db_url: str, monitor: psycopg.Connection, first: str, second: str, args: tuple
) -> None:
    """``first`` runs and stays open; ``second`` runs in another transaction, waits for the
    first's lock on the lead, and goes on when the first commits."""
    _race(db_url, monitor, (first, args[0]), (second, args[1]), must_wait=True)


def test_two_transactions_writing_stale_lead_ids_of_one_person_both_reach_its_stages(
    db_url: str, committed_leads: None
) -> None:
    """M1 and M2 are merged into L. One transaction inserts a journey row for M1, another for
    M2 while the first is open: both rows move to L, and L (and its counts) has both stages."""
    with psycopg.connect(db_url, autocommit=True) as monitor:
        ids = [
            monitor.execute(
                "insert into public.traffic_leads (phone, first_utm_source, first_touch_at)"
                " values (%s, 'fb_race', now()) returning id",
                (unique_phone(),),
            ).fetchone()[0]
            for _ in range(3)
        ]
        live, m1, m2 = ids
        for merged in (m1, m2):
            monitor.execute("select private.merge_leads(%s, %s, 'test')", (live, merged))
        insert = "insert into public.traffic_lead_journey (lead_id, stage) values (%s, %s)"
        _in_two_transactions(db_url, monitor, insert, insert, ((m1, "webinar"), (m2, "payment_succeeded")))
        assert _stages(monitor, live) == (["payment_succeeded", "webinar"], ["payment_succeeded", "webinar"])
        counts = monitor.execute(
            "select stage, sum(leads)::int from public.traffic_lead_daily_stats where utm_source = 'fb_race'"
            " group by stage having sum(leads) <> 0 order by stage"
        ).fetchall()
        assert counts == [("", 1), ("payment_succeeded", 1), ("webinar", 1)]


@pytest.mark.parametrize("change", ["update", "delete"])
def test_two_transactions_changing_one_leads_journey_keep_each_others_stages(
    db_url: str, committed_leads: None, change: str
) -> None:
    """One transaction adds a stage to a lead's journey and stays open; another corrects (or
    deletes) one of the lead's rows meanwhile. The second computed the lead's stages from a
    copy read before the first committed, and dropped the first's stage."""
    with psycopg.connect(db_url, autocommit=True) as monitor:
        lead = monitor.execute(
            "insert into public.traffic_leads (phone) values (%s) returning id", (unique_phone(),)
        ).fetchone()[0]
        row = monitor.execute(
            "insert into public.traffic_lead_journey (lead_id, stage) values (%s, 'lead_captured') returning id",
            (lead,),
        ).fetchone()[0]
        monitor.execute(
            "insert into public.traffic_lead_journey (lead_id, stage) values (%s, 'proftest_submitted')",
            (lead,),
        )
        second = (
            "update public.traffic_lead_journey set stage = 'consultation_booked' where id = %s"
            if change == "update"
            else "delete from public.traffic_lead_journey where id = %s"
        )
        _in_two_transactions(
            db_url,
            monitor,
            "insert into public.traffic_lead_journey (lead_id, stage) values (%s, 'webinar_attended')",
            second,
            ((lead,), (row,)),
        )
        stages, evidence = _stages(monitor, lead)
        assert stages == evidence, (stages, evidence)
        assert "webinar_attended" in stages


def _race(
    db_url: str,
    monitor: psycopg.Connection,
    first: tuple[str, tuple],
    second: tuple[str, tuple],
    must_wait: bool = False,
) -> None:
    """``first`` runs and stays open; ``second`` runs in another transaction and commits, at
    once or after waiting for the first (``must_wait``: it has to wait); then the first commits."""
    with psycopg.connect(db_url) as one, psycopg.connect(db_url) as two:
        for conn in (one, two):
            conn.execute("set role service_role")
        one.execute(*first)
        errors: list[BaseException] = []

        def run_second() -> None:
            try:
                two.execute(*second)
                two.commit()
            except BaseException as exc:  # reported below
                errors.append(exc)

        t = threading.Thread(target=run_second)
        t.start()
        for _ in range(500):
            blocked = monitor.execute(
                "select cardinality(pg_blocking_pids(%s)) > 0", (two.info.backend_pid,)
            ).fetchone()
            if not t.is_alive() or (blocked and blocked[0]):
                break
            time.sleep(0.01)
        else:
            raise AssertionError(f"backend {two.info.backend_pid} neither finished nor waited for a lock")
        if must_wait and not (blocked and blocked[0]):
            raise AssertionError(f"backend {two.info.backend_pid} never waited for a lock")
        one.commit()
        t.join(timeout=30)
        assert not t.is_alive() and not errors, errors


@pytest.mark.parametrize(
    "case", ["insert-then-delete", "intake-then-delete", "delete-then-delete", "insert-then-update"]
)
def test_concurrent_journey_writers_of_one_lead_leave_it_the_stages_of_its_journey(
    db_url: str, committed_leads: None, case: str
) -> None:
    """The lead has payment_started from one journey row. One transaction adds a second
    row with that stage (or deletes one of two) and stays open; another deletes (or
    corrects) the other row meanwhile. The triggers decided from their own snapshot, so the
    lead lost a stage its journey still had, or kept one its journey no longer had; now each
    locks the lead before it reads the journey (20261201100100)."""
    source = f"fb_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as monitor:
        phone = unique_phone()
        lead = monitor.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone := %s, p_utm_source := %s,"
            " p_stage := 'payment_started')",
            (phone, source),
        ).fetchone()[0]
        rows = [
            r[0]
            for r in monitor.execute(
                "select id from public.traffic_lead_journey where lead_id = %s order by id", (lead,)
            ).fetchall()
        ]
        add = (
            "insert into public.traffic_lead_journey (lead_id, stage) values (%s, 'payment_started')",
            (lead,),
        )
        delete = ("delete from public.traffic_lead_journey where id = %s", (rows[0],))
        if case == "insert-then-delete":
            first, second = add, delete
        elif case == "intake-then-delete":
            rpc = "select * from public.find_or_create_unified_lead(p_phone := %s, p_stage := 'payment_started')"
            first, second = (rpc, (phone,)), delete
        elif case == "delete-then-delete":
            monitor.execute(*add)
            other = monitor.execute(
                "select max(id) from public.traffic_lead_journey where lead_id = %s", (lead,)
            ).fetchone()[0]
            first, second = ("delete from public.traffic_lead_journey where id = %s", (other,)), delete
        else:
            first = add
            second = (
                "update public.traffic_lead_journey set stage = 'consultation_booked' where id = %s",
                (rows[0],),
            )
        _race(db_url, monitor, first, second)
        stages, evidence = _stages(monitor, lead)
        assert stages == evidence, (stages, evidence)
        counted = monitor.execute(
            "select coalesce(array_agg(stage order by stage), '{}') from (select stage from"
            " public.traffic_lead_daily_stats where utm_source = %s and stage <> ''"
            " group by stage having sum(leads) <> 0) as s",
            (source,),
        ).fetchone()[0]
        assert counted == evidence, (counted, evidence)


def test_a_journey_row_for_a_merged_lead_does_not_deadlock_with_a_merge_of_its_live_lead(
    db_url: str, committed_leads: None
) -> None:
    """M was merged into B. A call ties A and B and waits for B (held by a third transaction);
    a journey row written for M waits for B too, to move there. When B is free the call merges
    B into A, re-pointing M. The insert trigger used to lock M first, so the merge waited for
    it while it waited for B: 40P01 for the insert. Now only live leads are locked."""
    with psycopg.connect(db_url, autocommit=True) as monitor:

        def call(**args: str) -> uuid.UUID:
            names = ", ".join(f"{k} := %({k})s" for k in args)
            row = monitor.execute(
                f"select lead_id from public.find_or_create_unified_lead({names})", args
            ).fetchone()
            assert row is not None
            return row[0]

        phone_a, phone_m, email_b = unique_phone(), unique_phone(), f"b-{uuid.uuid4().hex[:8]}@example.kz"
        lead_a = call(p_phone=phone_a, p_occurred_at="2025-01-01Z")
        lead_b = call(p_email=email_b, p_occurred_at="2025-01-02Z")
        lead_m = call(p_phone=phone_m, p_occurred_at="2025-01-03Z")
        assert call(p_phone=phone_m, p_email=email_b) == lead_b  # M merged into B
        results: dict = {}
        with (
            psycopg.connect(db_url) as holder,
            psycopg.connect(db_url) as caller,
            psycopg.connect(db_url) as writer,
        ):
            holder.execute("select 1 from public.traffic_leads where id = %s for update", (lead_b,))
            t_call = threading.Thread(
                target=_call_into,
                args=(results, "call", caller),
                kwargs={"p_phone": phone_a, "p_email": email_b},
            )
            t_call.start()
            _wait_until_blocked(monitor, caller.info.backend_pid)

            def insert() -> None:
                try:
                    with writer.transaction():
                        writer.execute("set local role service_role")
                        writer.execute(
                            "insert into public.traffic_lead_journey (lead_id, stage) values (%s, 'contacted')",
                            (lead_m,),
                        )
                    results["insert"] = "ok"
                except BaseException as exc:
                    results["insert"] = exc

            t_insert = threading.Thread(target=insert)
            t_insert.start()
            _wait_until_blocked(monitor, writer.info.backend_pid)
            holder.commit()
            t_call.join(timeout=30)
            t_insert.join(timeout=30)
        assert results.get("insert") == "ok", results
        assert results.get("call") == (lead_a, True), results
        stages, evidence = _stages(monitor, lead_a)
        assert stages == evidence and "contacted" in stages, (stages, evidence)
