"""The legacy Landing database: its schema (a test/demo fixture) and a data generator."""

from __future__ import annotations

from importlib import resources

import psycopg

from ..errors import ConfigError
from ..local import FIXTURE_MARKER, LocalStack
from .generator import LEAD_TABLES, GeneratedCounts, generate

LEGACY_TABLES: tuple[str, ...] = (*LEAD_TABLES, "lead_journey", "scheduled_notifications")

__all__ = ["LEGACY_TABLES", "GeneratedCounts", "create_landing_db", "generate", "install_schema"]


MAX_ROWS = 5_000_000  # about 5 GB of generated rows; the 1M-row benchmark needs 1 GB


def refuse_to_replace(stack: LocalStack, dbname: str) -> None:
    """``legacy create`` drops and recreates its database: only an earlier fixture (or an
    empty database) may be replaced, never a migrated Traffic database or anything else."""
    found = stack.contents(dbname)
    if found is None:
        return
    migrated, fixture, has_tables = found.migrated, found.fixture, found.has_objects
    if migrated:
        raise ConfigError(
            f"database {dbname!r} holds the onai-db migrations; `legacy create` would drop it: choose another --db"
        )
    if has_tables and not fixture:
        raise ConfigError(
            f"database {dbname!r} holds tables, views or functions and was not made by `legacy create` (a real Landing copy, or a "
            "fixture made by an earlier onai-db), so `legacy create` will not drop it: choose another --db, or drop "
            "it yourself if it is an old fixture"
        )


def install_schema(conn: psycopg.Connection) -> None:
    """(Re)create the five legacy tables, empty."""
    sql = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    conn.execute(sql)


def create_landing_db(
    stack: LocalStack, dbname: str = "landing", rows: int = 3000, seed: int = 1, **ratios: float
) -> tuple[str, GeneratedCounts]:
    """Create (or refresh) database ``dbname`` in the local cluster with the legacy
    schema and ``rows`` generated lead rows; returns (url, counts)."""
    if not 0 <= rows <= MAX_ROWS:
        raise ConfigError(
            f"--rows must be from 0 to {MAX_ROWS:,}, not {rows:,}: the generator holds the rows in memory"
            " (about 1 GB per million)"
        )
    stack.require_running()
    refuse_to_replace(stack, dbname)
    stack.create_database(dbname, drop=True)
    with stack.admin_connect(dbname) as admin:
        admin.execute(f'alter database "{dbname}" owner to postgres')
        admin.execute("alter schema public owner to postgres")
        admin.execute(f"comment on database \"{dbname}\" is '{FIXTURE_MARKER}'")
        admin.commit()
    url = stack.database_url(dbname)
    with psycopg.connect(url, autocommit=True, client_encoding="UTF8") as conn:
        install_schema(conn)
        counts = generate(conn, rows, seed=seed, **ratios)
        conn.execute("analyze")
    return url, counts
