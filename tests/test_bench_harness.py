"""The benchmark harness's pure parts, with no database: the ratio's orientation, the
percentiles, the commit label, where results are written, the table and its highlights,
BENCHMARKS.md's regeneration between its markers, and `python -m bench`'s argument
handling. Also: every committed result is consistent with its benchmark's target
(`assert_result_consistent`, which test_bench_smoke applies to the smoke results too), so a
`met` or an orientation computed wrongly in a bench module is caught. Nothing is timed."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import bench.__main__ as bench_main
import bench.common as common
from bench import bench_consolidation, bench_dashboard, bench_lead_intake, bench_normalize_phone, bench_queue
from bench.common import Result, percentile, summarize_ms
from bench.highlights import highlights
from support.bench_checks import assert_result_consistent

ROOT = Path(__file__).parents[1]

BENCHES = ("consolidation", "dashboard", "lead_intake", "normalize_phone", "queue")


# --- Result.ratio ---------------------------------------------------------------------------


def test_ratio_of_a_rate_is_workload_over_baseline() -> None:
    r = Result("x", "w", "b", "s", "calls/s", value=1000.0, baseline_value=4000.0)
    assert r.ratio == pytest.approx(0.25)


def test_ratio_of_a_time_is_baseline_over_workload() -> None:
    # four times the baseline's time is 0.25x (higher is better), never 4x
    slower = Result("x", "w", "b", "s", "s", value=40.0, baseline_value=10.0, higher_is_better=False)
    assert slower.ratio == pytest.approx(0.25)
    faster = Result("x", "w", "b", "s", "s", value=5.0, baseline_value=10.0, higher_is_better=False)
    assert faster.ratio == pytest.approx(2.0)


def test_ratio_with_a_zero_denominator_is_infinite() -> None:
    assert Result("x", "w", "b", "s", "calls/s", 10.0, 0.0).ratio == math.inf
    assert Result("x", "w", "b", "s", "s", 0.0, 10.0, higher_is_better=False).ratio == math.inf


# --- percentile, summarize_ms ---------------------------------------------------------------


def test_percentile_is_the_nearest_rank_of_the_sorted_samples() -> None:
    samples = [float(x) for x in range(101)]
    random.Random(1).shuffle(samples)
    for q in (0, 1, 50, 95, 99, 100):
        assert percentile(samples, q) == float(q), q


def test_percentile_rounds_the_rank_and_clamps_it() -> None:
    ten = [float(x) for x in range(1, 11)]
    assert percentile(ten, 30) == 4.0  # rank 2.7 -> 3, not truncated to 2
    assert percentile(ten, 95) == 10.0  # rank 8.55 -> 9
    assert percentile(ten, 150) == 10.0
    assert percentile(ten, -5) == 1.0
    assert percentile([7.0], 99) == 7.0
    assert math.isnan(percentile([], 50))


def test_summarize_ms_reports_milliseconds_and_distinct_percentiles() -> None:
    seconds = [x / 1000 for x in range(101)]
    random.Random(2).shuffle(seconds)
    assert summarize_ms(seconds) == {
        "n": 101,
        "median_ms": 50.0,
        "p50_ms": 50.0,
        "p95_ms": 95.0,
        "p99_ms": 99.0,
    }
    assert summarize_ms([0.0015]) == {"n": 1, "median_ms": 1.5, "p50_ms": 1.5, "p95_ms": 1.5, "p99_ms": 1.5}
    empty = summarize_ms([])
    assert empty["n"] == 0 and all(math.isnan(v) for k, v in empty.items() if k != "n")


# --- machine(), commit(), write_results() ---------------------------------------------------


def test_machine_reports_this_machine() -> None:
    m = common.machine()
    assert m["cpu_count"] == os.cpu_count()
    kib = int(re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    assert m["memory_gib"] == pytest.approx(kib / 2**20, rel=0.05, abs=0.1)
    assert m["python"].count(".") == 2 and m["platform"]


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_commit_marks_changes_except_to_results_and_the_table(tmp_path: Path) -> None:
    # a copy of bench/common.py in a repository of its own: commit() looks at its checkout
    (tmp_path / "bench" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "bench" / "common.py", tmp_path / "bench" / "common.py")
    (tmp_path / "bench" / "results" / "x.json").write_text("{}\n")
    (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init")
    head = _git(tmp_path, "rev-parse", "--short=12", "HEAD")
    spec = importlib.util.spec_from_file_location("bench_common_copy", tmp_path / "bench" / "common.py")
    assert spec and spec.loader
    copy = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = copy
    try:
        spec.loader.exec_module(copy)
        assert copy.commit() == head
        # a run rewrites its results and the table: still the clean commit
        (tmp_path / "bench" / "results" / "x.json").write_text('{"ratio": 1}\n')
        (tmp_path / "BENCHMARKS.md").write_text("# Benchmarks\nregenerated\n")
        assert copy.commit() == head
        (tmp_path / "untracked.py").write_text("y = 2\n")
        assert copy.commit() == head
        # a change to tracked code is not the commit's figure
        (tmp_path / "code.py").write_text("x = 2\n")
        assert copy.commit() == f"{head}+changes"
    finally:
        sys.modules.pop(spec.name, None)


def _result(**kw: Any) -> Result:
    base: dict[str, Any] = {
        "bench": "queue",
        "workload": "w",
        "baseline": "b",
        "scale": "10 jobs",
        "unit": "s",
        "value": 3.0,
        "baseline_value": 1.0,
        "higher_is_better": False,
        "target": "t",
        "met": False,
        "details": {"k": 1},
    }
    return Result(**(base | kw))


@pytest.fixture
def results_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """bench/results and the quick runs' directory under tmp_path; the commit label fixed."""
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(common, "QUICK_RESULTS_DIR", tmp_path / "quick")
    monkeypatch.setattr(common, "commit", lambda: "abc123+changes")
    return tmp_path


