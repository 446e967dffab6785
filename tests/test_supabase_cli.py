"""The real Supabase CLI agrees: migrations applied, no lint errors, advisors clean, types current."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from onai_db import migrate
from onai_db.settings import find_project_dir

ROOT = find_project_dir()
ONAI = str(Path(sys.executable).with_name("onai-db"))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return migrate.run_cli(ROOT, list(args))


def test_migration_list_shows_every_migration_applied(db_url: str) -> None:
    proc = cli("migration", "list", f"--remote={db_url}")
    assert proc.returncode == 0, proc.stderr
    rows = re.findall(r"`(\d{14})`\s*\|\s*`(\d{14})`", proc.stdout)
    local = [m.version for m in migrate.local_migrations(ROOT)]
    assert [a for a, _ in rows] == local
    assert all(a == b for a, b in rows), rows


def test_db_lint_reports_no_errors(db_url: str) -> None:
    proc = cli("db", "lint", f"--remote={db_url}", "--level", "error", "--fail-on", "error")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No schema errors found" in proc.stdout + proc.stderr


def test_database_advisors_find_nothing_at_warn_or_error(db_url: str) -> None:
    proc = cli("db", "advisors", f"--remote={db_url}")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    if "No issues found" in text + proc.stderr:
        return
    findings = json.loads(text[text.index("[") :])
    serious = [(f["name"], f["detail"]) for f in findings if f["level"] in ("WARN", "ERROR")]
    assert serious == []


def test_generated_types_are_current(test_db: str) -> None:
    proc = subprocess.run([ONAI, "types", "--db", test_db], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_policies_command_reports_full_coverage(test_db: str) -> None:
    proc = subprocess.run(
        [ONAI, "policies", "--db", test_db],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "coverage ok" in proc.stdout
    assert "find_or_create_unified_lead" in proc.stdout


def test_policies_output_to_a_pipe_is_not_folded(test_db: str) -> None:
    """Piped (cron, ``| less``, a file) with no ``COLUMNS``, rich assumed 80 columns and
    folded every cell: ``sales_manager`` became three lines and object names were cut."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    proc = subprocess.run(
        [ONAI, "policies", "--db", test_db], cwd=ROOT, capture_output=True, text=True, env=env,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "object (public.)" in line)
    for role in ("anon", "student", "targetologist", "sales_manager", "admin", "service_role"):
        assert f" {role} " in header, header
    rows = [line for line in proc.stdout.splitlines() if "find_or_create_unified_lead" in line]
    assert rows and "function" in rows[0], proc.stdout


def test_local_status_json(test_db: str) -> None:
    proc = subprocess.run(
        [ONAI, "local", "status", "--db", test_db, "--json"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["running"] and status["pending"] == []
    assert len(status["applied"]) == len(migrate.local_migrations(ROOT))
