"""`onai-db demo` end to end on its own databases: everything it shows is consistent, twice."""

from __future__ import annotations

import io

import psycopg
from rich.console import Console

from onai_db.demo import run_demo
from onai_db.local import LocalStack
from support.consolidation import scratch_db

DEMO_DB = scratch_db("onai_demo_test")
DEMO_LANDING_DB = scratch_db("onai_demo_landing")


def test_demo_runs_and_is_idempotent(stack: LocalStack, test_db: str) -> None:
    out = io.StringIO()
    console = Console(file=out, width=160)
    first = run_demo(console, rows=600, seed=3, dbname=DEMO_DB, landing_db=DEMO_LANDING_DB)
    assert first.ok and first.leads > 0 and first.migrations >= 25
    text = out.getvalue()
    for needle in ("coverage ok", "OK: every source row accounted for", "denied (42501", "demo ok"):
        assert needle in text, needle
    out.truncate(0)
    second = run_demo(console, rows=600, seed=3, dbname=DEMO_DB, landing_db=DEMO_LANDING_DB)
    assert second.ok and second.leads == first.leads
    assert "0 changes" in out.getvalue()
    # the jobs the first run queued are not queued again, and the demo does not claim they were
    assert "queued nothing new: an earlier run queued these jobs" in out.getvalue()
    with psycopg.connect(stack.database_url(DEMO_DB)) as conn:
        outbox = conn.execute(
            "select count(*) filter (where status <> 'done') from public.outbox_jobs"
        ).fetchone()
        assert outbox == (0,)