def test_write_results_writes_the_results_dir_with_oriented_rounded_ratios(
    results_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp_path = results_dirs
    monkeypatch.delenv("ONAI_DB_BENCH_QUICK", raising=False)
    path = common.write_results("queue", [_result()], "15.18")
    assert path == tmp_path / "results" / "queue.json"
    assert not (tmp_path / "quick").exists()
    doc = json.loads(path.read_text())
    assert doc["bench"] == "queue" and doc["postgres"] == "15.18" and doc["commit"] == "abc123+changes"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doc["measured_at"])
    assert set(doc["machine"]) == {"cpu_count", "memory_gib", "platform", "python"}
    (r,) = doc["results"]
    assert r["ratio"] == 0.333  # baseline / workload for a time, rounded to 3 places
    assert r["value"] == 3.0 and r["baseline_value"] == 1.0 and r["met"] is False and r["details"] == {"k": 1}


def test_a_quick_run_writes_beside_never_over_the_tables_results(
    results_dirs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONAI_DB_BENCH_QUICK", "1")
    path = common.write_results("queue", [_result()], "15.18")
    assert path == results_dirs / "quick" / "queue.json"
    assert not (results_dirs / "results").exists()


def test_only_quick_equal_to_1_is_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("1", True), ("0", False), ("", False)):
        monkeypatch.setenv("ONAI_DB_BENCH_QUICK", value)
        assert common.quick() is expected
    monkeypatch.delenv("ONAI_DB_BENCH_QUICK")
    assert common.quick() is False


# --- highlights -----------------------------------------------------------------------------

LAT = {"n": 3, "median_ms": 1.0, "p50_ms": 6.279, "p95_ms": 31.576, "p99_ms": 51.814}
LAT_BARE = {"n": 3, "median_ms": 1.0, "p50_ms": 1.513, "p95_ms": 3.747, "p99_ms": 5.548}


def test_highlights_of_each_benchmark() -> None:
    assert highlights(
        "lead_intake",
        {"rpc": LAT, "bare": LAT_BARE, "duplicates": 2, "live_leads": 84140, "people": 84138},
    ) == (
        "RPC p50 6.28 ms, p99 51.8 ms; bare p50 1.51 ms, p99 5.55 ms; duplicates 2"
        " (84,140 live leads for 84,138 people)"
    )
    assert (
        highlights(
            "consolidation",
            {
                "consolidate_rows_per_s": 17944,
                "copy_rows_per_s": 401223,
                "rows_total": 4100000,
                "phase_seconds": {"backup": 5.729, "stage": 37.079, "leads": 141.5},
            },
        )
        == "17,944 against 401,223 rows/s (4,100,000 rows); phases: backup 6 s, stage 37 s, leads 142 s"
    )
    assert (
        highlights("dashboard", {"rls": {"p95_ms": 1.134}, "service_role": {"p95_ms": 0.926}})
        == "RLS p95 1.13 ms; service_role p95 0.926 ms"
    )
    assert highlights(
        "normalize_phone",
        {"median_us_per_row": {"workload": 4.965, "baseline": 1.754, "floor": 0.807, "without_set": 4.328}},
    ) == (
        "4.96 against 1.75 µs per input; a do-nothing function with `set search_path` 0.807 µs;"
        " this body without it 4.33 µs"
    )
    assert (
        highlights("queue", {"round_ratios": [0.611, 0.546, 0.8], "batch": 50, "workers": 4})
        == "per-round ratios 0.61, 0.55, 0.80; batch 50, 4 workers"
    )


