"""AmoCRM: OAuth tokens refreshed once under concurrency (the refresh token is single
use), lead sync creating contact + lead and marking the lead synced, lesson stage moves."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from onai_db import integration_tokens
from onai_db.amocrm_sync import LOCK_CLASS, one_at_a_time, sync_lead
from onai_db.integration_tokens import Token, TokenGrant, TokenStore, store_kept_tokens
from onai_db.notifications import enqueue_lead_notifications
from onai_db.outbox import Outbox, connect
from onai_db.outbox_handlers import ProviderConfig
from onai_db.providers.amocrm import AmoCrmClient
from onai_db.providers.base import (
    AuthExpiredError,
    Delivery,
    PermanentError,
    RateLimitedError,
    TransientError,
)
from onai_db.worker import Worker, WorkerConfig, run_worker
from support.fake_providers import FakeProviders, Reply
from support.outbox_fixtures import worker_settings


def _client(conn: psycopg.Connection, fake: FakeProviders, http: httpx.Client, worker: str) -> AmoCrmClient:
    cfg = ProviderConfig.from_settings(worker_settings(fake, "unused")).amocrm
    assert cfg is not None
    return AmoCrmClient(http, cfg, TokenStore(conn, "amocrm", worker))


def _store(conn: psycopg.Connection, access: str, refresh: str, expires_in: float) -> None:
    conn.execute("select public.store_integration_token('amocrm', %s, %s, %s)", (access, refresh, expires_in))


@pytest.mark.parametrize("stale", ["rejected-by-401", "expired-by-clock"])
def test_concurrent_workers_refresh_the_token_exactly_once(
    fake: FakeProviders, queue: Outbox, db_url: str, stale: str
) -> None:
    if stale == "rejected-by-401":
        _store(queue.conn, "amo-access-revoked", "amo-refresh-1", 3600)  # looks valid, the API says 401
    else:
        _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)  # expired by our clock
    n = 8
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def move(i: int) -> None:
        try:
            with connect(db_url) as conn, httpx.Client(timeout=5) as http:
                client = _client(conn, fake, http, f"w{i}")
                barrier.wait()
                client.move_lead_stage(9000 + i, 1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=move, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(fake.calls("amocrm_token")) == 1 and fake.amo_refreshes == 1
    patches = [c for c in fake.calls("amocrm_leads") if c.method == "PATCH"]
    ok = [c for c in patches if c.headers["Authorization"] == "Bearer amo-access-2"]
    assert len(ok) == n and all(c.json() == {"status_id": 101, "pipeline_id": 7001} for c in ok)
    row = queue.conn.execute(
        "select access_token, refresh_token, token_version, refresh_owner from public.integration_tokens"
    ).fetchone()
    assert row == ("amo-access-2", "amo-refresh-2", 2, None)


def test_a_rejected_refresh_token_fails_permanently_and_frees_the_lease(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    _store(queue.conn, "amo-access-old", "amo-refresh-already-used", -10)
    with (
        connect(db_url) as conn,
        httpx.Client(timeout=5) as http,
        pytest.raises(PermanentError, match="re-authorize"),
    ):
        _client(conn, fake, http, "w1").move_lead_stage(1, 2)
    row = queue.conn.execute(
        "select refresh_owner, last_refresh_error from public.integration_tokens"
    ).fetchone()
    assert row[0] is None and "HTTP 400" in row[1] and "amo-refresh" not in row[1]


UNAUTHORIZED = Reply(
    401,
    {"title": "Unauthorized", "type": "https://httpstatus.es/401", "status": 401, "detail": "Unauthorized"},
)


def test_a_401_that_outlives_a_refresh_is_an_error_after_one_refresh(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """A token AmoCRM refuses again right after its refresh (an integration switched off, a
    changed account) ends the call with the 401: one refresh, two calls, not a loop that
    spends a refresh token per try (mutation review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    fake.script("amocrm_leads", UNAUTHORIZED, UNAUTHORIZED, UNAUTHORIZED)
    with connect(db_url) as conn, httpx.Client(timeout=5) as http, pytest.raises(AuthExpiredError) as err:
        _client(conn, fake, http, "w1").move_lead_stage(5, 1)
    assert str(err.value) == "amocrm stage move: HTTP 401 Unauthorized" and err.value.retry
    assert (len(fake.calls("amocrm_token")), len(fake.calls("amocrm_leads"))) == (1, 2)
    assert [c.headers["Authorization"] for c in fake.calls("amocrm_leads")] == [
        "Bearer amo-access-1",
        "Bearer amo-access-2",
    ]


def test_a_token_endpoint_refusing_the_client_says_re_authorize_and_frees_the_lease(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The token endpoint answers 401 when the client's id or secret is wrong: as plain as a
    rejected refresh token (400), never retried for ever as a "401, refresh again" (mutation
    review: the 401 branch was unpinned)."""
    _store(queue.conn, "amo-access-old", "amo-refresh-1", -10)
    fake.script(
        "amocrm_token",
        Reply(401, {"title": "Unauthorized", "status": 401, "detail": "Client authentication failed"}),
    )
    with (
        connect(db_url) as conn,
        httpx.Client(timeout=5) as http,
        pytest.raises(PermanentError, match=r"HTTP 401 Client authentication failed.*re-authorize"),
    ):
        _client(conn, fake, http, "w1").move_lead_stage(1, 2)
    row = queue.conn.execute(
        "select refresh_owner, last_refresh_error, refresh_token from public.integration_tokens"
    ).fetchone()
    assert row[0] is None and "HTTP 401" in row[1] and row[2] == "amo-refresh-1"
    assert fake.calls("amocrm_leads") == []


def test_a_refresh_that_raises_no_provider_error_gives_its_lease_back(queue: Outbox, db_url: str) -> None:
    """A bug or a library's error inside the token call (not a ProviderError) gives the lease
    back with its type in the row: kept, every worker waited for it to lapse before it could
    refresh (mutation review: only provider errors were pinned). The text is redacted: it
    quoted the refresh token it was given into the table (found so)."""
    _store(queue.conn, "amo-access-old", "amo-refresh-1", -10)

    def broken(refresh_token: str) -> TokenGrant:
        raise LookupError(f"no codec for the answer to {refresh_token}")

    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1")
        with pytest.raises(LookupError):
            store.refresh(store.load(), broken)
    row = queue.conn.execute(
        "select refresh_owner, last_refresh_error, refresh_token from public.integration_tokens"
    ).fetchone()
    assert row == (None, "LookupError: no codec for the answer to <redacted>", "amo-refresh-1")


BEGIN_REFRESH = "select public.begin_integration_token_refresh('amocrm', %s, 1, 30)"


def test_a_refresh_lease_lapses_is_kept_by_its_holder_and_is_given_back_only_by_it(queue: Outbox) -> None:
    """The lease that makes a refresh single-flight: a lapsed one is taken over (a worker
    that died mid-refresh left every AmoCRM call "busy" for ever); its holder asking again
    gets it again (it waited out its own lease); another worker cannot give it back (a
    second refresh would spend the single-use refresh token twice and log the integration
    out). Mutation review: none of the three was pinned."""
    _store(queue.conn, "a1", "r1", 3600)
    assert queue.conn.execute(BEGIN_REFRESH, ("w1",)).fetchone() == ("acquired",)
    assert queue.conn.execute(BEGIN_REFRESH, ("w1",)).fetchone() == ("acquired",)
    aborted = queue.conn.execute("select public.abort_integration_token_refresh('amocrm', 'w2', 'x')")
    assert aborted.fetchone() == (False,)
    assert queue.conn.execute(BEGIN_REFRESH, ("w3",)).fetchone() == ("busy",)
    queue.conn.execute(
        "update public.integration_tokens set refresh_lease_expires_at = now() - interval '1 second'"
    )
    assert queue.conn.execute(BEGIN_REFRESH, ("w2",)).fetchone() == ("acquired",)


def test_refresh_lease_states(queue: Outbox) -> None:
    _store(queue.conn, "a1", "r1", 3600)
    begin = "select public.begin_integration_token_refresh('amocrm', %s, %s, 30)"
    assert queue.conn.execute(begin, ("w1", 1)).fetchone()[0] == "acquired"
    assert queue.conn.execute(begin, ("w2", 1)).fetchone()[0] == "busy"
    queue.conn.execute("select public.store_integration_token('amocrm', 'a2', 'r2', 3600, 'w1')")
    assert queue.conn.execute(begin, ("w2", 1)).fetchone()[0] == "refreshed"
    with pytest.raises(psycopg.errors.NoDataFound):
        queue.conn.execute("select public.begin_integration_token_refresh('nope', 'w', 1, 30)")


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            Reply(
                400,
                {
                    "title": "Bad Request",
                    "type": "https://httpstatus.es/400",
                    "status": 400,
                    "detail": "Request validation failed",
                    "validation-errors": [
                        {
                            "request_id": "0",
                            "errors": [{"code": "NotSupportedChoice", "path": "status_id", "detail": "x"}],
                        }
                    ],
                },
            ),
            PermanentError,
        ),
        (Reply(500, {"title": "Internal Server Error", "status": 500, "detail": "oops"}), TransientError),
        (
            Reply(
                429,
                {"title": "Too Many Requests", "status": 429, "detail": "Too Many Requests"},
                {"retry-after": "2"},
            ),
            RateLimitedError,
        ),
        (Reply(200, delay=1.0), TransientError),
        # shapes AmoCRM does not document (found by review: TypeError / AttributeError escaped,
        # and the worker took a 503 for a malformed job)
        (Reply(503, {"title": "x", "validation-errors": 5}), TransientError),
        (Reply(502, {"validation-errors": [1]}), TransientError),
        (Reply(502, [{"errors": "bad"}]), TransientError),
        (
            Reply(400, {"validation-errors": [{"errors": "bad"}, {"errors": [7, {"code": "Bad"}]}]}),
            PermanentError,
        ),
    ],
    ids=[
        "4xx",
        "5xx",
        "429",
        "timeout",
        "errors-a-number",
        "error-items-numbers",
        "body-a-list",
        "errors-of-odd-shapes",
    ],
)
def test_api_errors_are_classified(
    fake: FakeProviders, queue: Outbox, db_url: str, reply: Reply, error: type
) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    fake.script("amocrm_leads", reply)
    with connect(db_url) as conn, httpx.Client(timeout=0.3) as http, pytest.raises(error) as err:
        _client(conn, fake, http, "w").move_lead_stage(77, 3)
    assert "amo-access" not in str(err.value)
    assert f"HTTP {reply.status}" in str(err.value) or reply.delay
    if error is PermanentError and reply.status == 400 and "Bad" in str(err.value):
        assert str(err.value).endswith("[?: Bad]")
    elif error is PermanentError:
        assert "status_id: NotSupportedChoice" in str(err.value)
    if error is RateLimitedError:
        assert err.value.retry_after == 2


@pytest.fixture()
def lead(owner_conn: psycopg.Connection) -> Iterator[uuid.UUID]:
    email, phone = _person("lead", "701")
    lead_id = owner_conn.execute(
        "insert into public.traffic_leads (name, phone, email, source, first_utm_source, first_touch_at)"
        " values ('Даурен', %s, %s, 'expresscourse', 'fb_arystan', now()) returning id",
        (phone, email),
    ).fetchone()[0]
    yield lead_id
    owner_conn.execute("delete from private.traffic_lead_identifiers where lead_id = %s", (lead_id,))
    owner_conn.execute("delete from public.traffic_leads where id = %s", (lead_id,))


def test_lead_sync_creates_contact_and_lead_and_marks_the_lead_synced(
    fake: FakeProviders, queue: Outbox, db_url: str, lead: uuid.UUID
) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    before = queue.conn.execute("select unsynced, not_queued from public.amocrm_sync_backlog").fetchone()
    assert before[0] >= 1 and before[1] >= 1
    assert queue.conn.execute("select public.enqueue_amocrm_lead_sync()").fetchone()[0] >= 1
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")  # the lead keeps its one job
    assert (
        queue.conn.execute(
            "select count(*) from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead}",)
        ).fetchone()[0]
        == 1
    )
    # the lead create fails once: the retry must reuse the contact created the first time
    fake.script("amocrm_leads", Reply(502, {"title": "Bad Gateway", "status": 502}))
    run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    contacts = [c for c in fake.calls("amocrm_contacts") if c.method == "POST"]
    print(
        queue.conn.execute("select * from public.integration_logs").fetchall(),
        [(c.method, c.path) for c in fake.requests],
    )
    assert len(contacts) == 1
    body = contacts[0].json()[0]
    assert body["name"] == "Даурен" and body["custom_fields_values"][0]["field_code"] == "PHONE"
    creates = [
        c
        for c in fake.calls("amocrm_leads")
        if c.method == "POST" and c.json()[0]["name"].startswith("Даурен")
    ]
    assert len(creates) == 2
    sent = creates[1].json()[0]
    assert sent["pipeline_id"] == 7001 and sent["_embedded"]["contacts"][0]["id"] > 0
    assert {t["name"] for t in sent["_embedded"]["tags"]} == {"expresscourse", "fb_arystan"}
    row = queue.conn.execute(
        "select amocrm_synced, amocrm_synced_at is not null, amocrm_contact_id, amocrm_lead_id"
        " from public.traffic_leads where id = %s",
        (lead,),
    ).fetchone()
    assert row[0] and row[1] and row[2] == sent["_embedded"]["contacts"][0]["id"] and row[3] > 0
    after = queue.conn.execute("select unsynced from public.amocrm_sync_backlog").fetchone()[0]
    assert after == before[0] - 1


def test_lesson_stage_jobs_move_the_deal(fake: FakeProviders, queue: Outbox, db_url: str) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    queue.conn.execute("select public.enqueue_amocrm_lesson_stage(555, 2)")
    queue.conn.execute("select public.enqueue_amocrm_lesson_stage(555, 2)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="lesson number"):
        queue.conn.execute("select public.enqueue_amocrm_lesson_stage(555, 4)")
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.succeeded == 1
    (patch,) = fake.calls("amocrm_leads")
    assert patch.method == "PATCH" and patch.path == "/api/v4/leads/555"
    assert patch.json() == {"status_id": 102, "pipeline_id": 7001}


def test_a_retried_earlier_lesson_does_not_move_the_deal_back(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Lesson 2's move fails (502) and is retried after lesson 3's went through: it moved the
    deal back to lesson 2 (found by review). Now it sees lesson 3 done and stops."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    second = queue.conn.execute("select public.enqueue_amocrm_lesson_stage(777, 2)").fetchone()[0]
    queue.conn.execute("select public.enqueue_amocrm_lesson_stage(777, 3)")
    fake.script("amocrm_leads", Reply(502, {"title": "Bad Gateway", "status": 502}))
    report = run_worker(worker_settings(fake, db_url, OUTBOX_CONCURRENCY="1"), once=True, services=["amocrm"])
    assert [c.json()["status_id"] for c in fake.calls("amocrm_leads")] == [102, 103]
    assert (report.retried, report.succeeded, report.skipped) == (1, 1, 1)
    log = queue.conn.execute(
        "select status, error_message from public.integration_logs where job_id = %s order by id", (second,)
    ).fetchall()
    assert log == [
        ("failed", "amocrm stage move: HTTP 502 Bad Gateway"),
        ("skipped", "deal 777 was moved to lesson 3 already"),
    ]


def test_one_move_of_a_deal_at_a_time(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """Lesson 2's and lesson 3's moves running at once could both pass the "later lesson
    moved?" check and reach AmoCRM in the wrong order (the deal stayed at lesson 2). A move
    now waits while another move of the same deal is under way, spending no attempt."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    job = queue.conn.execute("select public.enqueue_amocrm_lesson_stage(888, 2)").fetchone()[0]
    key = "deal/888"
    owner_conn.execute("select pg_catalog.pg_advisory_lock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, key))
    try:
        report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
        assert report.succeeded == 0 and fake.calls("amocrm_leads") == []
        status, attempts, wait = queue.conn.execute(
            "select status, attempts, run_after > now() from public.outbox_jobs where id = %s", (job,)
        ).fetchone()
        assert (status, wait) == ("pending", True) and attempts <= 1
        # the other move (lesson 3) finished meanwhile: this one must not move the deal back
        queue.conn.execute("select public.enqueue_amocrm_lesson_stage(888, 3)")
        queue.conn.execute(
            "update public.outbox_jobs set status = 'done', run_after = null where idempotency_key = 'amocrm_stage/888/3'"
        )
    finally:
        owner_conn.execute(
            "select pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, key)
        )
    queue.conn.execute("update public.outbox_jobs set run_after = now() where id = %s", (job,))
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.skipped == 1 and fake.calls("amocrm_leads") == []
    assert queue.conn.execute(
        "select error_message from public.integration_logs where job_id = %s order by id desc limit 1", (job,)
    ).fetchone() == ("deal 888 was moved to lesson 3 already",)


def _imported_leads(owner_conn: psycopg.Connection) -> tuple[uuid.UUID, uuid.UUID]:
    """Two leads imported from Landing in 2024 (the caller removes them)."""
    imported, returned = (
        owner_conn.execute(
            "insert into public.traffic_leads (name, legacy_source_table, legacy_id, created_at)"
            " values (%s, 'landing_leads', %s, '2024-01-05') returning id",
            (name, str(uuid.uuid4())),
        ).fetchone()[0]
        for name in ("Старый лид", "Вернулся")
    )
    return imported, returned


def test_leads_imported_from_landing_are_synced_only_when_asked(
    queue: Outbox, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """After a cut-over, years-old Landing leads must not become new deals by default; a
    Landing person who came back through Traffic (an event recorded in Traffic) is queued."""
    imported, returned = _imported_leads(owner_conn)
    owner_conn.execute(
        "insert into public.traffic_lead_journey (lead_id, stage, legacy_source_table, legacy_id)"
        " values (%s, 'lead_captured', 'landing_leads', 'x'), (%s, 'lead_captured', 'landing_leads', 'y'),"
        " (%s, 'proftest_submitted', null, null)",
        (imported, returned, returned),
    )
    try:

        def queued(lead_id: uuid.UUID) -> int:
            return queue.conn.execute(
                "select count(*) from public.outbox_jobs where idempotency_key = %s",
                (f"amocrm_sync/{lead_id}",),
            ).fetchone()[0]

        waiting = queue.conn.execute("select legacy_not_queued from public.amocrm_sync_backlog").fetchone()[0]
        assert waiting >= 1
        queue.conn.execute("select public.enqueue_amocrm_lead_sync(p_limit => 100000)")
        assert queued(lead) == 1 and queued(returned) == 1 and queued(imported) == 0
        queue.conn.execute(
            "select public.enqueue_amocrm_lead_sync(p_limit => 100000, p_include_legacy => true)"
        )
        assert queued(imported) == 1
        assert (
            queue.conn.execute("select legacy_not_queued from public.amocrm_sync_backlog").fetchone()[0]
            == waiting - 1
        )
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_include_legacy must not be NULL"):
            queue.conn.execute("select public.enqueue_amocrm_lead_sync(p_include_legacy => null)")
    finally:
        for lead_id in (imported, returned):
            owner_conn.execute(
                "delete from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead_id}",)
            )
            owner_conn.execute("delete from public.traffic_lead_journey where lead_id = %s", (lead_id,))
            owner_conn.execute("delete from public.traffic_leads where id = %s", (lead_id,))


def test_each_sync_call_queues_the_next_leads_even_behind_dead_jobs(
    queue: Outbox, owner_conn: psycopg.Connection
) -> None:
    """Leads that already have a job (a dead one too) do not hold the places of the oldest
    unsynced leads: a batch of p_limit queues the next ones and says how many; 0 when none are left."""
    leads = [
        owner_conn.execute(
            "insert into public.traffic_leads (name, created_at) values (%s, %s) returning id",
            (f"Очередь {i}", f"1990-01-0{i + 1}"),
        ).fetchone()[0]
        for i in range(4)
    ]
    last_job = queue.conn.execute("select coalesce(max(id), 0) from public.outbox_jobs").fetchone()[0]

    def job_status(lead_id: uuid.UUID) -> str | None:
        row = queue.conn.execute(
            "select status::text from public.outbox_jobs where idempotency_key = %s",
            (f"amocrm_sync/{lead_id}",),
        ).fetchone()
        return row[0] if row else None

    def enqueue(limit: int) -> int:
        return queue.conn.execute(
            "select public.enqueue_amocrm_lead_sync(p_limit => %s)", (limit,)
        ).fetchone()[0]

    try:
        assert enqueue(1) == 1
        assert [job_status(x) for x in leads] == ["pending", None, None, None]
        owner_conn.execute(  # its sync failed for good: the lead stays unsynced
            "update public.outbox_jobs set status = 'dead', run_after = null where idempotency_key = %s",
            (f"amocrm_sync/{leads[0]}",),
        )
        assert enqueue(1) == 1
        assert [job_status(x) for x in leads] == ["dead", "pending", None, None]
        queued = enqueue_lead_notifications(queue.conn, lead_ids=[], amocrm_batch=1)  # repeats until 0
        assert queued.amocrm_sync_jobs >= 2
        assert [job_status(x) for x in leads] == ["dead", "pending", "pending", "pending"]
        assert enqueue(1000) == 0
        backlog = queue.conn.execute("select not_queued - legacy_not_queued from public.amocrm_sync_backlog")
        assert backlog.fetchone()[0] == 0
    finally:
        owner_conn.execute("delete from public.outbox_jobs where id > %s and kind = 'amocrm'", (last_job,))
        for lead_id in leads:
            owner_conn.execute(
                "delete from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead_id}",)
            )
            owner_conn.execute("delete from public.traffic_leads where id = %s", (lead_id,))


def _sync_job(conn: psycopg.Connection, lead: uuid.UUID) -> bool:
    return conn.execute(
        "select exists (select from public.outbox_jobs where idempotency_key = %s)", (f"amocrm_sync/{lead}",)
    ).fetchone()[0]


def test_the_new_lead_sweep_passes_over_merged_leads_and_leads_with_a_dead_job(
    queue: Outbox, owner_conn: psycopg.Connection, old_leads: Callable[..., uuid.UUID]
) -> None:
    """The worker's sweep of new leads (every housekeeping period) queues live leads without
    a job: a merged one would become a second deal; a lead whose job went dead, offered again,
    took its place in every batch, and the worker's loop stopped at the short batch (mutation
    review: neither was pinned for this sweep)."""
    first, second, merged = old_leads(), old_leads(), old_leads()
    owner_conn.execute(
        "update public.traffic_leads set merged_into = %s, merged_at = now() where id = %s", (first, merged)
    )
    sweep = "select public.enqueue_amocrm_new_lead_syncs(1)"
    assert queue.conn.execute(sweep).fetchone() == (1,) and _sync_job(queue.conn, first)
    owner_conn.execute(
        "update public.outbox_jobs set status = 'dead', run_after = null where idempotency_key = %s",
        (f"amocrm_sync/{first}",),
    )
    assert queue.conn.execute(sweep).fetchone() == (1,) and _sync_job(queue.conn, second)
    queue.conn.execute("select public.enqueue_amocrm_new_lead_syncs(100000)")
    assert not _sync_job(queue.conn, merged)


def test_the_legacy_sweep_passes_over_leads_already_in_amocrm(
    queue: Outbox, old_leads: Callable[..., uuid.UUID]
) -> None:
    """``p_include_legacy`` after a cut-over queues Landing's leads AmoCRM does not hold yet: one
    it holds (synced, with its deal) queued again is a needless sync for each of hundreds of
    thousands, and a risk of a second deal (mutation review)."""
    synced = old_leads(amocrm_synced=True, amocrm_lead_id=4242, legacy_source_table="landing_leads")
    unsynced = old_leads(legacy_source_table="landing_leads")
    queue.conn.execute("select public.enqueue_amocrm_lead_sync(100000, true)")
    assert (_sync_job(queue.conn, synced), _sync_job(queue.conn, unsynced)) == (False, True)


def test_concurrent_sync_calls_queue_other_leads(
    queue: Outbox, owner_conn: psycopg.Connection, db_url: str
) -> None:
    """A call that runs while another is still open waits for it and queues the next leads:
    it never returns 0 ("nothing left") while leads are left."""
    leads = [
        owner_conn.execute(
            "insert into public.traffic_leads (name, created_at) values (%s, %s) returning id",
            (f"Параллельно {i}", f"1990-02-0{i + 1}"),
        ).fetchone()[0]
        for i in range(4)
    ]
    result: list[int] = []
    try:
        with connect(db_url) as first, connect(db_url) as second:
            first.execute("begin")
            assert first.execute("select public.enqueue_amocrm_lead_sync(p_limit => 2)").fetchone()[0] == 2
            waiter = threading.Thread(
                target=lambda: result.append(
                    second.execute("select public.enqueue_amocrm_lead_sync(p_limit => 2)").fetchone()[0]
                )
            )
            waiter.start()
            waiter.join(0.5)
            assert waiter.is_alive()  # waits for the first call's transaction
            first.execute("commit")
            waiter.join(10)
        assert result == [2]
        queued = owner_conn.execute(
            "select count(*) from public.outbox_jobs where idempotency_key = any(%s)",
            ([f"amocrm_sync/{x}" for x in leads],),
        ).fetchone()[0]
        assert queued == 4
    finally:
        for lead_id in leads:
            owner_conn.execute(
                "delete from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead_id}",)
            )
            owner_conn.execute("delete from public.traffic_leads where id = %s", (lead_id,))


def _wait_for(check: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_sync_waiting_on_a_row_lock_keeps_its_lease_and_makes_one_deal(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """Another transaction (a merge, a consolidation batch) holds the lead's row for three
    leases. The heartbeat ran on the handler's own connection, which waited on that lock: the
    lease ran out, the job was recovered, and a second thread synced the lead again (two
    contacts, two deals). Now the leases are kept from a connection of their own."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    job_id = queue.enqueue("amocrm", {"action": "sync_lead", "lead_id": str(lead)}, f"amocrm_sync/{lead}")
    settings = worker_settings(fake, db_url, OUTBOX_LEASE_SECONDS="1", OUTBOX_CONCURRENCY="2")
    worker = Worker(WorkerConfig.from_settings(settings, ["amocrm"]))
    with psycopg.connect(db_url) as locker:
        locker.execute("select 1 from public.traffic_leads where id = %s for update", (lead,))
        runner = threading.Thread(target=worker.run)
        runner.start()
        try:
            _wait_for(lambda: any(c.method == "POST" for c in fake.calls("amocrm_contacts")))
            time.sleep(3.0)  # the handler waits on the lock for three leases
        finally:
            locker.rollback()
    try:
        _wait_for(
            lambda: queue.conn.execute(
                "select status = 'done' from public.outbox_jobs where id = %s", (job_id,)
            ).fetchone()[0]
        )
    finally:
        worker.stop.set()
        runner.join(timeout=30)
    posts = [(c.route, c.method) for c in fake.requests if c.method == "POST" and c.route != "amocrm_token"]
    assert posts == [("amocrm_contacts", "POST"), ("amocrm_leads", "POST")]
    logs = queue.conn.execute(
        "select action, status from public.integration_logs where job_id = %s order by id", (job_id,)
    ).fetchall()
    assert logs == [("sync_lead", "success")]
    assert worker.report.recovered == 0 and worker.report.lost == 0


@pytest.fixture()
def intake(owner_conn: psycopg.Connection) -> Iterator[Callable[..., uuid.UUID]]:
    """Intake as the forms call it; every lead it made is removed afterwards (other tests
    count committed leads and journey rows)."""
    made: set[uuid.UUID] = set()

    def call(**args: str) -> uuid.UUID:
        names = ", ".join(f"{k} => %s" for k in args)
        lead_id = owner_conn.execute(
            f"select lead_id from public.find_or_create_unified_lead({names})", tuple(args.values())
        ).fetchone()[0]
        made.add(lead_id)
        return lead_id

    yield call
    ids = list(made)
    with owner_conn.transaction():
        owner_conn.execute("delete from public.traffic_lead_journey where lead_id = any(%s)", (ids,))
        owner_conn.execute("delete from public.traffic_lead_merges where winner_id = any(%s)", (ids,))
        owner_conn.execute("delete from private.traffic_lead_identifiers where lead_id = any(%s)", (ids,))
        for losers_first in ("merged_into is not null", "true"):
            owner_conn.execute(
                f"delete from public.traffic_leads where id = any(%s) and {losers_first}", (ids,)
            )


def _person(tag: str, operator: str) -> tuple[str, str]:
    """A new person's e-mail and Kazakh mobile (``operator``: one normalize_phone reads, such
    as 701, 705, 707; not 703 or 704, which libphonenumber does not number)."""
    suffix = uuid.uuid4().hex[:6]
    return f"{tag}-{suffix}@example.kz", f"+7{operator}{int(suffix, 16) % 10**7:07d}"


def test_a_merge_during_a_sync_keeps_the_persons_first_deal(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    owner_conn: psycopg.Connection,
    intake: Callable[..., uuid.UUID],
) -> None:
    """Lead B (e-mail) is being synced when a form ties it to lead A (phone), synced already:
    the merge gives B A's contact and deal. B's job created a second contact and deal and
    stored them over A's. Now the ids stored first win and the deal goes to them; the contact
    made in vain is named in the log."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    email, phone = _person("merge", "702")
    b = intake(p_email=email, p_source="profitest")
    a = intake(p_phone=phone, p_source="profitest")
    _sync_during_a_merge(fake, db_url, owner_conn, intake, a, b, phone, email)


def _sync_during_a_merge(
    fake: FakeProviders,
    db_url: str,
    owner_conn: psycopg.Connection,
    intake: Callable[..., uuid.UUID],
    a: uuid.UUID,
    b: uuid.UUID,
    phone: str,
    email: str,
) -> None:
    with connect(db_url) as conn, httpx.Client(timeout=10) as http:
        sync_lead(conn, _client(conn, fake, http, "wA"), {"lead_id": str(a)})
    a_ids = owner_conn.execute(
        "select amocrm_contact_id, amocrm_lead_id from public.traffic_leads where id = %s", (a,)
    ).fetchone()
    fake.script("amocrm_contacts", Reply(204, delay=1.5))  # B's contact search is slow
    outcome: list[Delivery] = []

    def sync_b() -> None:
        with connect(db_url) as conn, httpx.Client(timeout=10) as http:
            outcome.append(sync_lead(conn, _client(conn, fake, http, "wB"), {"lead_id": str(b)}))

    runner = threading.Thread(target=sync_b)
    runner.start()
    _wait_for(lambda: len(fake.calls("amocrm_contacts")) >= 3)  # A: search + create; B: search
    assert intake(p_phone=phone, p_email=email, p_source="profitest") == b  # A merged into B
    runner.join(timeout=30)
    b_ids = owner_conn.execute(
        "select amocrm_contact_id, amocrm_lead_id, amocrm_synced from public.traffic_leads where id = %s",
        (b,),
    ).fetchone()
    assert b_ids == (*a_ids, True)
    deals = [c for c in fake.calls("amocrm_leads") if c.method == "POST"]
    assert len(deals) == 1  # A's; B's job updated that deal
    (done,) = outcome
    assert done.provider_ref == str(a_ids[1])
    assert "merge the duplicates in AmoCRM" in (done.note or "") and str(a_ids[0]) in (done.note or "")


class _MergingClient(AmoCrmClient):
    """An AmoCRM client that runs ``merge`` once, just before its call named ``when``: a
    form tying two people's leads arrives while the sync's HTTP calls run."""

    def __init__(self, base: AmoCrmClient, when: str, merge: Callable[[], None]) -> None:
        super().__init__(base.http, base.config, base.tokens)
        self._when, self._merge = when, merge

    def _hook(self, name: str) -> None:
        if name == self._when:
            self._when = ""
            self._merge()

    def upsert_contact(self, *args: Any, **kwargs: Any) -> int:
        self._hook("upsert_contact")
        return super().upsert_contact(*args, **kwargs)

    def upsert_lead(self, *args: Any, **kwargs: Any) -> int:
        self._hook("upsert_lead")
        return super().upsert_lead(*args, **kwargs)


def test_a_lead_merged_away_during_its_sync_leaves_the_survivors_deal_alone(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    owner_conn: psycopg.Connection,
    intake: Callable[..., uuid.UUID],
) -> None:
    """Lead A (phone) is synced, with its deal. Lead B (e-mail, newer) is being synced when a
    form ties them: B is merged into A. B's job stops at its store of the contact it made,
    names A's deal and makes no deal of its own (mutation review: the "merged meanwhile"
    branch was unpinned)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    email, phone = _person("away", "705")
    a = intake(p_phone=phone, p_source="profitest")
    b = intake(p_email=email, p_source="profitest")
    with connect(db_url) as conn, httpx.Client(timeout=10) as http:
        sync_lead(conn, _client(conn, fake, http, "wA"), {"lead_id": str(a)})
        a_contact, a_deal = owner_conn.execute(
            "select amocrm_contact_id, amocrm_lead_id from public.traffic_leads where id = %s", (a,)
        ).fetchone()
        deals_before = len([c for c in fake.calls("amocrm_leads") if c.method == "POST"])

        def merge() -> None:
            assert intake(p_phone=phone, p_email=email, p_source="profitest") == a

        client = _MergingClient(_client(conn, fake, http, "wB"), "upsert_contact", merge)
        done = sync_lead(conn, client, {"lead_id": str(b)})
    assert done.skipped and done.provider_ref is None
    assert done.note == f"lead was merged during the sync; the surviving lead has deal {a_deal}"
    assert len([c for c in fake.calls("amocrm_leads") if c.method == "POST"]) == deals_before
    assert owner_conn.execute(
        "select merged_into, amocrm_lead_id from public.traffic_leads where id = %s", (b,)
    ).fetchone() == (a, None)
    assert owner_conn.execute(
        "select amocrm_contact_id, amocrm_lead_id from public.traffic_leads where id = %s", (a,)
    ).fetchone() == (a_contact, a_deal)


def test_a_deal_goes_to_the_contact_a_merge_gave_the_lead_during_its_sync(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    owner_conn: psycopg.Connection,
    intake: Callable[..., uuid.UUID],
) -> None:
    """Lead A (phone) has an AmoCRM contact and no deal yet. Lead B (e-mail, older) is making
    its contact when a form ties them: A is merged into B, which takes A's contact. B's deal
    is made on that stored contact, and the contact B's job made is named (mutation review:
    the deal's contact was unpinned)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    email, phone = _person("kept", "708")
    b = intake(p_email=email, p_source="profitest")
    a = intake(p_phone=phone, p_source="profitest")
    owner_conn.execute("update public.traffic_leads set amocrm_contact_id = 4444 where id = %s", (a,))
    with connect(db_url) as conn, httpx.Client(timeout=10) as http:

        def merge() -> None:
            assert intake(p_phone=phone, p_email=email, p_source="profitest") == b

        client = _MergingClient(_client(conn, fake, http, "wB"), "upsert_contact", merge)
        done = sync_lead(conn, client, {"lead_id": str(b)})
    (deal,) = [c.json()[0] for c in fake.calls("amocrm_leads") if c.method == "POST"]
    assert deal["_embedded"]["contacts"] == [{"id": 4444}]
    note = re.fullmatch(
        r"amocrm: contact (\d+) made while a merge gave the lead contact 4444: merge the duplicates in AmoCRM",
        done.note or "",
    )
    assert note and int(note[1]) != 4444, done.note
    assert owner_conn.execute(
        "select amocrm_contact_id, amocrm_lead_id::text from public.traffic_leads where id = %s", (b,)
    ).fetchone() == (4444, done.provider_ref)


@pytest.mark.parametrize("synced_lead_is", ["newer", "older"])
def test_a_deal_made_while_a_merge_gave_the_lead_a_deal_is_named_and_the_stored_one_kept(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    owner_conn: psycopg.Connection,
    intake: Callable[..., uuid.UUID],
    synced_lead_is: str,
) -> None:
    """Lead B (e-mail) has stored its new contact and is creating its deal when a form ties it
    to lead A (phone, synced): whichever of the two survives holds A's deal. The deal B's job
    made is the one in vain: the job answers with the stored deal and names the other, so
    sales can merge them (mutation review: unpinned)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    email, phone = _person("late", "707")
    if synced_lead_is == "older":
        a = intake(p_phone=phone, p_source="profitest")
    b = intake(p_email=email, p_source="profitest")
    if synced_lead_is == "newer":
        a = intake(p_phone=phone, p_source="profitest")
    survivor = b if synced_lead_is == "newer" else a
    with connect(db_url) as conn, httpx.Client(timeout=10) as http:
        sync_lead(conn, _client(conn, fake, http, "wA"), {"lead_id": str(a)})
        a_deal = owner_conn.execute(
            "select amocrm_lead_id from public.traffic_leads where id = %s", (a,)
        ).fetchone()[0]

        def merge() -> None:
            assert intake(p_phone=phone, p_email=email, p_source="profitest") == survivor

        client = _MergingClient(_client(conn, fake, http, "wB"), "upsert_lead", merge)
        done = sync_lead(conn, client, {"lead_id": str(b)})
    assert done.provider_ref == str(a_deal) and not done.skipped
    note = re.fullmatch(
        rf"amocrm: deal (\d+) made while a merge gave the lead deal {a_deal}: merge the duplicates in AmoCRM",
        done.note or "",
    )
    assert note and int(note[1]) != a_deal, done.note
    assert fake.calls("amocrm_leads")[-1].method == "POST"
    assert owner_conn.execute(
        "select amocrm_lead_id, amocrm_synced from public.traffic_leads where id = %s", (survivor,)
    ).fetchone() == (a_deal, True)


def test_one_worker_at_a_time_syncs_a_lead(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """A second run of the job (after a lost lease) waits its turn instead of creating again."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    holder = owner_conn.execute(
        "select pg_catalog.pg_advisory_lock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, str(lead))
    )
    assert holder is not None
    try:
        with connect(db_url) as conn, httpx.Client(timeout=5) as http:
            with pytest.raises(RateLimitedError, match="being synced by another worker") as err:
                sync_lead(conn, _client(conn, fake, http, "w2"), {"lead_id": str(lead)})
            assert err.value.retry_after == 5.0 and fake.requests == []
    finally:
        owner_conn.execute(
            "select pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, str(lead))
        )
    with connect(db_url) as conn, httpx.Client(timeout=5) as http:
        assert sync_lead(conn, _client(conn, fake, http, "w2"), {"lead_id": str(lead)}).provider_ref


def test_a_token_refresh_holds_its_lease_longer_than_its_http_call(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """The refresh lease was a fixed 30 s whatever OUTBOX_HTTP_TIMEOUT_SECONDS said: a token
    endpoint slower than that let a second worker spend the single-use refresh token again."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    queue.enqueue("amocrm", {"action": "move_stage", "amocrm_lead_id": 9100, "lesson": 1}, "stage/9100/1")
    fake.script("amocrm_token", Reply(delay=1.5, usual=True))
    settings = worker_settings(fake, db_url, OUTBOX_HTTP_TIMEOUT_SECONDS="20")
    runner = threading.Thread(
        target=run_worker, args=(settings,), kwargs={"once": True, "services": ["amocrm"]}
    )
    runner.start()
    lease: list[float] = []

    def leased() -> bool:
        row = queue.conn.execute(
            "select extract(epoch from refresh_lease_expires_at - now())::float8 from public.integration_tokens"
            " where service_name = 'amocrm' and refresh_owner is not null"
        ).fetchone()
        lease.extend([row[0]] if row else [])
        return row is not None

    _wait_for(leased)
    runner.join(timeout=30)
    assert lease[0] > 4 * 20  # four times the HTTP timeout (and at least 30 s)
    assert fake.amo_refreshes == 1


def test_a_worker_serving_amocrm_queues_new_leads_itself(
    fake: FakeProviders, queue: Outbox, owner_conn: psycopg.Connection, db_url: str
) -> None:
    """Intake queues no AmoCRM job and nothing called enqueue_amocrm_lead_sync, so a lead
    that came in through the API never reached AmoCRM (found by review). The worker now
    queues new leads every housekeeping period, and an imported lead that came back through
    Traffic once a day, also in a cron-run --once (found by review: only a long-running
    worker did, so with cron such leads never reached AmoCRM); other imported leads wait."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    new = queue.conn.execute(
        "select lead_id from public.find_or_create_unified_lead(p_name => 'Новый', p_phone => %s,"
        " p_source => 'proftest', p_utm_source => 'fb_arystan')",
        (_person("new", "702")[1],),
    ).fetchone()[0]
    imported, returned = _imported_leads(owner_conn)
    owner_conn.execute(
        "insert into public.traffic_lead_journey (lead_id, stage, legacy_source_table, legacy_id)"
        " values (%s, 'proftest_submitted', null, null)",
        (returned,),
    )

    def synced(lead_id: uuid.UUID) -> bool:
        return queue.conn.execute(
            "select amocrm_synced from public.traffic_leads where id = %s", (lead_id,)
        ).fetchone()[0]

    def has_job(lead_id: uuid.UUID) -> bool:
        return queue.conn.execute(
            "select exists (select 1 from public.outbox_jobs where idempotency_key = %s)",
            (f"amocrm_sync/{lead_id}",),
        ).fetchone()[0]

    def sweeps() -> int:
        return queue.conn.execute(
            "select count(*) from public.integration_logs"
            " where service_name = 'outbox' and action = 'amocrm_lead_sweep' and status = 'success'"
        ).fetchone()[0]

    try:
        report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
        assert synced(new) and synced(returned) and report.succeeded >= 2
        assert not has_job(imported)  # did not come back: waits for the operator
        assert sweeps() == 1
        assert queue.conn.execute("select public.enqueue_amocrm_new_lead_syncs()").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="limit must be between"):
            queue.conn.execute("select public.enqueue_amocrm_new_lead_syncs(0)")
        # the next runs of the day, --once or long-running, make the cheap sweep only
        run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
        worker = Worker(WorkerConfig.from_settings(worker_settings(fake, db_url), ["amocrm"]))
        thread = threading.Thread(target=worker.run)
        thread.start()
        time.sleep(1)  # a few housekeeping periods
        worker.stop.set()
        thread.join(timeout=20)
        assert sweeps() == 1 and not has_job(imported)
    finally:
        for lead_id in (new, imported, returned):
            owner_conn.execute(
                "delete from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead_id}",)
            )
            owner_conn.execute("delete from public.traffic_lead_journey where lead_id = %s", (lead_id,))
            owner_conn.execute("delete from private.traffic_lead_identifiers where lead_id = %s", (lead_id,))
            owner_conn.execute("delete from public.traffic_leads where id = %s", (lead_id,))


