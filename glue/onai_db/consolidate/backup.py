"""Back up every legacy table to CSV with a JSON manifest (row counts, SHA-256)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from ..errors import ConsolidationError
from .connect import source_columns_now
from .landing_locks import locked

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


def _final_directory(directory: Path, stamp: str) -> Path:
    """Where a finished backup goes: ``directory`` itself, unless it already holds a finished
    backup (a manifest), which is never overwritten: then a subdirectory named by the time."""
    if not (directory / "manifest.json").exists():
        return directory
    final = directory / stamp
    n = 1
    while final.exists():
        n += 1
        final = directory / f"{stamp}-{n}"
    return final


def _reason(exc: OSError, directory: Path) -> str:
    """Why ``directory`` cannot hold the backup: "File exists" said little of a file given
    for the directory (found by the operator review)."""
    if directory.exists() and not directory.is_dir():
        return "it is a file, not a directory"
    return exc.strerror or str(exc)


def check_writable(directory: Path) -> None:
    """Raises one clear error unless a backup can be written in ``directory`` (created if
    missing), so an unusable --backup-dir is reported before anything else happens."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConsolidationError(
            f"cannot write the backup in {directory}: {_reason(exc, directory)}; nothing was written to the target",
            kind="backup_not_writable",
        ) from None


def _running(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # runs, as another user
        return True
    return True


def remove_abandoned_work(directory: Path) -> None:
    """Removes the ``.incomplete-<time>-<pid>`` directories that runs killed mid-backup left
    in ``directory``. One whose process still runs is another run writing its backup here
    at this moment, and is left alone."""
    for work in directory.glob(".incomplete-*"):
        pid = work.name.rsplit("-", 1)[-1]
        if pid.isdigit() and _running(int(pid)):
            continue
        shutil.rmtree(work, ignore_errors=True)


# the default backup directory of a run: backups/landing-<UTC time>
DEFAULT_BACKUP_PARENT = Path("backups")
DEFAULT_BACKUP_PREFIX = "landing-"


def default_backup_dir() -> Path:
    return DEFAULT_BACKUP_PARENT / time.strftime(f"{DEFAULT_BACKUP_PREFIX}%Y%m%dT%H%M%SZ", time.gmtime())


def remove_abandoned_default_backups(parent: Path = DEFAULT_BACKUP_PARENT) -> None:
    """With the default ``backups/landing-<time>/``, every run writes to a new directory, so a
    run killed mid-backup leaves a directory holding only its unfinished files: those of runs
    no longer running are removed, and the directories they leave empty."""
    if not parent.is_dir():
        return
    for directory in parent.glob(f"{DEFAULT_BACKUP_PREFIX}*"):
        if not directory.is_dir():
            continue
        remove_abandoned_work(directory)
        with contextlib.suppress(OSError):
            directory.rmdir()  # only when nothing else is in it


def _check_unchanged(
    now: dict[str, list[tuple[str, str]]], columns: dict[str, list[str]], types: dict[str, dict[str, str]]
) -> None:
    """Raise when a table's columns differ from the preflight's (``columns``, ``types``)."""
    for table, cols in columns.items():
        before = [(c, types.get(table, {}).get(c, "")) for c in cols]
        if now.get(table) != before:
            raise ConsolidationError(
                f"the columns of Landing's {table} changed after the checks ({_columns(before)}; now"
                f" {_columns(now.get(table, []))}): nothing was written to the target; run it again",
                kind="source_changed",
            )


def _columns(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{c} {t}" for c, t in pairs) or "no columns"


def backup_tables(
    conn: psycopg.Connection,
    columns: dict[str, list[str]],
    types: dict[str, dict[str, str]],
    directory: Path,
    progress: Progress,
    notice: Callable[[str], None] = lambda _line: None,
) -> Manifest:
    """See :func:`_backup_tables`; a directory that cannot be written is one clear error."""
    try:
        return _backup_tables(conn, columns, types, directory, progress, notice)
    except OSError as exc:
        where = exc.filename or directory
        raise ConsolidationError(
            f"cannot write the backup in {directory}: {_reason(exc, directory)} ({where}); "
            "nothing was written to the target",
            kind="backup_not_writable",
        ) from None


def _copy_tables(
    conn: psycopg.Connection, columns: dict[str, list[str]], work: Path, progress: Progress
) -> dict[str, BackupFile]:
    """COPY each table (ordered by id, all columns) to ``<work>/<table>.csv``, in the
    caller's snapshot; the file's row count, size and checksum."""
    files: dict[str, BackupFile] = {}
    for table, cols in columns.items():
        path = work / f"{table}.csv"
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
        files[table] = BackupFile(table, path.name, rows, size, h.hexdigest(), cols)
    return files


def _backup_tables(
    conn: psycopg.Connection,
    columns: dict[str, list[str]],
    types: dict[str, dict[str, str]],
    directory: Path,
    progress: Progress,
    notice: Callable[[str], None],
) -> Manifest:
    """COPY each table (ordered by id, all columns) to ``<dir>/<table>.csv`` in one
    REPEATABLE READ snapshot, so the files are mutually consistent. The tables keep the
    ``columns`` (and ``types``) the preflight read while they are copied: a column added,
    dropped or retyped in Landing since is one clear error (found by review: the import named
    the values by the preflight's list, so a dropped column's name went to the next one's).

    The files are written to ``<dir>/.incomplete-…`` and moved into place only when every
    table is written, manifest last, so a run killed mid-backup never leaves a truncated
    file beside a manifest. A directory that already holds a finished backup keeps it: the
    new one goes to ``<dir>/<UTC time>/``, and the manifest says where."""
    directory.mkdir(parents=True, exist_ok=True)
    remove_abandoned_work(directory)
    work = directory / f".incomplete-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    work.mkdir()
    taken: list[float] = []

    def copy() -> dict[str, BackupFile]:
        # no ALTER TABLE until the copies end; the columns read now are copied, and the
        # snapshot is taken now (found by review: the time was taken before a lock wait)
        taken.append(time.time())
        _check_unchanged(source_columns_now(conn), columns, types)
        return _copy_tables(conn, columns, work, progress)

    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        files = locked(conn, list(columns), notice, copy, what="the backup")
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        conn.isolation_level = None
        conn.read_only = None
    taken_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(taken[0]))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(taken[0]))
    final = _final_directory(directory, stamp)
    manifest = Manifest(directory=str(final), taken_at=taken_at, tables=files)
    (work / "manifest.json").write_text(json.dumps(manifest.to_json(), indent=2), encoding="utf-8")
    if final == directory:
        for info in files.values():
            os.replace(work / info.file, final / info.file)
        os.replace(work / "manifest.json", final / "manifest.json")
        work.rmdir()
    else:
        os.replace(work, final)
    return manifest
