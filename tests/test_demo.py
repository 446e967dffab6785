"""`onai-db demo` end to end on its own databases: everything it shows is consistent, twice."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from rich.console import Console

from onai_db import demo
from onai_db.demo import VIEWERS, run_demo
from onai_db.local import LocalStack
from support.consolidation import scratch_db

DEMO_DB = scratch_db("onai_demo_test")
DEMO_LANDING_DB = scratch_db("onai_demo_landing")


def test_demo_runs_and_is_idempotent(
    stack: LocalStack, test_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded: list[int] = []
    real_seed = demo.seed_demo_targetologists

    def seed(conn: psycopg.Connection) -> int:
        seeded.append(real_seed(conn))
        return seeded[-1]

    # the seed's targetologists own the generator's UTM sources (a demo database made before
    # may have them already: the demo must not rely on that)
    monkeypatch.setattr(demo, "seed_demo_targetologists", seed)
    out = io.StringIO()
    console = Console(file=out, width=160)
    first = run_demo(console, rows=600, seed=3, dbname=DEMO_DB, landing_db=DEMO_LANDING_DB)
    assert first.ok and first.leads > 0 and first.migrations >= 25
    text = out.getvalue()
    for needle in ("coverage ok", "OK: every source row accounted for", "denied (42501", "demo ok"):
        assert needle in text, needle
    # the generated legacy tables with their row counts
    section = text[text.index("generated legacy data (seed 3)") : text.index("Consolidation Landing")]
    generated = {t: int(n.replace(",", "")) for t, n in re.findall(r"│ (\w+) +│ +([\d,]+) │\n", section)}
    assert sum(generated[t] for t in ("landing_leads", "lead_tracking", "unified_lead_tracking")) == 600, (
        generated
    )
    # the attribution per targetologist of the seed's people, and the live-lead count it adds up to
    assert "Attribution of consolidated leads per targetologist" in text
    attribution = {
        name: int(n.replace(",", ""))
        for name, n in re.findall(
            r"│ ((?:\w+|\(\w+ UTM\))) +│ (?:Team \w+|-) +│ +([\d,]+) │ +[\d,]+ │ +[\d,]+ │ +[\d,]+ │", text
        )
    }
    assert {"Arystan", "Muha", "Kenesary"} <= attribution.keys(), attribution
    assert len(seeded) == 1 and seeded[0] >= 5
    with psycopg.connect(stack.database_url(DEMO_DB)) as conn:
        live = conn.execute("select count(*) from public.traffic_leads where merged_into is null").fetchone()
    assert live == (first.leads,) and sum(attribution.values()) == first.leads
    # what each role sees: every viewer has its row; admin and service_role see every live lead,
    # a student none, a targetologist some
    seen = dict(re.findall(r"│ ([\w ()]+?) +│ +(\d+|denied \(42501 → HTTP 401\)) │", text))
    assert [label for label, _r, _s in VIEWERS] == [k for k in seen if k in {v[0] for v in VIEWERS}], seen
    assert seen["anon (no JWT)"].startswith("denied")
    assert seen["admin"] == seen["service_role"] == str(first.leads)
    assert seen["student"] == "0"
    assert 0 < int(seen["targetologist Arystan"]) < first.leads
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


def test_demo_fails_when_the_coverage_or_the_consolidation_does(
    stack: LocalStack, test_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make demo` must not say "demo ok" (nor exit 0) over a coverage problem or an
    unaccounted consolidation."""
    out = io.StringIO()
    console = Console(file=out, width=160)
    monkeypatch.setattr(
        demo, "coverage", lambda *_a: SimpleNamespace(ok=False, exposed=[], problems=lambda: ["injected gap"])
    )
    failed = run_demo(console, rows=600, seed=3, dbname=DEMO_DB, landing_db=DEMO_LANDING_DB)
    assert not failed.ok and "injected gap" in out.getvalue() and "demo found problems" in out.getvalue()
    monkeypatch.undo()

    real = demo.run_consolidation

    def broken(options: Any) -> Any:
        result = real(options)
        result.journey_links_broken = 1
        return result

    monkeypatch.setattr(demo, "run_consolidation", broken)
    out.truncate(0)
    out.seek(0)
    failed = run_demo(console, rows=600, seed=3, dbname=DEMO_DB, landing_db=DEMO_LANDING_DB)
    assert not failed.ok and "demo found problems" in out.getvalue()