def test_highlights_without_a_renderer_or_a_figure_are_a_dash() -> None:
    assert highlights("no_such_bench", {"x": 1}) == "-"
    for name in BENCHES:
        assert highlights(name, {}) == "-", name  # a result written before the figure existed


# --- render_table, regenerate_markdown ------------------------------------------------------


def _doc(bench: str, results: list[dict[str, Any]], commit: str | None = "abc123") -> dict[str, Any]:
    doc: dict[str, Any] = {
        "bench": bench,
        "measured_at": "2026-01-02T03:04:05Z",
        "machine": {"cpu_count": 2, "memory_gib": 23.5, "platform": "Linux-x", "python": "3.11.7"},
        "postgres": "15.18",
        "results": results,
    }
    if commit is not None:
        doc["commit"] = commit
    return doc


def _row(**kw: Any) -> dict[str, Any]:
    return {
        "bench": "queue",
        "workload": "W",
        "baseline": "B",
        "scale": "S",
        "unit": "jobs/s",
        "value": 32851.5,
        "baseline_value": 52916.6,
        "higher_is_better": True,
        "target": "T",
        "met": False,
        "details": {},
        "ratio": 0.621,
    } | kw


def test_render_table_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "RESULTS_DIR", tmp_path)
    (tmp_path / "b_queue.json").write_text(json.dumps(_doc("queue", [_row()])))
    (tmp_path / "a_other.json").write_text(
        json.dumps(
            _doc(
                "other",
                [
                    _row(bench="other", met=True, unit="s", value=0.9384, baseline_value=0.7731, ratio=0.824),
                    _row(bench="other", met=None, target="", ratio=12.3456),
                ],
                commit=None,
            )
        )
    )
    lines = bench_main.render_table().splitlines()
    assert lines[0] == "Machine: 2 cores, 23.5 GiB, Linux-x, PostgreSQL 15.18, Python 3.11.7."
    assert lines[1] == ""
    assert lines[2].startswith(
        "| benchmark | workload | baseline | scale | workload value | baseline value | ratio"
    )
    assert lines[3] == "|---|---|---|---|---|---|---|---|---|---|---|"
    # files in name order; met as yes / **no** / -; an empty target as -; no commit, no brackets
    assert lines[4:] == [
        "| other | W | B | S | 0.9384 s | 0.7731 s | 0.824x | T | yes | - | 2026-01-02T03:04:05Z |",
        "| other | W | B | S | 3.285e+04 jobs/s | 5.292e+04 jobs/s | 12.3x | - | - | - | 2026-01-02T03:04:05Z |",
        "| queue | W | B | S | 3.285e+04 jobs/s | 5.292e+04 jobs/s | 0.621x | T | **no** | - |"
        " 2026-01-02T03:04:05Z (abc123) |",
    ]
    header = [c.strip() for c in lines[2].strip("|").split("|")]
    assert all(len(line.strip("|").split("|")) == len(header) for line in lines[4:])


def test_regenerate_markdown_replaces_only_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "render_table", lambda: "NEW TABLE")
    md = tmp_path / "BENCHMARKS.md"
    head = "# Benchmarks\n\nintro\n\n"
    tail = "\n\n## Notes on the figures\n\nkept by hand\n"
    md.write_text(f"{head}{bench_main.START}\nold table\nold row\n{bench_main.END}{tail}")
    bench_main.regenerate_markdown()
    expected = f"{head}{bench_main.START}\nNEW TABLE\n{bench_main.END}{tail}"
    assert md.read_text() == expected
    bench_main.regenerate_markdown()
    assert md.read_text() == expected  # idempotent: the markers are kept


def test_regenerate_markdown_creates_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "render_table", lambda: "T")
    bench_main.regenerate_markdown()
    assert (
        tmp_path / "BENCHMARKS.md"
    ).read_text() == f"# Benchmarks\n\n{bench_main.START}\nT\n{bench_main.END}\n"


def test_benchmarks_md_table_is_the_committed_results_rendered() -> None:
    """The table is regenerated, never edited by hand: it is exactly what render_table makes of
    bench/results/*.json (after a change to the table's format, regenerate it with
    `python -c 'from bench.__main__ import regenerate_markdown; regenerate_markdown()'`)."""
    text = (ROOT / "BENCHMARKS.md").read_text()
    assert text.count(bench_main.START) == 1 and text.count(bench_main.END) == 1
    inner = text.split(bench_main.START, 1)[1].split(bench_main.END, 1)[0]
    assert inner == f"\n{bench_main.render_table()}\n"
    assert sorted(p.stem for p in common.RESULTS_DIR.glob("*.json")) == sorted(bench_main.available())


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "results").glob("*.json")), ids=lambda p: p.stem)
def test_committed_results_are_consistent_with_their_targets(path: Path) -> None:
    for r in json.loads(path.read_text())["results"]:
        assert_result_consistent(r)


