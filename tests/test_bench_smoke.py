"""Every benchmark runs at its smoke scale: `make bench` must not be the first to find that
one no longer builds its data. The dashboard benchmark's bulk load broke on the touch-times
check (20261211100000) and nothing noticed for days. No figure is asserted: performance is
measured by `make bench`, never by tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from onai_db.local import LocalStack
from support.bench_checks import assert_result_consistent
from support.consolidation import scratch_db

ROOT = Path(__file__).parents[1]
BENCH_DB = scratch_db("onai_test_bench")


def test_every_benchmark_runs_at_its_smoke_scale(stack: LocalStack, test_db: str) -> None:
    quick_dir = ROOT / ".local" / "bench-quick"
    before = {p.name: p.stat().st_mtime_ns for p in quick_dir.glob("*.json")}
    table = (ROOT / "BENCHMARKS.md").read_text()
    env = {**os.environ, "ONAI_DB_BENCH_QUICK": "1", "ONAI_DB_BENCH_DB": BENCH_DB}
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
        )
    finally:
        with stack.admin_connect() as admin:
            for name in (BENCH_DB, f"{BENCH_DB}_landing"):
                admin.execute(f'drop database if exists "{name}" with (force)')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.stem[len("bench_") :] for p in (ROOT / "bench").glob("bench_*.py"))
    assert len(names) >= 5
    for name in names:
        path = quick_dir / f"{name}.json"
        assert path.exists() and path.stat().st_mtime_ns != before.get(path.name), name
        results = json.loads(path.read_text())["results"]
        assert results and all(r["value"] > 0 and r["baseline_value"] > 0 for r in results), name
        for r in results:  # oriented as BENCHMARKS.md says, `met` as the target says
            assert_result_consistent(r)
            if r["bench"] == "lead_intake":  # correctness, not speed: holds at any scale
                d = r["details"]
                assert d["duplicates"] == 0 and d["live_leads"] == d["people"], d
    # a smoke run leaves the table alone
    assert (ROOT / "BENCHMARKS.md").read_text() == table
