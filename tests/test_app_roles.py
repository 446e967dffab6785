"""The role model: who may grant and revoke, and that revocation bites on the next request."""

from __future__ import annotations

import pytest

from support.cast import Cast
from support.postgrest import SERVICE, ApiError, PostgrestSession


def roles_of(api: PostgrestSession, user_id) -> set[str]:
    rows = api.query(
        SERVICE, "select role::text as role from public.app_user_roles where user_id = %s", [user_id]
    )
    return {r["role"] for r in rows}


def test_admin_grants_and_revokes_roles_of_others(api: PostgrestSession, cast: Cast) -> None:
    api.query(
        cast.admin,
        "insert into public.app_user_roles (user_id, role) values (%s, 'sales_manager')",
        [cast.nobody.user_id],
    )
    row = api.query(
        SERVICE, "select granted_by from public.app_user_roles where user_id = %s", [cast.nobody.user_id]
    )
    assert row == [{"granted_by": cast.admin.user_id}]
    deleted = api.query(
        cast.admin,
        "delete from public.app_user_roles where user_id = %s returning role::text",
        [cast.nobody.user_id],
    )
    assert deleted == [{"role": "sales_manager"}]


@pytest.mark.parametrize("label", ["admin", "targetologist", "sales_manager", "student", "nobody"])
def test_nobody_grants_themselves_a_role(api: PostgrestSession, cast: Cast, label: str) -> None:
    actor = getattr(cast, label)
    with pytest.raises(ApiError) as err:
        api.query(
            actor, "insert into public.app_user_roles (user_id, role) values (%s, 'admin')", [actor.user_id]
        )
    assert err.value.code == "42501" and err.value.status == 403
    assert "admin" not in roles_of(api, actor.user_id) or label == "admin"


def test_admin_cannot_forge_granted_by(api: PostgrestSession, cast: Cast) -> None:
    with pytest.raises(ApiError) as err:
        api.query(
            cast.admin,
            "insert into public.app_user_roles (user_id, role, granted_by) values (%s, 'student', %s)",
            [cast.nobody.user_id, cast.sales_manager.user_id],
        )
    assert err.value.code == "42501"


def test_non_admins_cannot_grant_to_others(api: PostgrestSession, cast: Cast) -> None:
    for actor in (cast.sales_manager, cast.targetologist, cast.student):
        with pytest.raises(ApiError):
            api.query(
                actor,
                "insert into public.app_user_roles (user_id, role) values (%s, 'student')",
                [cast.nobody.user_id],
            )


def test_revocation_is_effective_on_the_very_next_request(api: PostgrestSession, cast: Cast) -> None:
    who = cast.targetologist  # the JWT stays the same throughout
    before = api.query(who, "select count(*) as n from public.traffic_teams")[0]["n"]
    assert before == 1
    api.query(
        SERVICE,
        "delete from public.app_user_roles where user_id = %s and role = 'targetologist'",
        [who.user_id],
    )
    after = api.query(who, "select count(*) as n from public.traffic_teams")[0]["n"]
    assert after == 0
    api.query(
        SERVICE,
        "insert into public.app_user_roles (user_id, role) values (%s, 'targetologist')",
        [who.user_id],
    )
    assert api.query(who, "select count(*) as n from public.traffic_teams")[0]["n"] == 1


def test_roles_in_the_jwt_are_not_trusted(api: PostgrestSession, cast: Cast) -> None:
    """app_metadata claims saying admin do not make anyone an admin: the table decides."""
    from dataclasses import replace

    forged = replace(
        cast.student,
        extra_claims={"app_metadata": {"role": "admin", "roles": ["admin"]}, "user_role": "admin"},
    )
    assert api.query(forged, "select count(*) as n from public.traffic_users")[0]["n"] == 0


def test_deleting_an_auth_user_removes_their_roles_and_profile(
    api: PostgrestSession, cast: Cast, owner_conn
) -> None:
    from support.cast import create_auth_user

    with owner_conn.transaction():
        uid = create_auth_user(owner_conn, "temp-targetologist@example.kz", ("targetologist",))
        owner_conn.execute(
            "insert into public.traffic_users (id, email, full_name) values (%s, 'temp-targetologist@example.kz', 'Temp')",
            [uid],
        )
    owner_conn.execute("delete from auth.users where id = %s", [uid])
    assert roles_of(api, uid) == set()
    assert (
        api.query(SERVICE, "select count(*) as n from public.traffic_users where id = %s", [uid])[0]["n"] == 0
    )


