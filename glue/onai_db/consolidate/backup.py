"""Back up every legacy table to CSV with a JSON manifest (row counts, SHA-256)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

Progress = Callable[[str, int, int | None], None]


@dataclass
class BackupFile:
    table: str
    file: str
    rows: int
    bytes: int
    sha256: str
    columns: list[str]


@dataclass
class Manifest:
    directory: str
    taken_at: str
    tables: dict[str, BackupFile] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """One checksum over every table's checksum: equal for an unchanged source."""
        h = hashlib.sha256()
        for name in sorted(self.tables):
            h.update(f"{name}:{self.tables[name].sha256};".encode())
        return h.hexdigest()[:32]

    def to_json(self) -> dict[str, object]:
        return {
            "directory": self.directory,
            "taken_at": self.taken_at,
            "fingerprint": self.fingerprint,
            "tables": {k: asdict(v) for k, v in self.tables.items()},
        }


def backup_tables(
    conn: psycopg.Connection, columns: dict[str, list[str]], directory: Path, progress: Progress
) -> Manifest:
    """COPY each table (ordered by id, all columns) to ``<dir>/<table>.csv`` in one
    REPEATABLE READ snapshot, so the files are mutually consistent."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(directory=str(directory), taken_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    try:
        with conn.transaction():
            conn.execute("set transaction read only")
            for table, cols in columns.items():
                path = directory / f"{table}.csv"
                h = hashlib.sha256()
                size = 0
                query = sql.SQL(
                    "copy (select * from public.{} order by id) to stdout with (format csv, header)"
                ).format(sql.Identifier(table))
                with conn.cursor() as cur, path.open("wb") as out:
                    with cur.copy(query) as cp:
                        for chunk in cp:
                            data = bytes(chunk)
                            out.write(data)
                            h.update(data)
                            size += len(data)
                    rows = cur.rowcount
                progress("backup", 1, len(columns))
                manifest.tables[table] = BackupFile(table, path.name, rows, size, h.hexdigest(), cols)
    finally:
        conn.isolation_level = None
    (directory / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2), encoding="utf-8")
    return manifest