def test_a_deal_made_while_the_connection_was_lost_is_stored_not_made_again(
    fake: FakeProviders, queue: Outbox, owner_conn: psycopg.Connection, db_url: str, lead: uuid.UUID
) -> None:
    """The job's connection dies while AmoCRM creates the deal: the deal's id is stored through
    a new connection. Before, storing it failed, the job was retried, and a second deal was
    made while the first was lost without a word (found by review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    fake.script("amocrm_leads", Reply(200, delay=1.5, usual=True))
    settings = worker_settings(fake, db_url, OUTBOX_CONCURRENCY="1", OUTBOX_HTTP_TIMEOUT_SECONDS="10")
    worker = Worker(WorkerConfig.from_settings(settings, ["amocrm"]))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while (
            not [c for c in fake.calls("amocrm_leads") if c.method == "POST"] and time.monotonic() < deadline
        ):
            time.sleep(0.02)
        owner_conn.execute(
            "select pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity"
            " where datname = current_database() and application_name = 'onai-db worker'"
        )
        deadline = time.monotonic() + 30
        while (
            time.monotonic() < deadline
            and not queue.conn.execute(
                "select amocrm_synced from public.traffic_leads where id = %s", (lead,)
            ).fetchone()[0]
        ):
            time.sleep(0.05)
        job_done = lambda: queue.conn.execute(  # noqa: E731
            "select status::text from public.outbox_jobs where idempotency_key = %s", (f"amocrm_sync/{lead}",)
        ).fetchone()[0]
        while time.monotonic() < deadline and job_done() != "done":
            time.sleep(0.05)
    finally:
        worker.stop.set()
        thread.join(timeout=30)
    deals = [c for c in fake.calls("amocrm_leads") if c.method == "POST"]
    assert len(deals) == 1
    stored = queue.conn.execute(
        "select amocrm_synced, amocrm_lead_id from public.traffic_leads where id = %s", (lead,)
    ).fetchone()
    assert stored[0] and stored[1] is not None
    assert job_done() == "done"


def test_a_pasted_email_reaches_amocrm_as_read(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """A merge may keep the raw 'mailto:…' of a lead whose address was read only since
    20261214100400: the contact got that text as its e-mail, and the search looked for it
    (found by review). The phone was sent as read already."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    email = owner_conn.execute(
        "select email_normalized from public.traffic_leads where id = %s", (lead,)
    ).fetchone()[0]
    owner_conn.execute(
        "update public.traffic_leads set email = %s where id = %s", (f"mailto:{email.upper()}.", lead)
    )
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.succeeded >= 1
    (create,) = [c for c in fake.calls("amocrm_contacts") if c.method == "POST"]
    fields = {
        f["field_code"]: [v["value"] for v in f["values"]] for f in create.json()[0]["custom_fields_values"]
    }
    assert fields["EMAIL"] == [email]
    searched = [
        q for c in fake.calls("amocrm_contacts") if c.method == "GET" for q in c.query.get("query", [])
    ]
    assert email in searched and all("mailto" not in q for q in searched), searched


