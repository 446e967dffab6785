"""Migrations: listed from ``supabase/migrations`` and applied by the pinned Supabase CLI.

We never apply migration SQL ourselves: ``supabase db push`` does, exactly as it will
against the hosted project. Each file runs in one transaction, so a failing file
leaves the database as it was after the previous one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .connection import connect
from .errors import MigrationError, MissingDependencyError

MIGRATION_RE = re.compile(r"^(\d+)_(.+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    filename: str


def local_migrations(project_dir: Path) -> list[Migration]:
    folder = project_dir / "supabase" / "migrations"
    found = []
    for path in sorted(folder.glob("*.sql")):
        match = MIGRATION_RE.match(path.name)
        if match:
            found.append(Migration(match.group(1), match.group(2), path.name))
    return found


def applied_versions(url: str) -> set[str]:
    with connect(url, autocommit=True) as conn:
        exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations')").fetchone()
        if not exists or exists[0] is None:
            return set()
        return {row[0] for row in conn.execute("select version from supabase_migrations.schema_migrations")}


def supabase_cli(project_dir: Path) -> list[str]:
    """The pinned CLI from node_modules (``npm install`` puts it there)."""
    local_bin = project_dir / "node_modules" / ".bin" / "supabase"
    if local_bin.exists():
        return [str(local_bin)]
    raise MissingDependencyError(
        "the Supabase CLI is not installed in node_modules: run `npm install` in the checkout "
        "(Node 20 and npm are needed)"
    )


def run_cli(project_dir: Path, args: list[str], timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.setdefault("SUPABASE_TELEMETRY_DISABLED", "1")
    env.setdefault("DO_NOT_TRACK", "1")
    if shutil.which("node") is None:
        raise MissingDependencyError("node is not installed: install Node.js 20 (apt-get install nodejs npm)")
    return subprocess.run(
        [*supabase_cli(project_dir), *args, "--workdir", str(project_dir)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


_FILE_RE = re.compile(r"Applying migration (\S+\.sql)")


def push(project_dir: Path, url: str, echo: Callable[[str], None] = print) -> list[str]:
    """``supabase db push`` against ``url``; returns the files applied in this run."""
    proc = run_cli(project_dir, ["db", "push", f"--remote={url}", "--yes", "--include-all"])
    output = f"{proc.stdout}\n{proc.stderr}"
    applied = _FILE_RE.findall(output)
    if proc.returncode != 0:
        failing = applied[-1] if applied else None
        raise MigrationError(failing, _summarise_error(output))
    for name in applied:
        echo(f"applied {name}")
    return applied


def _summarise_error(output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    interesting = [
        ln
        for ln in lines
        if ln.startswith(("ERROR", "error", "At statement", "failed", "Failed")) or "SQLSTATE" in ln
    ]
    chosen = interesting or lines[-3:]
    return " | ".join(chosen)[:2000]
