"""The platform bootstrap reproduces what hosted Supabase gives a migration."""

from __future__ import annotations

import psycopg
import pytest

from onai_db import migrate
from onai_db.local import LocalStack
from support.consolidation import scratch_db
from support.postgrest import ANON, SERVICE, ApiError, PostgrestSession


def roles(conn: psycopg.Connection) -> dict[str, dict]:
    rows = conn.execute(
        "select rolname, rolsuper, rolinherit, rolcanlogin, rolbypassrls from pg_roles"
        " where rolname in ('postgres','anon','authenticated','service_role','authenticator')"
    ).fetchall()
    return {r[0]: {"super": r[1], "inherit": r[2], "login": r[3], "bypassrls": r[4]} for r in rows}


def test_roles_match_hosted_supabase(owner_conn: psycopg.Connection) -> None:
    got = roles(owner_conn)
    assert got["postgres"] == {"super": False, "inherit": True, "login": True, "bypassrls": True}
    assert got["anon"] == {"super": False, "inherit": True, "login": False, "bypassrls": False}
    assert got["authenticated"]["bypassrls"] is False
    assert got["service_role"]["bypassrls"] is True
    assert got["authenticator"] == {
        "super": False,
        "inherit": False,
        "login": True,
        "bypassrls": False,
    }
    members = {
        r[0]
        for r in owner_conn.execute(
            "select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid"
            " join pg_roles u on u.oid = m.member where u.rolname = 'authenticator'"
        )
    }
    assert members == {"anon", "authenticated", "service_role"}


def test_jwt_helpers_read_request_claims(api: PostgrestSession, cast) -> None:
    row = api.query(
        cast.targetologist,
        "select auth.uid() as uid, auth.role() as role, auth.email() as email, auth.jwt() ->> 'aud' as aud",
    )[0]
    assert row == {
        "uid": cast.targetologist.user_id,
        "role": "authenticated",
        "email": cast.targetologist.email,
        "aud": "authenticated",
    }
    anon = api.query(ANON, "select auth.uid() as uid, auth.role() as role")[0]
    assert anon == {"uid": None, "role": "anon"}


def test_legacy_claim_guc_wins_over_json_claims(api: PostgrestSession, cast) -> None:
    other = cast.student.user_id
    with api.request(cast.admin) as cur:
        cur.execute("select set_config('request.jwt.claim.sub', %s, true)", (str(other),))
        cur.execute("select auth.uid() as uid")
        assert cur.fetchone()["uid"] == other


def test_new_tables_are_not_exposed_by_default(owner_conn: psycopg.Connection, api: PostgrestSession) -> None:
    """2026-10-30 default: a table created by a migration gets no API grants."""
    owner_conn.execute("create table if not exists public.zz_probe (id int)")
    try:
        with pytest.raises(ApiError) as denied:
            api.query(ANON, "select * from public.zz_probe")
        assert denied.value.code == "42501" and denied.value.status == 401
        with pytest.raises(ApiError) as denied_service:
            api.query(SERVICE, "select * from public.zz_probe")
        assert denied_service.value.status == 403
    finally:
        owner_conn.execute("drop table public.zz_probe")


def test_private_schema_is_not_callable_over_the_api(api: PostgrestSession, cast) -> None:
    with pytest.raises(ApiError) as err:
        api.query(cast.admin, "select private.has_role('admin')")
    assert err.value.code == "42501"


def test_api_roles_cannot_read_auth_users(api: PostgrestSession, cast) -> None:
    for actor in (ANON, cast.admin):
        with pytest.raises(ApiError) as err:
            api.query(actor, "select count(*) from auth.users")
        assert err.value.code == "42501"


# every privilege the API roles hold on this project's objects in public: relations and
# sequences, columns, functions
_PRIVILEGES = """
select 'relation', c.relkind::text || ' ' || c.relname, a.grantee::regrole::text, a.privilege_type
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
cross join lateral pg_catalog.aclexplode(c.relacl) as a
where n.nspname = 'public'
union all
select 'column', c.relname || '.' || t.attname, a.grantee::regrole::text, a.privilege_type
from pg_catalog.pg_attribute as t
join pg_catalog.pg_class as c on c.oid = t.attrelid
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
cross join lateral pg_catalog.aclexplode(t.attacl) as a
where n.nspname = 'public' and t.attnum > 0 and not t.attisdropped
union all
select 'function', p.oid::regprocedure::text, a.grantee::regrole::text, a.privilege_type
from pg_catalog.pg_proc as p
join pg_catalog.pg_namespace as n on n.oid = p.pronamespace
cross join lateral pg_catalog.aclexplode(p.proacl) as a
where n.nspname = 'public' and a.grantee <> 0
"""


# postgres's default privileges in public for the API roles: (object type, grantee, privilege)
_DEFAULT_PRIVILEGES = """
select d.defaclobjtype::text, g.rolname::text, a.privilege_type::text
from pg_catalog.pg_default_acl as d
cross join lateral pg_catalog.aclexplode(d.defaclacl) as a
join pg_catalog.pg_roles as g on g.oid = a.grantee
where d.defaclrole = 'postgres'::regrole and d.defaclnamespace = 'public'::regnamespace
  and g.rolname in ('anon', 'authenticated', 'service_role')
"""


def test_privileges_do_not_depend_on_the_projects_default_privileges(
    stack: LocalStack, owner_conn: psycopg.Connection
) -> None:
    """A hosted project created before 2026-10-30 (the Traffic project) still grants all on
    every new table, view and sequence to anon, authenticated and service_role. The
    migrations must end with the same privileges there as under the current default:
    before `20261206100000` anon could read the monitoring views and a sales manager could
    update any column of traffic_leads (found by review of a hosted deploy)."""
    db = scratch_db("privileges_old_default")
    stack.create_database(db, drop=True)
    stack.bootstrap(db)
    with stack.admin_connect(db) as conn:  # the old default, as such projects still have it
        for kind in ("tables", "functions", "sequences"):
            conn.execute(
                f"alter default privileges for role postgres in schema public"
                f" grant all on {kind} to anon, authenticated, service_role"
            )
    migrate.push(stack.settings.project_dir, stack.database_url(db), echo=lambda _m: None)
    with psycopg.connect(stack.database_url(db)) as old_default:
        got = set(old_default.execute(_PRIVILEGES).fetchall())
        got_defaults = set(old_default.execute(_DEFAULT_PRIVILEGES).fetchall())
    expected = set(owner_conn.execute(_PRIVILEGES).fetchall())
    api_roles = {"anon", "authenticated", "service_role"}
    assert any(row[0] == "column" and row[2] == "authenticated" for row in expected)  # the query sees columns
    assert {r for r in got - expected if r[2] in api_roles} == set()
    assert {r for r in expected - got if r[2] in api_roles} == set()
    # and what is created later (the SQL editor, a migration that forgets its revokes) is not
    # exposed either: the default privileges end alike (`20261207100000`)
    assert got_defaults == set(owner_conn.execute(_DEFAULT_PRIVILEGES).fetchall())
    assert ("r", "anon", "SELECT") not in got_defaults and ("f", "anon", "EXECUTE") not in got_defaults
    with stack.admin_connect(stack.maintenance_db(db)) as conn:
        conn.execute(f'drop database "{db}"')