def test_a_deactivated_traffic_user_loses_access_until_reactivated(api: PostgrestSession, cast: Cast) -> None:
    """is_active = false takes the user's app roles away (kept in suspended_roles), no role can
    be granted meanwhile, and reactivation gives them back (it had no effect at all before)."""
    from support.leads import record, unique_phone

    who = cast.targetologist
    lead_id = record(api, p_phone=unique_phone(), p_utm_source="fb_arystan")["lead_id"]
    sees = "select count(*) as n from public.traffic_leads where id = %s"
    assert api.query(who, sees, [lead_id]) == [{"n": 1}]
    try:
        api.query(
            cast.admin, "update public.traffic_users set is_active = false where id = %s", [who.user_id]
        )
        assert roles_of(api, who.user_id) == set()
        assert api.query(
            SERVICE,
            "select suspended_roles::text[] as r from public.traffic_users where id = %s",
            [who.user_id],
        ) == [{"r": ["targetologist"]}]
        assert api.query(who, sees, [lead_id]) == [{"n": 0}]
        # nor the team's profiles and sources: deactivated, the user holds no role, and the
        # team rows were shown to them while their team_id stayed (found by mutation review)
        assert api.query(who, "select id from public.traffic_users") == []
        assert api.query(who, "select utm_source from public.traffic_user_utm_sources") == []
        with pytest.raises(ApiError) as err:
            api.query(
                cast.admin,
                "insert into public.app_user_roles (user_id, role) values (%s, 'sales_manager')",
                [who.user_id],
            )
        assert err.value.code == "55000"
    finally:
        api.query(cast.admin, "update public.traffic_users set is_active = true where id = %s", [who.user_id])
    assert roles_of(api, who.user_id) == {"targetologist"}
    assert api.query(who, sees, [lead_id]) == [{"n": 1}]
    assert api.query(
        SERVICE, "select suspended_roles::text[] as r from public.traffic_users where id = %s", [who.user_id]
    ) == [{"r": []}]


def test_a_targetologist_without_a_team_sees_their_own_profile_and_sources(
    api: PostgrestSession, cast: Cast
) -> None:
    """Every targetologist of the matrix's cast has a team, so the "self" part of the rule
    was never walked on its own (found by mutation review)."""
    who = cast.targetologist_b
    api.query(SERVICE, "update public.traffic_users set team_id = null where id = %s", [who.user_id])
    assert api.query(who, "select id from public.traffic_users") == [{"id": who.user_id}]
    sources = api.query(who, "select utm_source from public.traffic_user_utm_sources")
    assert sources == [{"utm_source": "fb_kenesary"}]
    # two teamless targetologists are no team of two (mutation review: a null-safe team match
    # showed each the other's sources, the cast having one teamless user with sources)
    other = cast.targetologist_a2
    api.query(SERVICE, "update public.traffic_users set team_id = null where id = %s", [other.user_id])
    assert api.query(who, "select utm_source from public.traffic_user_utm_sources") == sources
    assert api.query(who, "select id from public.traffic_users") == [{"id": who.user_id}]


@pytest.mark.parametrize(
    ("statement", "args"),
    [
        ("update public.traffic_users set suspended_roles = '{admin}' where id = %s", "self"),
        ("update public.traffic_users set suspended_roles = '{admin}' where id = %s", "other"),
        ("update public.traffic_users set id = %s where id = %s", "swap"),
        (
            "insert into public.traffic_users (id, email, full_name, is_active, suspended_roles)"
            " values (%s, 'planted@example.kz', 'Planted', false, '{admin}')",
            "nobody",
        ),
    ],
)
def test_an_admin_cannot_plant_roles_for_reactivation(
    api: PostgrestSession, cast: Cast, statement: str, args: str
) -> None:
    """suspended_roles is written by the (de)activation triggers only: an admin who could write
    it (or move a profile's id) had the definer trigger grant those roles on reactivation, to
    themselves too, with granted_by NULL (found by review)."""
    params = {
        "self": [cast.admin.user_id],
        "other": [cast.targetologist.user_id],
        "swap": [cast.admin.user_id, cast.targetologist.user_id],
        "nobody": [cast.nobody.user_id],
    }[args]
    with pytest.raises(ApiError) as err:
        api.query(cast.admin, statement, params)
    assert err.value.code == "42501" and err.value.status == 403


@pytest.mark.parametrize("label", ["targetologist", "sales_manager", "student", "nobody"])
def test_a_role_insert_by_a_non_admin_does_not_tell_who_is_deactivated(
    api: PostgrestSession, cast: Cast, label: str
) -> None:
    """The trigger refusing roles for deactivated users ran before RLS and answered 55000 (HTTP
    500) for them, 42501 for others: anyone signed in could test ids (found by review)."""
    who = cast.targetologist_b
    api.query(cast.admin, "update public.traffic_users set is_active = false where id = %s", [who.user_id])
    try:
        for target in (who.user_id, cast.sales_manager.user_id):
            with pytest.raises(ApiError) as err:
                api.query(
                    getattr(cast, label),
                    "insert into public.app_user_roles (user_id, role) values (%s, 'admin')",
                    [target],
                )
            assert err.value.code == "42501" and err.value.status == 403
        with pytest.raises(ApiError) as err:  # an admin is told why
            api.query(
                cast.admin,
                "insert into public.app_user_roles (user_id, role) values (%s, 'admin')",
                [who.user_id],
            )
        assert err.value.code == "55000"
    finally:
        api.query(cast.admin, "update public.traffic_users set is_active = true where id = %s", [who.user_id])
    assert roles_of(api, who.user_id) == {"targetologist"}