def _contact(contact_id: int, phones: list[str], emails: list[str]) -> dict:
    """A contact as AmoCRM's GET /api/v4/contacts lists it (custom_fields_values)."""
    fields = []
    if phones:
        fields.append(
            {"field_id": 1, "field_name": "Телефон", "field_code": "PHONE", "field_type": "multitext",
             "values": [{"value": p, "enum_id": 11, "enum_code": "WORK"} for p in phones]}
        )  # fmt: skip
    if emails:
        fields.append(
            {"field_id": 2, "field_name": "Email", "field_code": "EMAIL", "field_type": "multitext",
             "values": [{"value": e, "enum_id": 21, "enum_code": "WORK"} for e in emails]}
        )  # fmt: skip
    return {"id": contact_id, "name": "x", "custom_fields_values": fields or None}


def test_the_contact_search_takes_only_a_contact_that_holds_the_number_and_keeps_its_values(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """AmoCRM's search matches parts of any field: its first hit was taken even when it was
    another person's contact, and the PATCH replaced the contact's phones and e-mails with
    ours, losing the second number sales had added (found by review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    phone, email = owner_conn.execute(
        "select phone_normalized, email from public.traffic_leads where id = %s", (lead,)
    ).fetchone()
    local = f"8 ({phone[2:5]}) {phone[5:8]}-{phone[8:10]}-{phone[10:]}"  # typed by sales
    hits = [_contact(901, ["+77019999999"], []), _contact(902, [local, "+77470001122"], ["old@example.kz"])]
    fake.script("amocrm_contacts", Reply(200, {"_embedded": {"contacts": hits}}))
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.succeeded >= 1
    (patch,) = [c for c in fake.calls("amocrm_contacts") if c.method == "PATCH"]
    assert patch.path == "/api/v4/contacts/902"
    fields = {
        f["field_code"]: [v["value"] for v in f["values"]] for f in patch.json()["custom_fields_values"]
    }
    assert fields == {"PHONE": [local, "+77470001122"], "EMAIL": ["old@example.kz", email]}
    assert (
        owner_conn.execute(
            "select amocrm_contact_id from public.traffic_leads where id = %s", (lead,)
        ).fetchone()[0]
        == 902
    )


def test_a_search_hit_that_is_someone_else_makes_a_new_contact(
    fake: FakeProviders, queue: Outbox, db_url: str, lead: uuid.UUID
) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    other = {"_embedded": {"contacts": [_contact(901, ["+77019999999"], ["someone@example.kz"])]}}
    fake.script("amocrm_contacts", Reply(200, other), Reply(200, other))  # by phone, then by e-mail
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    methods = [c.method for c in fake.calls("amocrm_contacts")]
    assert methods == ["GET", "GET", "POST"] and "PATCH" not in methods


def test_an_update_of_the_stored_contact_keeps_what_sales_added(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    owner_conn.execute("update public.traffic_leads set amocrm_contact_id = 555 where id = %s", (lead,))
    fake.script("amocrm_contacts", Reply(200, _contact(555, ["+77470001122"], [])))  # GET /contacts/555
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    get, patch = fake.calls("amocrm_contacts")[:2]
    assert (get.method, get.path, patch.method, patch.path) == (
        "GET", "/api/v4/contacts/555", "PATCH", "/api/v4/contacts/555"
    )  # fmt: skip
    phones = next(f["values"] for f in patch.json()["custom_fields_values"] if f["field_code"] == "PHONE")
    assert phones[0] == {"value": "+77470001122", "enum_id": 11, "enum_code": "WORK"} and len(phones) == 2


def test_an_update_of_the_stored_deal_adds_tags_and_leaves_its_pipeline(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection, lead: uuid.UUID
) -> None:
    """A re-sync of a lead that has its deal PATCHed the deal with ``_embedded.tags``, which
    AmoCRM reads as the deal's whole tag list (the tags sales had set were removed), and with
    ``pipeline_id``, which moves a deal sales had put in another pipeline back to ours."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    owner_conn.execute(
        "update public.traffic_leads set amocrm_contact_id = 555, amocrm_lead_id = 4242 where id = %s",
        (lead,),
    )
    fake.script("amocrm_contacts", Reply(200, _contact(555, [], [])))  # GET /contacts/555
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.succeeded >= 1
    (deal,) = fake.calls("amocrm_leads")
    assert (deal.method, deal.path) == ("PATCH", "/api/v4/leads/4242")
    body = deal.json()
    assert set(body) == {"name", "tags_to_add"}, body
    assert {t["name"] for t in body["tags_to_add"]} == {"expresscourse", "fb_arystan"}
    assert owner_conn.execute(
        "select amocrm_synced, amocrm_lead_id from public.traffic_leads where id = %s", (lead,)
    ).fetchone() == (True, 4242)