# --- python -m bench: names, quick mode -------------------------------------------------------


class _Conn:
    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _Ctx:
    def connect(self, *a: object, **k: object) -> _Conn:
        return _Conn()


@pytest.fixture
def fake_benches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Two fake benchmarks, "alpha" and "beta"; records which ran and whether the table was
    regenerated. Nothing touches a database or bench/results."""
    log: dict[str, list[str]] = {"ran": [], "regenerated": [], "contexts": []}
    for name in ("alpha", "beta"):
        module = types.ModuleType(f"bench.bench_{name}")

        def run(ctx: object, name: str = name) -> list[Result]:
            log["ran"].append(name)
            return [_result(bench=name, unit="calls/s", higher_is_better=True)]

        module.run = run  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(bench_main, "available", lambda: ["alpha", "beta"])
    monkeypatch.setattr(bench_main, "make_context", lambda: log["contexts"].append("ctx") or _Ctx())
    monkeypatch.setattr(bench_main, "scalar", lambda conn, q: "15.18")
    monkeypatch.setattr(bench_main, "ROOT", tmp_path)
    monkeypatch.setattr(bench_main, "write_results", lambda name, results, server: tmp_path / f"{name}.json")
    monkeypatch.setattr(bench_main, "regenerate_markdown", lambda: log["regenerated"].append("yes"))
    monkeypatch.delenv("ONAI_DB_BENCH_QUICK", raising=False)
    return log


def test_main_runs_every_benchmark_and_regenerates_the_table(fake_benches: dict[str, list[str]]) -> None:
    assert bench_main.main([]) == 0
    assert fake_benches["ran"] == ["alpha", "beta"]
    assert len(fake_benches["contexts"]) == 2  # a fresh database per benchmark
    assert fake_benches["regenerated"] == ["yes"]


def test_main_runs_only_the_named_benchmarks(fake_benches: dict[str, list[str]]) -> None:
    assert bench_main.main(["beta"]) == 0
    assert fake_benches["ran"] == ["beta"]


def test_main_refuses_unknown_names_before_running_anything(fake_benches: dict[str, list[str]]) -> None:
    assert bench_main.main(["alpha", "nope"]) == 2
    assert fake_benches["ran"] == [] and fake_benches["contexts"] == [] and fake_benches["regenerated"] == []


def test_a_quick_run_leaves_the_table_alone(
    fake_benches: dict[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONAI_DB_BENCH_QUICK", "1")
    assert bench_main.main([]) == 0
    assert fake_benches["ran"] == ["alpha", "beta"]
    assert fake_benches["regenerated"] == []


def test_available_lists_the_bench_modules() -> None:
    names = sorted(p.stem[len("bench_") :] for p in (ROOT / "bench").glob("bench_*.py"))
    assert bench_main.available() == names and set(BENCHES) <= set(names)


# --- the targets' checks, as pure functions of the figures -----------------------------------


def test_dashboard_target() -> None:
    assert bench_dashboard.target_met(0.94, 0.77)
    assert bench_dashboard.target_met(0.5, 1.0)  # RLS faster than service_role: met
    assert bench_dashboard.target_met(1.5, 1.0)  # exactly 1.5x: met
    assert not bench_dashboard.target_met(1.6, 1.0)  # RLS overhead 1.6x
    assert not bench_dashboard.target_met(2.1, 2.0)  # median over 2 ms


def test_lead_intake_target() -> None:
    ok = {"ratio": 0.4, "duplicates": 0, "live": 10, "people": 10, "events": 30, "calls": 30}
    assert bench_lead_intake.target_met(**ok)
    assert not bench_lead_intake.target_met(**(ok | {"ratio": 0.399}))
    assert not bench_lead_intake.target_met(**(ok | {"duplicates": 1}))
    assert not bench_lead_intake.target_met(**(ok | {"live": 11}))
    assert not bench_lead_intake.target_met(**(ok | {"events": 29}))


def test_queue_target() -> None:
    assert bench_queue.target_met(5000.0, 7000.0)  # exactly 5,000 jobs/s, 0.714x
    assert bench_queue.target_met(7000.0, 10000.0)  # exactly 0.7x
    assert not bench_queue.target_met(4999.0, 5000.0)  # fast relative to the loop, too slow
    assert not bench_queue.target_met(32850.0, 52916.0)  # the table's 0.621x


def test_consolidation_and_normalize_phone_targets() -> None:
    assert bench_consolidation.target_met(30.0, 10.0) and not bench_consolidation.target_met(30.1, 10.0)
    assert bench_normalize_phone.target_met(3.5, 1.75) and not bench_normalize_phone.target_met(4.97, 1.75)
    assert not bench_consolidation.target_met(228.5, 10.22)  # the table's run
