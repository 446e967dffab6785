"""The local stack on bad days: busy port, crashed server, failing migration, missing binaries.

Runs a second, throw-away cluster from a copy of the project (so a deliberately broken
migration never touches the real one).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from onai_db.errors import MigrationError
from onai_db.local import SUPABASE_SMALL_INSTANCE, LocalStack
from onai_db.migrate import local_migrations
from onai_db.settings import Settings, find_project_dir
from support.consolidation import scratch_db

ROOT = find_project_dir()


@pytest.fixture(scope="module")
def scratch_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(
        ROOT / "supabase", project / "supabase", ignore=shutil.ignore_patterns(".temp", ".branches")
    )
    (project / "node_modules").symlink_to(ROOT / "node_modules")
    return project


@pytest.fixture(scope="module")
def busy_socket() -> Iterator[int]:
    """A listening socket on a loopback port, so the stack must choose another."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def scratch(scratch_project: Path, busy_socket: int) -> Iterator[LocalStack]:
    # never the developer's stack: an ONAI_DB_LOCAL_DIR in the environment made this fixture
    # push into it, kill its server and purge it (found by review)
    env = {k: v for k, v in os.environ.items() if k not in ("ONAI_DB_LOCAL_DIR", "ONAI_DB_URL")}
    env["ONAI_DB_PORT"] = str(busy_socket)
    stack = LocalStack(Settings(project_dir=scratch_project, env=env), echo=lambda _m: None)
    try:
        yield stack
    finally:
        stack.purge()


def test_up_on_a_busy_port_picks_another(scratch: LocalStack, busy_socket: int) -> None:
    state = scratch.up()
    assert state.port != busy_socket
    status = scratch.status()
    assert status.running and status.pending == [] and len(status.applied) >= 5
    assert scratch.up().port == state.port  # re-running changes nothing


def test_a_new_cluster_is_configured_like_a_supabase_small_instance(scratch: LocalStack) -> None:
    scratch.up()
    with psycopg.connect(scratch.database_url()) as conn:
        for line in SUPABASE_SMALL_INSTANCE:
            name, value = (part.strip().strip("'") for part in line.split("=", 1))
            assert conn.execute("select current_setting(%s)", (name,)).fetchone() == (value,), name


