"""The platform bootstrap reproduces what hosted Supabase gives a migration."""

from __future__ import annotations

import psycopg
import pytest

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
