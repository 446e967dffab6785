"""The database matches policies/ cell by cell, and nothing exposed is left out."""

from __future__ import annotations

import psycopg
import pytest

from onai_db.policies import coverage, exposed_schemas, load_matrix
from onai_db.settings import find_project_dir
from support.cast import MATRIX_ROLES, Actor, Cast
from support.matrix import (
    FunctionAdapter,
    TableAdapter,
    check_execute,
    check_insert,
    check_row_writes,
    check_select,
    collect_adapters,
)
from support.postgrest import PostgrestSession

PROJECT = find_project_dir()
MATRIX = load_matrix(PROJECT)
ADAPTERS = collect_adapters()
CELLS = [(name, role) for name in sorted(MATRIX) for role in MATRIX_ROLES]


def test_every_exposed_object_is_in_the_matrix_and_protected(owner_conn: psycopg.Connection) -> None:
    report = coverage(owner_conn, MATRIX, exposed_schemas(PROJECT))
    assert report.exposed, "nothing exposed at all: the migrations did not run"
    assert report.ok, "\n".join(report.problems())


def test_every_matrix_object_has_an_adapter() -> None:
    assert sorted(set(MATRIX) - set(ADAPTERS)) == []
    assert sorted(set(ADAPTERS) - set(MATRIX)) == []


def test_anon_is_denied_everything() -> None:
    allowed = [(n, op) for n, e in MATRIX.items() for op, rule in e.cells["anon"].items() if rule != "deny"]
    assert allowed == []


@pytest.mark.parametrize(("name", "role"), CELLS, ids=[f"{n}-{r}" for n, r in CELLS])
def test_cells(api: PostgrestSession, cast: Cast, name: str, role: str) -> None:
    _check_cells(api, cast, name, role, cast.by_matrix_role(role))


def _check_cells(
    api: PostgrestSession, cast: Cast, name: str, role: str, actor: Actor, *, cover: bool = True
) -> None:
    """Every operation on ``name`` as ``actor`` against the matrix column of ``role``."""
    entry = MATRIX[name]
    adapter = ADAPTERS[name]
    if adapter.seed is not None:
        adapter.seed(api, cast)
    for op in entry.ops:
        rule = entry.cell(role, op)
        if isinstance(adapter, FunctionAdapter):
            check_execute(api, name, adapter, rule, actor, cast)
            continue
        assert isinstance(adapter, TableAdapter)
        if op == "select":
            check_select(api, name, adapter, rule, actor, cast, cover=cover)
        elif op == "insert":
            check_insert(api, name, adapter, rule, actor, cast, cover=cover)
        else:
            check_row_writes(api, name, adapter, op, rule, actor, cast, cover=cover)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_a_signed_in_user_without_an_app_role_has_no_more_than_a_student(
    api: PostgrestSession, cast: Cast, name: str
) -> None:
    """The matrix has a column per app role; a signed-in user holding none (just signed up,
    or deactivated: see traffic_users.suspended_roles) is checked against the student's
    column, the least privileged signed-in role, with its row rules applied to that user."""
    _check_cells(api, cast, name, "student", cast.nobody, cover=False)


def test_api_roles_cannot_truncate_or_attach_to_any_table(owner_conn: psycopg.Connection) -> None:
    """TRUNCATE bypasses RLS: anon and authenticated hold it, TRIGGER or REFERENCES on no
    table or view in an exposed schema, including tables created after the migrations."""
    query = (
        "select c.oid::regclass::text, r.rolname, p.privilege_type"
        " from pg_class as c cross join pg_roles as r"
        " cross join unnest(array['TRUNCATE', 'TRIGGER', 'REFERENCES']) as p (privilege_type)"
        " where c.relnamespace::regnamespace::text = any(%s) and c.relkind in ('r', 'v', 'm', 'p', 'f')"
        " and r.rolname in ('anon', 'authenticated') and has_table_privilege(r.oid, c.oid, p.privilege_type)"
    )
    schemas = list(exposed_schemas(PROJECT))
    assert owner_conn.execute(query, (schemas,)).fetchall() == []
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create table public.probe_default_privileges (id int)")
        assert owner_conn.execute(query, (schemas,)).fetchall() == []


def test_api_roles_hold_no_sequence_and_new_functions_are_not_executable_by_default(
    owner_conn: psycopg.Connection,
) -> None:
    """anon and authenticated could setval() the lead and outbox sequences (hosted Supabase's
    default privileges); a function created without grants was executable by anon (PUBLIC)."""
    sequences = (
        "select c.oid::regclass::text, r.rolname"
        " from pg_class as c cross join pg_roles as r"
        " where c.relnamespace::regnamespace::text = any(%s) and c.relkind = 'S'"
        " and r.rolname in ('anon', 'authenticated')"
        " and has_sequence_privilege(r.oid, c.oid, 'USAGE, SELECT, UPDATE')"
    )
    schemas = list(exposed_schemas(PROJECT))
    assert owner_conn.execute(sequences, (schemas,)).fetchall() == []
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("set local role postgres")
        owner_conn.execute("create table public.probe_sequence (id bigint generated always as identity)")
        owner_conn.execute(
            "create function public.probe_default_execute() returns int language sql as 'select 1'"
        )
        assert owner_conn.execute(sequences, (schemas,)).fetchall() == []
        assert owner_conn.execute(
            "select has_function_privilege('anon', 'public.probe_default_execute()', 'execute'),"
            " has_function_privilege('authenticated', 'public.probe_default_execute()', 'execute')"
        ).fetchone() == (False, False)


