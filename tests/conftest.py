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
from support.postgrest import PostgrestSession

TEST_DB = os.environ.get("ONAI_DB_TEST_DB", "onai_test")


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
