"""Race-freedom: many clients recording overlapping people at once end with one lead each."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator

import psycopg
import pytest

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