def test_an_overloaded_function_is_reported_by_the_coverage_check(owner_conn: psycopg.Connection) -> None:
    """The matrix names functions: a second signature of a matrix function would go unchecked."""
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute(
            "create function public.traffic_dashboard(p_probe text) returns int language sql as 'select 1'"
        )
        report = coverage(owner_conn, MATRIX, exposed_schemas(PROJECT))
        assert report.overloaded == ["public.traffic_dashboard"]
        assert not report.ok and any("overloaded" in p for p in report.problems())


def test_an_extension_in_an_exposed_schema_is_reported_by_the_coverage_check(
    owner_conn: psycopg.Connection,
) -> None:
    """The dashboard's "enable extension" into public made its functions callable by anon
    through /rpc, and the check still said "coverage ok" (found by review)."""
    with owner_conn.transaction(force_rollback=True):
        owner_conn.execute("create extension fuzzystrmatch schema public")
        report = coverage(owner_conn, MATRIX, exposed_schemas(PROJECT))
        assert len(report.extensions) == 1 and report.extensions[0].startswith("fuzzystrmatch ("), report
        assert not report.ok and any("create it in the extensions schema" in p for p in report.problems())
    with owner_conn.transaction(force_rollback=True):  # where it belongs: no problem
        owner_conn.execute("create extension fuzzystrmatch schema extensions")
        assert coverage(owner_conn, MATRIX, exposed_schemas(PROJECT)).ok


# The columns a signed-in user may write, by table and privilege (RLS then says which rows).
# The matrix walk writes one column per table, so a widened column grant went unnoticed
# (found by the mutation review: UPDATE of merged_into or amocrm_synced on traffic_leads
# let sales fake a merge or an AmoCRM sync through the API). A new column is written by
# signed-in users only when it is added here on purpose.
SIGNED_IN_WRITES = {
    ("app_user_roles", "INSERT"): "granted_at,granted_by,role,user_id",
    ("telegram_groups", "INSERT"): "bot,chat_id,created_at,deactivated_at,deactivation_reason,group_type,id,"
    "is_active,title,updated_at",
    ("telegram_groups", "UPDATE"): "bot,chat_id,created_at,deactivated_at,deactivation_reason,group_type,id,"
    "is_active,title,updated_at",
    ("traffic_leads", "UPDATE"): "metadata,name",
    ("traffic_teams", "INSERT"): "created_at,id,name,updated_at",
    ("traffic_teams", "UPDATE"): "created_at,id,name,updated_at",
    ("traffic_user_utm_sources", "INSERT"): "created_at,user_id,utm_source",
    ("traffic_user_utm_sources", "UPDATE"): "created_at,user_id,utm_source",
    ("traffic_users", "INSERT"): "email,full_name,id,is_active,team_id",
    ("traffic_users", "UPDATE"): "email,full_name,is_active,team_id",
}


@pytest.mark.parametrize("role", ["authenticated", "anon"])
def test_the_columns_api_roles_may_write_are_the_pinned_ones(
    owner_conn: psycopg.Connection, role: str
) -> None:
    rows = owner_conn.execute(
        """
        select c.relname, p.priv, string_agg(a.attname, ',' order by a.attname)
        from pg_catalog.pg_class as c
        join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
        cross join (values ('INSERT'), ('UPDATE')) as p (priv)
        join pg_catalog.pg_attribute as a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
        where n.nspname = any(%s) and c.relkind in ('r', 'v', 'p', 'm', 'f')
          and pg_catalog.has_column_privilege(%s, c.oid, a.attnum, p.priv)
        group by 1, 2
        """,
        (exposed_schemas(PROJECT), role),
    ).fetchall()
    got = {(table, priv): columns for table, priv, columns in rows}
    assert got == (SIGNED_IN_WRITES if role == "authenticated" else {})


def test_a_table_the_matrix_closes_to_every_signed_in_role_grants_api_roles_nothing(
    owner_conn: psycopg.Connection,
) -> None:
    """A grant on a table no signed-in role may use (the AmoCRM tokens, the consolidation
    ledger) is one RLS slip from a leak: the matrix reads "0 rows" as "denied", so a SELECT
    granted to ``authenticated`` on ``integration_tokens`` went unnoticed (mutation review).
    Such tables grant anon and authenticated nothing at all."""
    signed_in = [r for r in MATRIX_ROLES if r not in ("anon", "service_role")]
    closed = sorted(
        name
        for name, entry in MATRIX.items()
        if entry.kind in ("table", "view")
        and all(cell == "deny" for role in signed_in for cell in entry.cells[role].values())
    )
    assert "public.integration_tokens" in closed and "public.outbox_jobs" in closed, closed
    granted = owner_conn.execute(
        "select t, p from unnest(%s::text[]) as t"
        " cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE']) as p"
        " where pg_catalog.has_table_privilege('authenticated', t, p)"
        " or pg_catalog.has_table_privilege('anon', t, p)",
        (closed,),
    ).fetchall()
    assert granted == []
