"""Demo helpers: deterministic targetologists owning the generator's UTM sources, and
the per-targetologist attribution summary of consolidated leads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import psycopg

DEMO_TEAMS = {
    uuid.UUID("00000000-0000-4000-d000-00000000000a"): "Demo Team Almaty",
    uuid.UUID("00000000-0000-4000-d000-00000000000b"): "Demo Team Astana",
}
# (user id, email, full name, team, owned utm_sources) - sources as the generator sends them, lower-cased
DEMO_TARGETOLOGISTS = (
    (uuid.UUID("00000000-0000-4000-d000-000000000001"), "arystan@demo.onai.academy", "Arystan",
     "Demo Team Almaty", ("fb_arystan", "ig_arystan")),
    (uuid.UUID("00000000-0000-4000-d000-000000000002"), "muha@demo.onai.academy", "Muha",
     "Demo Team Almaty", ("fb_muha",)),
    (uuid.UUID("00000000-0000-4000-d000-000000000003"), "kenesary@demo.onai.academy", "Kenesary",
     "Demo Team Astana", ("fb_kenesary",)),
    (uuid.UUID("00000000-0000-4000-d000-000000000004"), "aida@demo.onai.academy", "Aida",
     "Demo Team Astana", ("tiktok_aida",)),
)  # fmt: skip


def seed_demo_targetologists(conn: psycopg.Connection) -> int:
    """Create (idempotently) the demo teams, targetologists (auth users, as GoTrue
    would) and their UTM sources in the target; returns the number of sources owned."""
    with conn.transaction():
        for tid, name in DEMO_TEAMS.items():
            conn.execute(
                "insert into public.traffic_teams (id, name) values (%s, %s) on conflict (id) do nothing",
                (tid, name),
            )
        for uid, email, full_name, team, sources in DEMO_TARGETOLOGISTS:
            conn.execute(
                "insert into auth.users (id, aud, role, email, email_confirmed_at, raw_app_meta_data,"
                " raw_user_meta_data, created_at, updated_at)"
                " values (%s, 'authenticated', 'authenticated', %s, now(),"
                ' \'{"provider":"email","providers":["email"]}\', \'{}\', now(), now())'
                " on conflict (id) do nothing",
                (uid, email),
            )
            conn.execute(
                "insert into public.app_user_roles (user_id, role) values (%s, 'targetologist') on conflict do nothing",
                (uid,),
            )
            conn.execute(
                "insert into public.traffic_users (id, email, full_name, team_id)"
                " select %s, %s, %s, t.id from public.traffic_teams as t where t.name = %s"
                " on conflict (id) do nothing",
                (uid, email, full_name, team),
            )
            for source in sources:
                conn.execute(
                    "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)"
                    " on conflict (utm_source) do nothing",
                    (source, uid),
                )
    return sum(len(t[4]) for t in DEMO_TARGETOLOGISTS)


@dataclass
class AttributionRow:
    targetologist: str
    team: str
    leads: int
    proftest_submitted: int
    expresscourse_submitted: int
    paid: int


def attribution_summary(conn: psycopg.Connection) -> list[AttributionRow]:
    """Consolidated live leads per targetologist (first-touch utm_source owner)."""
    rows = conn.execute(
        """
        with leads as (
          select distinct case when l.merged_into is null then l.id else private.live_lead(l.id) end as id
          from private.legacy_lead_map as m join public.traffic_leads as l on l.id = m.lead_id
        )
        select coalesce(u.full_name, case when t.utm_source is null then '(no UTM)' else '(unowned UTM)' end),
          coalesce(tm.name, '-'), count(*),
          count(*) filter (where 'proftest_submitted' = any(t.stages)),
          count(*) filter (where 'expresscourse_submitted' = any(t.stages)),
          count(*) filter (where 'payment_succeeded' = any(t.stages))
        from leads
        join public.traffic_leads as t on t.id = leads.id
        left join public.traffic_user_utm_sources as s on s.utm_source = t.utm_source
        left join public.traffic_users as u on u.id = s.user_id
        left join public.traffic_teams as tm on tm.id = u.team_id
        group by 1, 2
        order by min(u.full_name) is null, 3 desc
        """
    ).fetchall()
    return [AttributionRow(*r) for r in rows]
