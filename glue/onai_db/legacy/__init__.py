"""The legacy Landing database: its schema (a test/demo fixture) and a data generator."""

from __future__ import annotations

from importlib import resources

import psycopg

from ..local import LocalStack
from .generator import LEAD_TABLES, GeneratedCounts, generate

LEGACY_TABLES: tuple[str, ...] = (*LEAD_TABLES, "lead_journey", "scheduled_notifications")

__all__ = ["LEGACY_TABLES", "GeneratedCounts", "create_landing_db", "generate", "install_schema"]


def install_schema(conn: psycopg.Connection) -> None:
    """(Re)create the five legacy tables, empty."""
    sql = resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")
    conn.execute(sql)  # type: ignore[arg-type]


def create_landing_db(
    stack: LocalStack, dbname: str = "landing", rows: int = 3000, seed: int = 1, **ratios: float
) -> tuple[str, GeneratedCounts]:
    """Create (or refresh) database ``dbname`` in the local cluster with the legacy
    schema and ``rows`` generated lead rows; returns (url, counts)."""
    stack.require_running()
    stack.create_database(dbname, drop=True)
    with stack.admin_connect(dbname) as admin:
        admin.execute(f'alter database "{dbname}" owner to postgres')
        admin.execute("alter schema public owner to postgres")
        admin.commit()
    url = stack.database_url(dbname)
    with psycopg.connect(url, autocommit=True) as conn:
        install_schema(conn)
        counts = generate(conn, rows, seed=seed, **ratios)
        conn.execute("analyze")
    return url, counts
