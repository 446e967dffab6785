"""supabase/seed.sql applies cleanly, twice, and gives a working attribution setup."""

from __future__ import annotations

import uuid

import psycopg

from onai_db.settings import find_project_dir

SEED = (find_project_dir() / "supabase" / "seed.sql").read_text()
ARYSTAN = uuid.UUID("10000000-0000-4000-8000-000000000002")


def test_seed_is_idempotent_and_consistent(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        try:
            # the test cast owns sources of the same names; this transaction is rolled back
            conn.execute("delete from public.traffic_user_utm_sources")
            conn.execute(SEED)
            conn.execute(SEED)
            owners = conn.execute(
                "select count(*) from public.traffic_user_utm_sources where user_id = %s", (ARYSTAN,)
            ).fetchone()
            assert owners == (2,)
            roles = conn.execute(
                "select count(*) from public.app_user_roles where role = 'targetologist'"
                " and user_id::text like '10000000-%%'"
            ).fetchone()
            assert roles == (4,)
        finally:
            conn.rollback()