@pytest.mark.parametrize(
    ("deal", "reused"),
    [
        ({"pipeline_id": 7001, "status_id": 101}, True),  # the deal the killed run made
        ({"pipeline_id": 7001, "status_id": 143}, False),  # closed, not realised: a new one
        ({"pipeline_id": 9999, "status_id": 101}, False),  # another pipeline's deal
        ({"pipeline_id": 7001, "status_id": 101, "name": "Даурен — курс 2023"}, False),  # sales' own
        # made while the lead had only its phone: intake filled the name before the retry
        ({"pipeline_id": 7001, "status_id": 101, "name": "<phone> — expresscourse"}, True),
    ],
)
def test_a_retry_after_a_kill_reuses_the_deal_the_killed_run_made(
    fake: FakeProviders,
    queue: Outbox,
    db_url: str,
    owner_conn: psycopg.Connection,
    lead: uuid.UUID,
    deal: dict[str, Any],
    reused: bool,
) -> None:
    """A worker killed after ``POST /leads`` and before storing the deal had stored the
    contact; the job's next run made a second deal for the same person (found by review).
    The run now reads the stored contact's deals (``with=leads``) and takes an open one of
    ours with the same name; any other deal of the contact is left alone."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    phone = owner_conn.execute(
        "update public.traffic_leads set amocrm_contact_id = 555 where id = %s returning phone_normalized",
        (lead,),
    ).fetchone()[0]
    deal = {k: v.replace("<phone>", phone) if isinstance(v, str) else v for k, v in deal.items()}
    contact = {**_contact(555, [], []), "_embedded": {"leads": [{"id": 4001}, {"id": 4002}]}}
    fake.script("amocrm_contacts", Reply(200, contact))  # GET /contacts/555?with=leads
    deals = [
        {"id": 4001, "name": "Даурен — expresscourse", "pipeline_id": 7001, "status_id": 142},
        {"id": 4002, "name": "Даурен — expresscourse", **deal},
    ]
    fake.script("amocrm_leads", Reply(200, {"_embedded": {"leads": deals}}))  # GET /leads?filter[id]
    queue.conn.execute("select public.enqueue_amocrm_lead_sync()")
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.succeeded >= 1
    read, sent = fake.calls("amocrm_leads")
    assert (read.method, read.path) == ("GET", "/api/v4/leads")
    assert sorted(read.query["filter[id][]"]) == ["4001", "4002"]
    stored = owner_conn.execute("select amocrm_lead_id from public.traffic_leads where id = %s", (lead,))
    if reused:
        assert (sent.method, sent.path) == ("PATCH", "/api/v4/leads/4002")
        assert stored.fetchone()[0] == 4002
    else:
        assert (sent.method, sent.path) == ("POST", "/api/v4/leads")
        assert stored.fetchone()[0] not in (4001, 4002)


def test_the_deal_search_reads_the_newest_fifty_deals_and_takes_the_newest_match(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """A contact of a long-time customer holds more deals than AmoCRM sends on a page (50):
    the search asks for the newest (the highest ids, each once), where a killed run's deal
    is; of two open deals of ours with the name, the newer one is taken (mutation review:
    neither was pinned)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    ids = [*range(60, 0, -1), 60, 45]
    deals = [
        {"id": 30, "name": "Даурен — expresscourse", "pipeline_id": 7001, "status_id": 101},
        {"id": 45, "name": "Даурен — expresscourse", "pipeline_id": 7001, "status_id": 101},
        {"id": 60, "name": "Даурен — expresscourse", "pipeline_id": 7001, "status_id": 142},
    ]
    fake.script("amocrm_leads", Reply(200, {"_embedded": {"leads": deals}}))
    with connect(db_url) as conn, httpx.Client(timeout=5) as http:
        found = _client(conn, fake, http, "w1").find_open_deal(ids, ["Даурен — expresscourse"])
    (read,) = fake.calls("amocrm_leads")
    assert read.query["filter[id][]"] == [str(i) for i in range(11, 61)]
    assert found == 45


