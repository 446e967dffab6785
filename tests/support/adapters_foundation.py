"""Matrix adapters for the foundation tables (roles, teams, traffic users, UTM sources)."""

from __future__ import annotations

import uuid

from .cast import TEAM_A, Cast
from .matrix import TableAdapter
from .postgrest import Actor


def _team_members(cast: Cast, actor: Actor) -> set[uuid.UUID]:
    return {p.user_id for p in cast.people() if actor.team_id is not None and p.team_id == actor.team_id} | {
        actor.user_id
    }


def _role_samples(cast: Cast, actor: Actor) -> list[dict]:
    # a role the target does not hold yet, for another user and for the actor itself
    other = cast.nobody.user_id if actor.user_id != cast.nobody.user_id else cast.student.user_id
    samples = [{"user_id": other, "role": "student", "granted_by": actor.user_id}]
    if actor.user_id is not None:
        samples.append({"user_id": actor.user_id, "role": "sales_manager", "granted_by": actor.user_id})
    return samples


ADAPTERS = {
    "public.app_user_roles": TableAdapter(
        key=("user_id", "role"),
        rules={
            "own": lambda actor, row, cast: row["user_id"] == actor.user_id,
            "others": lambda actor, row, cast: row["user_id"] != actor.user_id,
        },
        insert_samples=_role_samples,
        update_column="granted_at",
    ),
    "public.traffic_teams": TableAdapter(
        rules={"own_team": lambda actor, row, cast: row["id"] == actor.team_id},
        insert_samples=lambda cast, actor: [{"name": f"Team {uuid.uuid4().hex[:8]}"}],
        update_column="name",
    ),
    "public.traffic_users": TableAdapter(
        rules={"self_and_team": lambda actor, row, cast: row["id"] in _team_members(cast, actor)},
        # the student has an auth user but no traffic profile yet
        insert_samples=lambda cast, actor: [
            {
                "id": cast.student.user_id,
                "email": cast.student.email,
                "full_name": "Student",
                "team_id": TEAM_A,
            }
        ],
        update_column="full_name",
    ),
    "public.traffic_user_utm_sources": TableAdapter(
        key=("utm_source",),
        rules={"team": lambda actor, row, cast: row["user_id"] in _team_members(cast, actor)},
        insert_samples=lambda cast, actor: [
            {"utm_source": "tt_new_source", "user_id": cast.targetologist_b.user_id}
        ],
        update_column="user_id",
    ),
}
