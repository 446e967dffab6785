"""The access matrix's own checks fail when they should: the loader refuses a bad matrix and
coverage() reports each kind of gap (found by mutation review: every check below could be
switched off and the suite, which only ever sees a clean database, still passed)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import psycopg
import pytest

from onai_db.errors import ConfigError
from onai_db.policies import Coverage, Entry, coverage, exposed_schemas, load_matrix
from onai_db.settings import find_project_dir

PROJECT = find_project_dir()
MATRIX = load_matrix(PROJECT)
SCHEMAS = exposed_schemas(PROJECT)


def _project_with(tmp_path: Path, extra_yaml: str) -> Path:
    (tmp_path / "policies").mkdir()
    for path in (PROJECT / "policies").glob("*.yaml"):
        shutil.copy(path, tmp_path / "policies" / path.name)
    (tmp_path / "policies" / "zz_extra.yaml").write_text(extra_yaml)
    return tmp_path


def test_an_object_defined_twice_is_refused(tmp_path: Path) -> None:
    """A second entry for a table would silently replace the first (the walk then checks only
    one of them, whichever file sorts last)."""
    name = "public.integration_tokens"
    text = (PROJECT / "policies" / MATRIX[name].source).read_text()
    start = text.index(f"{name}:")
    block = text[start:].split("\npublic.", 1)[0]
    with pytest.raises(ConfigError, match="already defined"):
        load_matrix(_project_with(tmp_path, block.replace("deny", "all") + "\n"))


def _report(conn: psycopg.Connection, matrix: dict[str, Entry] = MATRIX) -> Coverage:
    return coverage(conn, matrix, SCHEMAS)


def test_a_table_without_rls_is_reported(owner_conn: psycopg.Connection) -> None:
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("alter table public.integration_tokens disable row level security")
        report = _report(owner_conn)
        assert report.rls_disabled == ["public.integration_tokens"]
        assert not report.ok and any("row level security is disabled" in p for p in report.problems())


def test_a_new_table_missing_from_the_matrix_is_reported(owner_conn: psycopg.Connection) -> None:
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create table public.probe_missing (id int)")
        owner_conn.execute("alter table public.probe_missing enable row level security")
        report = _report(owner_conn)
        assert report.missing == ["public.probe_missing"]
        assert not report.ok


def test_a_matrix_entry_gone_from_the_database_is_reported(owner_conn: psycopg.Connection) -> None:
    name = "public.integration_tokens"
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("drop table public.integration_tokens cascade")
        report = _report(owner_conn)
        assert report.stale == [name]
        assert not report.ok


def test_a_materialized_view_is_seen_and_reported(owner_conn: psycopg.Connection) -> None:
    """A materialized view has no RLS: readable by whoever holds SELECT."""
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create materialized view public.probe_mv as select 1 as x")
        report = _report(owner_conn)
        assert "public.probe_mv" in report.missing
        assert "public.probe_mv" in report.definer_views
        assert not report.ok


def test_a_view_without_security_invoker_is_reported(owner_conn: psycopg.Connection) -> None:
    """A definer view runs as its owner: RLS of the tables beneath it does not apply."""
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create view public.probe_definer as select 1 as x")
        report = _report(owner_conn)
        assert report.definer_views == ["public.probe_definer"]
        owner_conn.execute("alter view public.probe_definer set (security_invoker = on)")
        assert _report(owner_conn).definer_views == []


def test_a_kind_that_differs_from_the_matrix_is_reported(owner_conn: psycopg.Connection) -> None:
    """A table the matrix calls a view is walked for SELECT only: writes would go unchecked."""
    name = "public.integration_tokens"
    wrong = {**MATRIX, name: dataclasses.replace(MATRIX[name], kind="view")}
    report = _report(owner_conn, wrong)
    assert report.wrong_kind == [name]
    assert not report.ok


def test_an_extension_table_readable_by_the_api_is_reported(superuser_url: str) -> None:
    """An extension's table or view in public that anon may read (pg_stat_statements' view is
    granted to PUBLIC) is reported like its functions; here fuzzystrmatch, its functions
    closed, is given such a table, so only the table can make the report."""
    with psycopg.connect(superuser_url) as conn:  # rolled back on leaving
        conn.execute("create extension fuzzystrmatch schema public")
        for (fn,) in conn.execute(
            "select p.oid::regprocedure::text from pg_proc p join pg_depend d on d.objid = p.oid"
            " join pg_extension e on e.oid = d.refobjid and d.deptype = 'e'"
            " where e.extname = 'fuzzystrmatch'"
        ).fetchall():
            conn.execute(f"revoke execute on function {fn} from public, anon, authenticated")
        assert _report(conn).extensions == []
        conn.execute("create table public.probe_extension_table (x int)")
        conn.execute("grant select on public.probe_extension_table to anon")
        conn.execute("alter extension fuzzystrmatch add table public.probe_extension_table")
        report = _report(conn)
        assert report.extensions == ["fuzzystrmatch (1 object(s), e.g. public.probe_extension_table)"]
        assert not report.ok
        conn.rollback()
