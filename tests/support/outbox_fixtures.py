"""Fixtures for the outbox tests: the fake providers, a clean queue, worker settings.

Import the fixtures into a test module (``from support.outbox_fixtures import ...``).
The worker runs on its own connections, so these tests commit; every test starts and
ends with empty outbox tables.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from onai_db.outbox import Outbox, connect
from onai_db.settings import Settings, find_project_dir

from .fake_providers import FakeProviders

CLEAN = (
    "delete from public.integration_logs",
    "delete from public.outbox_jobs",
    "delete from public.telegram_groups",
    "delete from public.integration_tokens",
)


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeProviders]:
    server = FakeProviders()
    yield server
    server.close()


@pytest.fixture()
def fake(fake_server: FakeProviders) -> FakeProviders:
    fake_server.reset()
    return fake_server


def _clean(conn: psycopg.Connection) -> None:
    for stmt in CLEAN:
        conn.execute(stmt)


@pytest.fixture()
def clean_outbox(owner_conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """The owner connection, with the outbox tables emptied before and after the test."""
    _clean(owner_conn)
    yield owner_conn
    _clean(owner_conn)


@pytest.fixture()
def service_conn(db_url: str, clean_outbox: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """An autocommit connection acting as service_role, as the worker's are."""
    with connect(db_url) as conn:
        yield conn


@pytest.fixture()
def queue(service_conn: psycopg.Connection) -> Outbox:
    return Outbox(service_conn)


@pytest.fixture()
def old_leads(
    owner_conn: psycopg.Connection, clean_outbox: psycopg.Connection
) -> Iterator[Callable[..., uuid.UUID]]:
    """Make leads dated 1980 (older than any other, so first in every sweep), with the given
    columns; they are removed afterwards (their jobs go with the clean outbox)."""
    made: list[uuid.UUID] = []

    def make(**cols: object) -> uuid.UUID:
        names = ", ".join(["name", "created_at", *cols])
        marks = ", ".join(["%s"] * (2 + len(cols)))
        lead = owner_conn.execute(
            f"insert into public.traffic_leads ({names}) values ({marks}) returning id",
            (f"Старый {len(made)}", f"1980-01-{len(made) + 1:02d}", *cols.values()),
        ).fetchone()[0]
        made.append(lead)
        return lead

    yield make
    for losers_first in ("merged_into is not null", "true"):
        owner_conn.execute(f"delete from public.traffic_leads where id = any(%s) and {losers_first}", (made,))


def worker_env(fake: FakeProviders, db_url: str, **extra: str) -> dict[str, str]:
    """Env for a worker pointed at the fake providers and the test database; fast timings."""
    return {
        **fake.env(),
        "ONAI_DB_URL": db_url,
        "OUTBOX_LEASE_SECONDS": "5",
        "OUTBOX_BACKOFF_BASE_SECONDS": "0",
        "OUTBOX_BACKOFF_CAP_SECONDS": "0",
        "OUTBOX_HTTP_TIMEOUT_SECONDS": "1",
        "OUTBOX_POLL_SECONDS": "0.05",
        "OUTBOX_CONCURRENCY": "2",
        "OUTBOX_HOUSEKEEPING_SECONDS": "0.3",
        **extra,
    }


def worker_settings(fake: FakeProviders, db_url: str, **extra: str) -> Settings:
    project: Path = find_project_dir()
    return Settings(project_dir=project, env=worker_env(fake, db_url, **extra))