def _kill(pid: int) -> None:
    """Kill the server as a crash would, and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        subprocess.run(["sleep", "0.1"], check=True)


def test_a_crashed_server_is_recovered(scratch: LocalStack) -> None:
    state = scratch.up()
    pid = int((Path(state.data_dir) / "postmaster.pid").read_text().splitlines()[0])
    _kill(pid)
    assert not scratch.running()
    scratch.up()
    with psycopg.connect(scratch.database_url()) as conn:
        assert conn.execute("select count(*) from public.traffic_leads").fetchone() == (0,)


def test_a_failing_migration_names_the_file_and_keeps_the_previous_state(
    scratch: LocalStack, scratch_project: Path
) -> None:
    scratch.up()
    bad = scratch_project / "supabase" / "migrations" / "29991231000000_broken.sql"
    bad.write_text("create table public.ok_part (id int);\nselect * from public.no_such_table;\n")
    try:
        with pytest.raises(MigrationError) as err:
            scratch.up()
        assert err.value.file == "29991231000000_broken.sql"
        assert "no_such_table" in str(err.value) and "42P01" in str(err.value)
        status = scratch.status()
        assert status.pending == ["29991231000000_broken.sql"]
        with psycopg.connect(scratch.database_url()) as conn:
            assert conn.execute("select to_regclass('public.ok_part')").fetchone() == (None,)
            assert conn.execute("select to_regclass('public.traffic_leads')").fetchone() is not None
    finally:
        bad.unlink()


def test_missing_postgres_binaries_stop_with_one_clear_line() -> None:
    proc = subprocess.run(
        ["make", "-s", "check-postgres", "PG_BINDIR=/nonexistent"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert proc.stdout.strip() == (
        "PostgreSQL 15 server binaries not found: apt-get install postgresql-15 postgresql-contrib"
    )


def test_a_database_is_created_while_another_session_uses_template1(stack: LocalStack) -> None:
    # a psql left open on template1, or another tool creating a database at that moment:
    # CREATE DATABASE copying template1 fails then (55006, "source database is being accessed")
    busy = scratch_db("tpl_busy")  # in the test namespace: another checkout's run has its own
    with stack.admin_connect("template1"):
        stack.create_database(busy, drop=True)
        assert stack.database_exists(busy)
        stack.create_database(busy, drop=True)  # dropped and made again
    with stack.admin_connect(stack.maintenance_db(busy)) as conn:
        conn.execute(f'drop database "{busy}"')


def _forget_applied(scratch: LocalStack, version: str, table: str) -> None:
    with psycopg.connect(scratch.database_url(), autocommit=True) as conn:
        conn.execute(f"drop table if exists public.{table}")
        conn.execute("delete from supabase_migrations.schema_migrations where version = %s", (version,))


def test_a_failing_migration_after_others_in_one_push_is_the_one_named(
    scratch: LocalStack, scratch_project: Path
) -> None:
    """Two pending files, the second fails: the error names the second, not the first one
    applied (found by mutation testing: one pending file could not tell them apart)."""
    scratch.up()
    folder = scratch_project / "supabase" / "migrations"
    fine, bad = folder / "29991230000000_fine.sql", folder / "29991231000000_broken.sql"
    fine.write_text("create table public.fine_part (id int);\n")
    bad.write_text("select * from public.no_such_table;\n")
    try:
        with pytest.raises(MigrationError) as err:
            scratch.up()
        assert err.value.file == "29991231000000_broken.sql"
        assert scratch.status().pending == ["29991231000000_broken.sql"]
    finally:
        fine.unlink()
        bad.unlink()
        _forget_applied(scratch, "29991230000000", "fine_part")


def test_a_migration_older_than_the_last_applied_one_is_applied(
    scratch: LocalStack, scratch_project: Path
) -> None:
    """A file merged from a branch whose version sorts before the newest applied one: `up`
    applies it (``--include-all``) instead of refusing or leaving it pending for ever (found by
    mutation testing: a test database is always built afresh, so nothing else meets one)."""
    scratch.up()
    latest = local_migrations(scratch_project)[-1].version
    version = str(int(latest) - 1)
    late = scratch_project / "supabase" / "migrations" / f"{version}_from_a_branch.sql"
    assert not late.exists()
    late.write_text("create table public.branch_part (id int);\n")
    try:
        scratch.up()
        assert scratch.status().pending == []
        with psycopg.connect(scratch.database_url()) as conn:
            assert conn.execute("select to_regclass('public.branch_part') is not null").fetchone() == (True,)
    finally:
        late.unlink()
        _forget_applied(scratch, version, "branch_part")


def test_a_stale_pid_file_naming_another_process_of_the_server_user_is_no_server(scratch: LocalStack) -> None:
    """After a crash (and a reboot), the number in postmaster.pid may belong to another
    process of the server's user. pg_ctl status calls the cluster running then: `up` started
    nothing and failed at its first connection, and `down` would have signalled that process
    (found by review). Only a PostgreSQL process counts as the server now."""
    state = scratch.up()
    pid_file = Path(state.data_dir) / "postmaster.pid"
    pid = int(pid_file.read_text().splitlines()[0])
    lines = pid_file.read_text().splitlines(keepends=True)
    _kill(pid)
    squatter = subprocess.Popen(scratch._as_user(state.os_user, ["sleep", "120"]))
    try:
        sleeper = squatter.pid
        if os.geteuid() == 0:  # runuser forks: the sleep is its child, a process of the server's user
            for _ in range(100):
                found = subprocess.run(["pgrep", "-P", str(squatter.pid)], capture_output=True, text=True)
                if found.stdout.split():
                    sleeper = int(found.stdout.split()[0])
                    break
                subprocess.run(["sleep", "0.05"], check=True)
            assert sleeper != squatter.pid, "the sleep under runuser did not start"
        pid_file.write_text("".join([f"{sleeper}\n", *lines[1:]]))
        assert not scratch.running()
        assert not scratch.stop()  # nothing to stop, and the sleeper is left alone
        scratch.up()
        assert scratch.running()
        with psycopg.connect(scratch.database_url()) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        os.kill(sleeper, 0)  # still alive
    finally:
        subprocess.run(["pkill", "-P", str(squatter.pid)], check=False)
        squatter.kill()
        squatter.wait()
