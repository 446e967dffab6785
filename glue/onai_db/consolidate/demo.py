"""Demo helpers: the seed people (supabase/seed.sql) owning the generator's UTM sources, and
the per-targetologist attribution summary of consolidated leads."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..settings import find_project_dir


def seed_demo_targetologists(conn: psycopg.Connection) -> int:
    """Apply ``supabase/seed.sql`` (idempotent): the audit's Traffic people, two teams and
    the UTM sources the legacy generator uses; returns the number of owned sources."""
    seed = (find_project_dir() / "supabase" / "seed.sql").read_text()
    with conn.transaction():
        conn.execute(seed)
    row = conn.execute("select count(*) from public.traffic_user_utm_sources").fetchone()
    return int(row[0]) if row else 0


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
