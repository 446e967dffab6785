"""The people the tests act as: auth users with app roles, teams and UTM sources.

Created once per test session and committed (auth.users is written by the platform,
never through the API); each test's own changes are rolled back.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

from .postgrest import ANON, SERVICE, Actor

TEAM_A = uuid.UUID("00000000-0000-4000-a000-00000000000a")
TEAM_B = uuid.UUID("00000000-0000-4000-a000-00000000000b")


def create_auth_user(
    conn: psycopg.Connection,
    email: str,
    app_roles: tuple[str, ...] = (),
    user_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Insert an auth user the way GoTrue would, and grant app roles (as the service role)."""
    uid = user_id or uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data,"
        " raw_user_meta_data, created_at, updated_at)"
        " values (%s, 'authenticated', 'authenticated', %s, now(),"
        ' \'{"provider":"email","providers":["email"]}\', \'{}\', now(), now())',
        (uid, email),
    )
    for role in app_roles:
        conn.execute("insert into public.app_user_roles (user_id, role) values (%s, %s)", (uid, role))
    return uid


def as_actor(
    uid: uuid.UUID, email: str, app_roles: tuple[str, ...], team: uuid.UUID | None, label: str
) -> Actor:
    return Actor(label, "authenticated", uid, email, app_roles, team)


@dataclass
class Cast:
    """Representative actors per matrix role, plus extra people for row rules."""

    anon: Actor
    service_role: Actor
    admin: Actor
    targetologist: Actor  # team A
    targetologist_a2: Actor  # team A, so "team" rows differ from "own" rows
    targetologist_b: Actor  # team B
    sales_manager: Actor
    student: Actor
    nobody: Actor  # signed in, no app role

    def by_matrix_role(self, role: str) -> Actor:
        return getattr(self, role)

    def people(self) -> list[Actor]:
        return [
            self.admin,
            self.targetologist,
            self.targetologist_a2,
            self.targetologist_b,
            self.sales_manager,
            self.student,
            self.nobody,
        ]


MATRIX_ROLES = ("anon", "student", "targetologist", "sales_manager", "admin", "service_role")


def build_cast(conn: psycopg.Connection) -> Cast:
    """Create the cast in a committed transaction (``conn`` logs in as postgres)."""
    spec = {
        "admin": ("admin@cast.onai.test", ("admin",), None),
        "targetologist": ("arystan@cast.onai.test", ("targetologist",), TEAM_A),
        "targetologist_a2": ("muha@cast.onai.test", ("targetologist",), TEAM_A),
        "targetologist_b": ("kenesary@cast.onai.test", ("targetologist",), TEAM_B),
        "sales_manager": ("sales@cast.onai.test", ("sales_manager",), None),
        "student": ("student@cast.onai.test", ("student",), None),
        "nobody": ("nobody@cast.onai.test", (), None),
    }
    actors: dict[str, Actor] = {}
    with conn.transaction():
        conn.execute(
            "insert into public.traffic_teams (id, name) values (%s, 'Cast Team A'), (%s, 'Cast Team B')",
            (TEAM_A, TEAM_B),
        )
        for label, (email, roles, team) in spec.items():
            uid = create_auth_user(conn, email, roles)
            actors[label] = as_actor(uid, email, roles, team, label)
            if "targetologist" in roles or "admin" in roles or "sales_manager" in roles:
                conn.execute(
                    "insert into public.traffic_users (id, email, full_name, team_id) values (%s, %s, %s, %s)",
                    (uid, email, label.replace("_", " ").title(), team),
                )
        for source, owner in (
            ("fb_arystan", "targetologist"),
            ("ig_arystan", "targetologist"),
            ("fb_muha", "targetologist_a2"),
            ("fb_kenesary", "targetologist_b"),
        ):
            conn.execute(
                "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)",
                (source, actors[owner].user_id),
            )
    return Cast(anon=ANON, service_role=SERVICE, **actors)


def drop_cast(conn: psycopg.Connection) -> None:
    with conn.transaction():
        conn.execute("delete from auth.users where email like '%%@cast.onai.test'")
        conn.execute("delete from public.traffic_teams where id in (%s, %s)", (TEAM_A, TEAM_B))