def _profile(api: PostgrestSession, user_id) -> dict:
    return api.query(
        SERVICE,
        "select email, full_name, team_id, is_active, suspended_roles::text[] as suspended"
        " from public.traffic_users where id = %s",
        [user_id],
    )[0]


def _grants(api: PostgrestSession, user_id) -> list[dict]:
    return api.query(
        SERVICE,
        "select role::text as role, granted_by, granted_at from public.app_user_roles"
        " where user_id = %s order by role",
        [user_id],
    )


@pytest.mark.parametrize("resolution", ["merge-duplicates", "ignore-duplicates"])
def test_an_upsert_that_deactivates_keeps_the_roles_for_reactivation(
    api: PostgrestSession, cast: Cast, resolution: str
) -> None:
    """supabase-js .upsert() of an existing profile with is_active = false deleted the user's
    roles for good: the BEFORE INSERT trigger fired for the proposed row before ON CONFLICT
    threw it away (found by review). Roles move only with the row actually written, and come
    back on reactivation as they were granted (who and when)."""
    who = cast.targetologist_b
    before = _grants(api, who.user_id)
    profile = _profile(api, who.user_id)
    assert before and profile["is_active"], (before, profile)
    action = (
        "do update set email = excluded.email, full_name = excluded.full_name,"
        " team_id = excluded.team_id, is_active = excluded.is_active"
        if resolution == "merge-duplicates"
        else "do nothing"
    )
    upsert = (  # what PostgREST sends for POST /traffic_users?on_conflict=id with that Prefer
        "insert into public.traffic_users (id, email, full_name, team_id, is_active)"
        f" values (%s, %s, %s, %s, false) on conflict (id) {action}"
        " returning is_active, suspended_roles::text[] as suspended"
    )
    try:
        written = api.query(
            cast.admin, upsert, [who.user_id, profile["email"], profile["full_name"], profile["team_id"]]
        )
        if resolution == "ignore-duplicates":  # nothing written: nothing changes
            assert written == []
            assert _grants(api, who.user_id) == before and _profile(api, who.user_id) == profile
            return
        assert written == [{"is_active": False, "suspended": [g["role"] for g in before]}]
        assert _grants(api, who.user_id) == []
    finally:
        api.query(cast.admin, "update public.traffic_users set is_active = true where id = %s", [who.user_id])
    assert _grants(api, who.user_id) == before  # granted_by and granted_at as they were
    assert _profile(api, who.user_id) == profile


def test_a_role_granted_by_an_admin_comes_back_with_its_grantor(api: PostgrestSession, cast: Cast) -> None:
    """Reactivation granted the roles again with granted_by NULL ("the service role") and a
    new granted_at: an admin could launder their own grant (found by review)."""
    who = cast.targetologist_b
    api.query(
        cast.admin,
        "insert into public.app_user_roles (user_id, role) values (%s, 'sales_manager')",
        [who.user_id],
    )
    try:
        granted = _grants(api, who.user_id)
        assert {g["role"]: g["granted_by"] for g in granted}["sales_manager"] == cast.admin.user_id
        api.query(
            cast.admin, "update public.traffic_users set is_active = false where id = %s", [who.user_id]
        )
        api.query(cast.admin, "update public.traffic_users set is_active = true where id = %s", [who.user_id])
        assert _grants(api, who.user_id) == granted
    finally:
        api.query(
            SERVICE,
            "delete from public.app_user_roles where user_id = %s and role = 'sales_manager'",
            [who.user_id],
        )


def test_nobody_deactivates_their_own_profile(api: PostgrestSession, cast: Cast) -> None:
    """An admin who set their own is_active = false dropped their own roles (a sole admin
    locked everyone out), past "nobody changes their own roles" (found by review)."""
    before = _grants(api, cast.admin.user_id)
    for statement in (
        "update public.traffic_users set is_active = false where id = %s",
        "insert into public.traffic_users (id, email, full_name, is_active) values (%s, 'x@example.kz', 'X', false)"
        " on conflict (id) do update set is_active = excluded.is_active",
    ):
        with pytest.raises(ApiError) as err:
            api.query(cast.admin, statement, [cast.admin.user_id])
        assert err.value.code == "42501" and "your own" in err.value.message, err.value
        assert err.value.hint and "another admin" in err.value.hint
    assert _grants(api, cast.admin.user_id) == before