def test_a_refreshed_token_the_database_did_not_take_is_kept_and_stored_later(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """AmoCRM rotates the refresh token on every refresh. The connection lost between the
    token endpoint's answer and the store lost the new pair: the next refresh sent the old,
    rotated-away refresh token and the integration needed a new OAuth consent. The pair is
    now kept in the worker and stored by its next refresh, without calling AmoCRM again."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    issued: list[str] = []

    def refresh_and_lose_the_connection(refresh_token: str) -> TokenGrant:
        issued.append(refresh_token)
        # the store's connection is lost meanwhile
        owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (first.info.backend_pid,))
        return TokenGrant("amo-access-2", "amo-refresh-2", 86400)

    def must_not_be_called(refresh_token: str) -> TokenGrant:
        raise AssertionError(f"the provider was asked again, with {refresh_token}")

    with connect(db_url) as first:
        store = TokenStore(first, "amocrm", "w1")
        seen = store.load()
        with pytest.raises(TransientError, match="could not be stored"):
            store.refresh(seen, refresh_and_lose_the_connection)
    assert issued == ["amo-refresh-1"]
    with connect(db_url) as second:
        token = TokenStore(second, "amocrm", "w1").refresh(seen, must_not_be_called)
    assert (token.access_token, token.refresh_token, token.version) == ("amo-access-2", "amo-refresh-2", 2)
    assert token.expires_at is not None and not token.expiring()
    # stored: nothing is kept any more, and the next refresh asks AmoCRM with the new token
    with connect(db_url) as third:
        queue.conn.execute("update public.integration_tokens set expires_at = now() - interval '1 minute'")
        TokenStore(third, "amocrm", "w1").refresh(
            token, lambda rt: issued.append(rt) or TokenGrant("a3", "r3", 60)
        )
    assert issued == ["amo-refresh-1", "amo-refresh-2"]


def _keep_a_pair(db_url: str, owner_conn: psycopg.Connection, access: str, refresh: str) -> None:
    """A refresh whose store loses its connection, with no way to reconnect: the pair is kept."""
    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1")

        def answer_and_lose_the_connection(_refresh_token: str) -> TokenGrant:
            owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return TokenGrant(access, refresh, 86400)

        with pytest.raises(TransientError, match="keeps it"):
            store.refresh(store.load(), answer_and_lose_the_connection)


def _stored(owner_conn: psycopg.Connection) -> tuple[str, str]:
    return owner_conn.execute(
        "select access_token, refresh_token from public.integration_tokens where service_name = 'amocrm'"
    ).fetchone()


def test_a_kept_pair_never_overwrites_a_newer_one(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """The kept pair replaced the refresh token the database held then. Once another pair is
    in (another process refreshed, an operator re-authorized, or the lost store committed
    after all), the kept one is stale: it used to be stored over the newer pair at the next
    refresh, and the valid refresh token was lost (found by review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    _store(queue.conn, "other-access", "other-refresh", -10)  # another process's pair
    asked: list[str] = []
    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1")
        token = store.refresh(store.load(), lambda rt: asked.append(rt) or TokenGrant("a3", "r3", 600))
    assert asked == ["other-refresh"]  # the provider is asked with the stored token, as usual
    assert (token.access_token, token.refresh_token) == ("a3", "r3") == _stored(owner_conn)
    # the refresh's own pair took the stale one's place in the process as it arrived, and was
    # forgotten once stored: nothing is kept any more
    assert store_kept_tokens(lambda: connect(db_url)) == []
    assert _stored(owner_conn) == ("a3", "r3")


def test_a_stale_kept_pair_is_dropped_by_the_databases_check(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A kept pair whose replaced refresh token the database no longer holds is dropped when
    it is to be stored, and says so; one whose token row is gone is dropped with its own
    words (found by review: it read "a newer pair is stored")."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    _store(queue.conn, "other-access", "other-refresh", -10)
    assert store_kept_tokens(lambda: connect(db_url)) == [
        "amocrm: the kept refreshed token was stale (a newer pair is stored) and is dropped"
    ]
    assert store_kept_tokens(lambda: connect(db_url)) == []
    assert _stored(owner_conn) == ("other-access", "other-refresh")
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    owner_conn.execute("delete from public.integration_tokens where service_name = 'amocrm'")
    said = store_kept_tokens(lambda: connect(db_url))
    assert len(said) == 1 and "no token row any more" in said[0], said
    assert store_kept_tokens(lambda: connect(db_url)) == []


def test_a_pair_whose_store_lost_its_connection_is_stored_through_a_new_one(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """Kept only in the process, the pair died with it (``--once`` exits on a lost
    connection) and the other processes spent the rotated-away token: every AmoCRM job went
    dead until a new consent (found by review). It is now stored at once on a new
    connection, and the refresh goes on with it."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1", reconnect=lambda: connect(db_url))

        def answer_and_lose_the_connection(_refresh_token: str) -> TokenGrant:
            owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return TokenGrant("amo-access-2", "amo-refresh-2", 86400)

        token = store.refresh(store.load(), answer_and_lose_the_connection)
    assert (
        (token.access_token, token.refresh_token) == ("amo-access-2", "amo-refresh-2") == _stored(owner_conn)
    )
    assert store_kept_tokens(lambda: connect(db_url)) == []


def test_a_store_through_a_new_connection_that_finds_a_re_authorized_pair_gives_the_lease_back(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """An operator re-authorized while the refresh's connection was cut: the store tried again
    through a new connection kept the operator's pair but not the lease, so every other
    worker's refresh waited for it to lapse (found by review; the first store gave it back)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1", reconnect=lambda: connect(db_url))

        def answer_after_a_re_authorization(_refresh_token: str) -> TokenGrant:
            _store(owner_conn, "operator-access", "operator-refresh", 86400)
            owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return TokenGrant("amo-access-2", "amo-refresh-2", 86400)

        token = store.refresh(store.load(), answer_after_a_re_authorization)
    assert (
        (token.access_token, token.refresh_token)
        == ("operator-access", "operator-refresh")
        == _stored(owner_conn)
    )
    row = owner_conn.execute(
        "select refresh_owner, last_refresh_error from public.integration_tokens where service_name = 'amocrm'"
    ).fetchone()
    assert row[0] is None and "re-authorized" in row[1]
    assert store_kept_tokens(lambda: connect(db_url)) == []


def test_a_worker_on_its_way_out_stores_the_pair_it_keeps_unless_it_is_stale(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    assert store_kept_tokens(lambda: connect(db_url), "w1") == ["amocrm: the kept refreshed token was stored"]
    assert _stored(owner_conn) == ("kept-access", "kept-refresh")
    _keep_a_pair(db_url, owner_conn, "second-access", "second-refresh")
    _store(queue.conn, "consent-access", "consent-refresh", 600)  # an operator re-authorized meanwhile
    assert store_kept_tokens(lambda: connect(db_url), "w1") == [
        "amocrm: the kept refreshed token was stale (a newer pair is stored) and is dropped"
    ]
    assert _stored(owner_conn) == ("consent-access", "consent-refresh")


def test_a_refresh_that_finds_a_newer_version_still_stores_the_pair_this_process_keeps(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A thread whose token is older than the stored one is told 'refreshed'. That threw the
    kept pair away even when it replaced the stored refresh token (its store was lost), and
    the next refresh sent AmoCRM the rotated-away token (found by review). Now the thread
    stores the kept pair under the lease and goes on with it."""
    _store(queue.conn, "amo-access-0", "amo-refresh-0", 600)
    with connect(db_url) as conn:
        old = TokenStore(conn, "amocrm", "w1").load()  # a sibling thread's cached token
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")  # it replaced amo-refresh-1
    # the keeping thread's lease has run out (it keeps the lease while it tries to store)
    queue.conn.execute(
        "update public.integration_tokens set refresh_owner = null, refresh_lease_expires_at = null"
        " where service_name = 'amocrm'"
    )

    def must_not_be_called(refresh_token: str) -> TokenGrant:
        raise AssertionError(f"the provider was asked, with {refresh_token}")

    with connect(db_url) as conn:
        token = TokenStore(conn, "amocrm", "w2").refresh(old, must_not_be_called)
    assert (token.access_token, token.refresh_token) == ("kept-access", "kept-refresh") == _stored(owner_conn)
    assert store_kept_tokens(lambda: connect(db_url)) == []


def _read_only(db_url: str) -> psycopg.Connection:
    """A connection to a server that refuses writes (a replica promoted late, a failover)."""
    return psycopg.connect(db_url, autocommit=True, options="-c default_transaction_read_only=on")


def test_a_store_a_read_only_server_refuses_is_tried_again_and_never_lost(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """Only a lost connection was caught: a new connection that met a read-only server
    (ReadOnlySqlTransaction) ended the tries at once, and on a worker's way out the error
    escaped and hid the thread's own (found by review). Any database error is now one more
    try, and a pair that could not be stored stays kept."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    tries: list[str] = []

    def reconnect() -> psycopg.Connection:
        tries.append("read-only" if not tries else "writable")
        return _read_only(db_url) if len(tries) == 1 else connect(db_url)

    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1", reconnect=reconnect)

        def answer_and_lose_the_connection(_refresh_token: str) -> TokenGrant:
            owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (conn.info.backend_pid,))
            return TokenGrant("amo-access-2", "amo-refresh-2", 86400)

        token = store.refresh(store.load(), answer_and_lose_the_connection)
    assert tries == ["read-only", "writable"]
    assert (
        (token.access_token, token.refresh_token) == ("amo-access-2", "amo-refresh-2") == _stored(owner_conn)
    )

    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    said = store_kept_tokens(lambda: _read_only(db_url), "w1")
    assert len(said) == 1 and "could not be stored" in said[0] and "still kept" in said[0]
    assert store_kept_tokens(lambda: connect(db_url), "w1") == ["amocrm: the kept refreshed token was stored"]
    assert _stored(owner_conn) == ("kept-access", "kept-refresh")


def test_a_worker_stores_the_kept_pair_when_its_connection_is_re_made_and_on_its_way_out(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A long-running worker stored a kept pair only at its next refresh: until then other
    processes could spend the rotated-away token (found by review). It now stores it as soon
    as its connection is re-made, and a worker on its way out (``--once``) stores what it keeps."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    said: list[str] = []
    report = run_worker(worker_settings(fake, db_url), once=True, services=["sms"], echo=said.append)
    assert report.claimed == 0
    # each of the two threads tries on its way out: one stores it; the other finds it stored,
    # or, when the first had stored and forgotten it already, finds nothing kept
    outcomes = sorted(m.split(": ", 1)[1] for m in said[1:])
    assert outcomes in (
        ["amocrm: the kept refreshed token was stored"],
        ["amocrm: the kept refreshed token is stored already", "amocrm: the kept refreshed token was stored"],
    ), said
    assert _stored(owner_conn) == ("kept-access", "kept-refresh")

    _keep_a_pair(db_url, owner_conn, "second-access", "second-refresh")
    # housekeeping (which stores kept pairs every period) out of the way: the re-made connection stores it
    settings = worker_settings(fake, db_url, OUTBOX_POLL_SECONDS="0.2", OUTBOX_HOUSEKEEPING_SECONDS="600")
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]), echo=said.append)
    before = len(said)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        # the threads' connections, not the start-up housekeeping's: a connection lost there
        # ends the run (the test was flaky when it terminated that one)
        _wait_for(
            lambda: (
                any(" started: " in m for m in said[before:])
                and worker_connections(owner_conn) >= worker.config.concurrency
            )
        )
        owner_conn.execute(
            "select pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity"
            " where datname = current_database() and application_name = 'onai-db worker'"
        )
        _wait_for(lambda: _stored(owner_conn) == ("second-access", "second-refresh"))
        assert runner.is_alive(), (
            said,
            worker._errors,
        )  # stored on the re-made connection, not on the way out
    finally:
        worker.stop.set()
        runner.join(timeout=30)
    assert any("database connection re-made" in m for m in said), said


def test_a_stopping_worker_stores_its_kept_pair_before_its_busy_threads_end(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A stop (SIGTERM sets ``stop``) stores a kept pair at once: the wait for it joined each
    busy thread for up to a second in turn, so with 8 threads in slow calls the pair was
    stored only after their calls had ended, and with 32 past a 30 s grace period (found by
    review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    threads = 8
    for i in range(threads):
        queue.enqueue("sms", {"to": "+77011234567", "text": f"slow {i}"}, f"stop-slow/{i}")
    fake.script(
        "mobizon", *[Reply(200, {"code": 0, "data": {"messageId": "9"}, "message": ""}, delay=5.0)] * threads
    )
    settings = worker_settings(
        fake,
        db_url,
        OUTBOX_CONCURRENCY=str(threads),
        OUTBOX_HTTP_TIMEOUT_SECONDS="20",
        OUTBOX_HOUSEKEEPING_SECONDS="600",
    )
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]), echo=lambda _m: None)
    runner = threading.Thread(target=worker.run)
    runner.start()
    try:
        _wait_for(lambda: len(fake.calls("mobizon")) == threads)
        _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
        worker.stop.set()
        _wait_for(lambda: _stored(owner_conn) == ("kept-access", "kept-refresh"))
        statuses = owner_conn.execute(
            "select status, count(*) from public.outbox_jobs where idempotency_key like 'stop-slow/%%' group by 1"
        ).fetchall()
        assert statuses == [("running", threads)], "stored only after the busy threads' calls ended"
    finally:
        worker.stop.set()
        runner.join(timeout=60)
        integration_tokens._unsaved.clear()
    assert owner_conn.execute(
        "select count(*) from public.outbox_jobs where idempotency_key like 'stop-slow/%%' and status = 'done'"
    ).fetchone() == (threads,)


def worker_connections(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "select count(*) from pg_catalog.pg_stat_activity"
        " where datname = current_database() and application_name = 'onai-db worker'"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_store_forgets_only_the_pair_it_stored(
    queue: Outbox, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A successful store forgot whatever pair the process kept: another thread that had
    refreshed from the pair just stored, and kept the result when its own store failed, lost
    it, and the database held a spent refresh token (found by review)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    newer = (TokenGrant("C-access-3", "C-refresh-3", 3600), time.monotonic(), "B-refresh-2")
    real = integration_tokens._store_if_current

    def slow_answer(*args: Any) -> str:
        stored = real(*args)
        with integration_tokens._unsaved_lock:  # meanwhile: thread C refreshed from B-refresh-2
            integration_tokens._unsaved["amocrm"] = newer  # and could not store its pair
        return stored

    monkeypatch.setattr(integration_tokens, "_store_if_current", slow_answer)
    try:
        with connect(db_url) as conn:
            store = TokenStore(conn, "amocrm", "wB")
            store.refresh(store.load(), lambda _rt: TokenGrant("B-access-2", "B-refresh-2", 3600))
        monkeypatch.setattr(integration_tokens, "_store_if_current", real)
        assert integration_tokens._unsaved.get("amocrm") is newer
        said = store_kept_tokens(lambda: connect(db_url), "wC")
        assert said == ["amocrm: the kept refreshed token was stored"]
    finally:
        integration_tokens._unsaved.clear()


def _waits_on_the_held_token_row(db_url: str, action: Callable[[], None]) -> bool:
    """Runs ``action`` in a thread while another session holds the AmoCRM token row; whether
    it was still waiting after 30 s (the row is let go then, and the thread joined)."""
    with psycopg.connect(db_url) as holder:
        holder.execute("select 1 from public.integration_tokens where service_name = 'amocrm' for update")
        running = threading.Thread(target=action)
        running.start()
        running.join(timeout=30)
        waited = running.is_alive()
        holder.rollback()
        running.join()
    return waited


def test_a_store_that_meets_a_held_token_row_gives_up_and_keeps_the_pair(
    db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A store's session cut off between its lock and its write kept the token row locked
    until TCP keepalive gave up, and every refresh (and the next store) waited on it (found by
    review). A store now waits on the row at most a few seconds, keeps the pair, and the
    server ends such an idle session on its own."""
    try:
        _store(owner_conn, "amo-access-1", "amo-refresh-1", 3600)
        _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
        said: list[str] = []
        waited = _waits_on_the_held_token_row(
            db_url, lambda: said.extend(store_kept_tokens(lambda: connect(db_url), "w1"))
        )
        assert not waited, "the store waited on the held row"
        assert len(said) == 1 and "lock timeout" in said[0] and "still kept" in said[0], said
        assert _stored(owner_conn) == ("amo-access-1", "amo-refresh-1")
        assert store_kept_tokens(lambda: connect(db_url), "w1") == [
            "amocrm: the kept refreshed token was stored"
        ]
        with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
            conn.execute(integration_tokens._STORE_TIMEOUTS)
            idle = conn.execute("select current_setting('idle_in_transaction_session_timeout')").fetchone()
        assert idle == ("5s",)
    finally:
        integration_tokens._unsaved.clear()


def test_a_refresh_that_meets_a_held_token_row_waits_its_limit_not_the_sessions(
    db_url: str, owner_conn: psycopg.Connection
) -> None:
    """The lease question locks the token row; behind a session holding it (an operator's
    open ``select ... for update``) every refresh of every worker waited for as long as that
    transaction lasted (found by review). It now asks a few seconds at a time, gives up with
    a transient error naming the lock after its wait, and refreshes once the row is free."""
    _store(owner_conn, "amo-access-1", "amo-refresh-1", 3600)
    asked: list[str] = []

    def provider(refresh_token: str) -> TokenGrant:
        asked.append(refresh_token)
        return TokenGrant("amo-access-2", "amo-refresh-2", 3600)

    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1", wait_seconds=3.0)
        seen = store.load()
        errors: list[BaseException] = []

        def refresh() -> None:
            try:
                store.refresh(seen, provider)
            except BaseException as exc:  # reported by the assertions below
                errors.append(exc)

        waited = _waits_on_the_held_token_row(db_url, refresh)
        assert not waited, "the refresh waited on the held row past its limit"
        assert len(errors) == 1 and isinstance(errors[0], TransientError), errors
        assert "stayed locked by another session" in str(errors[0])
        assert asked == [] and _stored(owner_conn) == ("amo-access-1", "amo-refresh-1")
        assert conn.execute("select current_setting('lock_timeout')").fetchone() == ("0",)

        token = store.refresh(seen, provider)
    assert asked == ["amo-refresh-1"]
    assert (token.access_token, token.refresh_token) == ("amo-access-2", "amo-refresh-2")


def test_a_worker_waits_out_a_read_only_server_and_stores_its_kept_pair(
    fake: FakeProviders, queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A read-only server (a failover under way) made housekeeping raise: the run ended, its
    serving threads were daemons that died with the process, and the kept pair with them
    (found by review). The worker now waits for a writable server as for a lost one, and
    stores the pair once it can."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    _keep_a_pair(db_url, owner_conn, "kept-access", "kept-refresh")
    db = owner_conn.execute("select current_database()").fetchone()[0]
    said: list[str] = []
    settings = worker_settings(fake, db_url, OUTBOX_POLL_SECONDS="0.2", OUTBOX_HOUSEKEEPING_SECONDS="0.5")
    worker = Worker(WorkerConfig.from_settings(settings, ["sms"]), echo=said.append)
    runner = threading.Thread(target=worker.run)
    try:
        runner.start()
        _wait_for(lambda: worker_connections(owner_conn) > 0)
        owner_conn.execute(f'alter database "{db}" set default_transaction_read_only = on')
        owner_conn.execute(
            "select pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity"
            " where datname = current_database() and application_name = 'onai-db worker'"
        )
        _wait_for(lambda: any("could not be stored" in m for m in said) or not runner.is_alive())
        assert runner.is_alive(), said
        assert _stored(owner_conn) == ("amo-access-1", "amo-refresh-1")
        owner_conn.execute(f'alter database "{db}" reset default_transaction_read_only')
        # at the next reconnect (pauses grow from 1 s) or housekeeping period
        _wait_for(lambda: _stored(owner_conn) == ("kept-access", "kept-refresh"), seconds=45)
        assert runner.is_alive()
    finally:
        owner_conn.execute(f'alter database "{db}" reset default_transaction_read_only')
        worker.stop.set()
        runner.join(timeout=30)
        integration_tokens._unsaved.clear()
    assert not worker._errors, worker._errors


def test_a_refreshed_pair_is_kept_before_its_first_store(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pair AmoCRM issued was kept in the process only once its first store had failed:
    while that store hung on a cut connection (up to 30 s) and the lease lapsed, another
    thread of the same process refreshed with the rotated-away token, which AmoCRM refuses
    (found by review). It is kept as it arrives: the other thread stores it instead."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    real = integration_tokens._store_if_current
    entered, release = threading.Event(), threading.Event()

    def hanging(
        conn: psycopg.Connection, service: str, grant: TokenGrant, replaced: str | None, worker: str | None
    ) -> str:
        if worker == "wA":
            entered.set()
            release.wait(30)
        return real(conn, service, grant, replaced, worker)

    monkeypatch.setattr(integration_tokens, "_store_if_current", hanging)
    asked: list[str] = []

    def provider(refresh_token: str) -> TokenGrant:
        asked.append(refresh_token)
        return TokenGrant("A-access", "A-refresh", 3600)

    got: dict[str, Token] = {}

    def refresh_in_a() -> None:
        with connect(db_url) as conn:
            store = TokenStore(conn, "amocrm", "wA", lease_seconds=1.0)
            got["a"] = store.refresh(store.load(), provider)

    a = threading.Thread(target=refresh_in_a)
    a.start()
    try:
        assert entered.wait(10)
        time.sleep(1.5)  # A's lease lapses while its store hangs
        with connect(db_url) as conn:
            store = TokenStore(conn, "amocrm", "wB")
            b = store.refresh(store.load(), provider)
    finally:
        release.set()
        a.join(30)
    assert asked == ["amo-refresh-1"]  # AmoCRM was asked once
    assert (b.access_token, b.refresh_token) == ("A-access", "A-refresh") == _stored(owner_conn)
    assert got["a"].access_token == "A-access"
    assert store_kept_tokens(lambda: connect(db_url)) == []


@pytest.mark.parametrize(
    "expires_in", ["soon", None, -5, "NaN", 1e12, 1e13, pytest.param(10**400, id="int-past-float"), True, 30]
)
def test_a_token_answer_without_a_usable_lifetime_is_stored_with_a_days(
    fake: FakeProviders, queue: Outbox, db_url: str, expires_in: object
) -> None:
    """A 200 whose expires_in is no positive number raised ValueError out of the refresh:
    the lease stayed taken and the issued pair was lost (found by review). So did one past
    timestamp's range (1e13 s) and an integer past float's (OverflowError), and 1e12 s stored
    a time no client reads back; JSON true or a lifetime within the minute a token is
    refreshed ahead of its end made a refresh (a rotation) before every call (found by
    review). It is stored with AmoCRM's usual day."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    fake.amo_access, fake.amo_refresh = "new-access", "new-refresh"  # what the answer below issues
    fake.script(
        "amocrm_token",
        Reply(200, {"token_type": "Bearer", "expires_in": expires_in, "access_token": "new-access",
                    "refresh_token": "new-refresh"}),
    )  # fmt: skip
    with connect(db_url) as conn, httpx.Client(timeout=5) as http:
        _client(conn, fake, http, "w1").move_lead_stage(9100, 1)
    row = queue.conn.execute(
        "select access_token, refresh_token, refresh_owner,"
        " expires_at between now() + interval '23 hours' and now() + interval '25 hours'"
        " from public.integration_tokens"
    ).fetchone()
    assert row == ("new-access", "new-refresh", None, True)


@pytest.mark.parametrize(
    ("answer", "stored"),
    [({"refresh_token": "new-refresh"}, ("new-refresh", True)),
     ({"access_token": "", "refresh_token": "new-refresh"}, ("new-refresh", True)),
     ({"access_token": {"a": 1}, "refresh_token": "new-refresh"}, ("new-refresh", True)),
     ({"access_token": "new-access", "refresh_token": ""}, ("amo-refresh-1", False)),
     ({"access_token": "new-access", "refresh_token": 0}, ("amo-refresh-1", False))],
    ids=["no-access-token", "empty-access-token", "access-token-an-object", "empty-refresh-token",
         "refresh-token-a-number"],
)  # fmt: skip
def test_a_token_answer_keeps_a_new_refresh_token_and_never_stores_an_empty_one(
    fake: FakeProviders, queue: Outbox, db_url: str, answer: dict, stored: tuple[str, bool]
) -> None:
    """A 200 with a new refresh token and no usable access token shows AmoCRM rotated: it was
    dropped, the stored refresh token was spent and the integration needed a new consent
    (found by review). It is stored with an access token that has expired, so the call that
    follows refreshes with it and goes through. An empty refresh token was stored over the
    working one, a number as its digits (found by review): such an answer keeps the stored
    refresh token."""
    refresh, refreshed_again = stored
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    fake.amo_access, fake.amo_refresh = "new-access", refresh  # what AmoCRM holds after the answer
    fake.script("amocrm_token", Reply(200, {"token_type": "Bearer", "expires_in": 86400, **answer}))
    with connect(db_url) as conn, httpx.Client(timeout=5) as http:
        _client(conn, fake, http, "w1").move_lead_stage(9100, 1)
    row = queue.conn.execute(
        "select access_token, refresh_token, refresh_owner from public.integration_tokens"
    ).fetchone()
    assert row == (fake.amo_access, fake.amo_refresh, None)
    assert (fake.amo_refreshes == 1) == refreshed_again
    if not refreshed_again:
        assert row == ("new-access", "amo-refresh-1", None)


@pytest.mark.parametrize(
    "reply",
    [Reply(200, raw=b"<html>proxy</html>"), Reply(200, {"token_type": "Bearer", "expires_in": 86400}),
     Reply(200, raw=b"not gzip", headers={"Content-Encoding": "gzip"})],
)  # fmt: skip
def test_a_token_answer_that_is_no_token_is_tried_again_with_the_lease_given_back(
    fake: FakeProviders, queue: Outbox, db_url: str, reply: Reply
) -> None:
    """A 200 that is no token answer said "refresh token rejected: re-authorize" and the job
    went dead; an answer that cannot be decoded escaped the refresh with its lease taken
    (found by review). Both are transient: the stored pair stays, the lease is free."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    fake.script("amocrm_token", reply)
    with connect(db_url) as conn, httpx.Client(timeout=5) as http, pytest.raises(TransientError) as err:
        _client(conn, fake, http, "w1").move_lead_stage(9100, 1)
    assert "re-authorize" not in str(err.value)
    row = queue.conn.execute(
        "select access_token, refresh_token, refresh_owner from public.integration_tokens"
    ).fetchone()
    assert row == ("amo-access-1", "amo-refresh-1", None)


def _advisory_locks(conn: psycopg.Connection) -> int:
    return conn.execute(
        "select count(*) from pg_catalog.pg_locks where locktype = 'advisory' and pid = pg_catalog.pg_backend_pid()"
    ).fetchone()[0]


def test_a_sync_gives_its_lead_lock_back_whatever_the_outcome(
    fake: FakeProviders, queue: Outbox, db_url: str, lead: uuid.UUID
) -> None:
    """A worker's connection lives for hours: a lock ``one_at_a_time`` kept after a sync
    would leave that lead "being synced by another worker" for every other worker, for ever
    (mutation review). It is given back after a failure, an error and a success."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    with connect(db_url) as conn, httpx.Client(timeout=5) as http:
        fake.script("amocrm_leads", Reply(502, {"title": "Bad Gateway", "status": 502}))
        with pytest.raises(TransientError):
            sync_lead(conn, _client(conn, fake, http, "w1"), {"lead_id": str(lead)})
        assert _advisory_locks(conn) == 0
        with pytest.raises(ZeroDivisionError), one_at_a_time(conn, "deal/1", "busy"):
            assert _advisory_locks(conn) == 1
            1 / 0  # noqa: B018
        assert _advisory_locks(conn) == 0
        assert sync_lead(conn, _client(conn, fake, http, "w1"), {"lead_id": str(lead)}).provider_ref
        assert _advisory_locks(conn) == 0


# --- found by mutation testing ---


def test_a_later_lesson_whose_move_is_under_way_stops_an_earlier_one(
    fake: FakeProviders, queue: Outbox, db_url: str
) -> None:
    """Lesson 3's move reached AmoCRM and gave the deal's lock back, but its job is not
    completed yet (status running): lesson 2's retry must not move the deal back."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", 3600)
    second = queue.conn.execute("select public.enqueue_amocrm_lesson_stage(779, 2)").fetchone()[0]
    queue.conn.execute("select public.enqueue_amocrm_lesson_stage(779, 3)")
    queue.conn.execute(
        "update public.outbox_jobs set status = 'running', attempts = 1, run_after = null,"
        " lease_owner = 'other-worker', lease_expires_at = now() + interval '1 hour'"
        " where idempotency_key = 'amocrm_stage/779/3'"
    )
    report = run_worker(worker_settings(fake, db_url), once=True, services=["amocrm"])
    assert report.skipped == 1 and fake.calls("amocrm_leads") == []
    assert queue.conn.execute(
        "select status, error_message from public.integration_logs where job_id = %s", (second,)
    ).fetchall() == [("skipped", "deal 779 was moved to lesson 3 already")]


def _stored_pair_and_lease(owner_conn: psycopg.Connection) -> tuple:
    return owner_conn.execute(
        "select access_token, refresh_token, refresh_owner, last_refresh_error"
        " from public.integration_tokens where service_name = 'amocrm'"
    ).fetchone()


def test_a_first_store_that_finds_a_re_authorized_pair_gives_the_lease_back(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """An operator re-authorized while the token endpoint answered: the operator's pair stays
    and the lease goes back at once (not after token_lease_seconds, which every other
    worker's refresh would wait out)."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    with connect(db_url) as conn:
        store = TokenStore(conn, "amocrm", "w1", lease_seconds=600)

        def answer_after_a_re_authorization(_refresh_token: str) -> TokenGrant:
            _store(owner_conn, "operator-access", "operator-refresh", 86400)
            return TokenGrant("amo-access-2", "amo-refresh-2", 86400)

        token = store.refresh(store.load(), answer_after_a_re_authorization)
    assert (token.access_token, token.refresh_token) == ("operator-access", "operator-refresh")
    access, refresh, owner, error = _stored_pair_and_lease(owner_conn)
    assert (access, refresh, owner) == ("operator-access", "operator-refresh", None)
    assert "re-authorized" in error
    assert store_kept_tokens(lambda: connect(db_url)) == []


def test_a_kept_pair_is_stored_with_the_lifetime_it_has_left(
    queue: Outbox, db_url: str, owner_conn: psycopg.Connection
) -> None:
    """A pair kept for an hour (the database was away) has an hour less to live: stored with
    its full lifetime, the worker would use an expired access token as valid."""
    _store(queue.conn, "amo-access-1", "amo-refresh-1", -10)
    try:
        with connect(db_url) as conn:
            store = TokenStore(conn, "amocrm", "w1")

            def answer_and_lose_the_connection(_refresh_token: str) -> TokenGrant:
                owner_conn.execute("select pg_catalog.pg_terminate_backend(%s)", (conn.info.backend_pid,))
                return TokenGrant("kept-access", "kept-refresh", 86400)

            with pytest.raises(integration_tokens.TransientError, match="keeps it"):
                store.refresh(store.load(), answer_and_lose_the_connection)
        grant, issued, replaced = integration_tokens._unsaved["amocrm"]
        integration_tokens._unsaved["amocrm"] = (grant, issued - 3600, replaced)  # kept an hour ago
        assert store_kept_tokens(lambda: connect(db_url)) == ["amocrm: the kept refreshed token was stored"]
    finally:
        integration_tokens._unsaved.clear()  # a failure above leaves no kept pair to later tests
    left = owner_conn.execute(
        "select extract(epoch from expires_at - now())::float8 from public.integration_tokens"
        " where service_name = 'amocrm'"
    ).fetchone()[0]
    assert 86400 - 3600 - 60 < left <= 86400 - 3600 + 1
