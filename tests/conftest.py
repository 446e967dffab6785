"""Shared fixtures: the local stack, a test database, the cast, and PostgREST-style requests.

The test database (``onai_test`` unless ONAI_DB_TEST_DB says otherwise) is recreated at
the start of every session by the same path as ``onai-db local up``: platform bootstrap
plus ``supabase db push`` of every migration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest

from onai_db.local import LocalStack
from onai_db.settings import Settings
from support.cast import Cast, build_cast, drop_cast
from support.consolidation import scratch_databases
from support.postgrest import PostgrestSession

TEST_DB = os.environ.get("ONAI_DB_TEST_DB", "onai_test")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing session drops its scratch databases (there were 50, 640 MB, left after every
    run); a failing one keeps them for a look, and says so."""
    names = scratch_databases()
    if not names:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus != 0:
        if reporter is not None:
            reporter.write_line(f"kept {len(names)} scratch database(s) for inspection, e.g. {names[0]}")
        return
    stack = LocalStack(Settings.load(), echo=lambda _msg: None)
    if not stack.running():
        return
    with stack.admin_connect() as conn:
        for name in names:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session")
def stack() -> LocalStack:
    return LocalStack(Settings.load(), echo=lambda _msg: None)


@pytest.fixture(scope="session")
def test_db(stack: LocalStack) -> str:
    """Name of a freshly built test database (bootstrap + all migrations)."""
    stack.up(TEST_DB, fresh=True)
    return TEST_DB


@pytest.fixture(scope="session")
def db_url(stack: LocalStack, test_db: str) -> str:
    """URL logging in as ``postgres`` (the migration owner; BYPASSRLS)."""
    return stack.database_url(test_db, "postgres")


@pytest.fixture(scope="session")
def authenticator_url(stack: LocalStack, test_db: str) -> str:
    return stack.database_url(test_db, "authenticator")


@pytest.fixture(scope="session")
def superuser_url(stack: LocalStack, test_db: str) -> str:
    return stack.database_url(test_db, "supabase_admin")


@pytest.fixture(scope="session")
def owner_conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection as ``postgres`` for committed setup."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def cast(owner_conn: psycopg.Connection) -> Iterator[Cast]:
    built = build_cast(owner_conn)
    yield built
    drop_cast(owner_conn)


@pytest.fixture(scope="session")
def _authenticator_conn(authenticator_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(authenticator_url) as conn:
        yield conn


@pytest.fixture()
def api(_authenticator_conn: psycopg.Connection, cast: Cast) -> Iterator[PostgrestSession]:
    """PostgREST-style requests in one transaction that is rolled back after the test."""
    conn = _authenticator_conn
    conn.rollback()
    try:
        yield PostgrestSession(conn)
    finally:
        conn.rollback()
