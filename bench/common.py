"""Shared pieces of the benchmarks: the database they run on, timing, and results.

A benchmark module is ``bench/bench_<name>.py`` exposing ``run(ctx: BenchContext) ->
list[Result]``. ``python -m bench`` (``make bench``) runs them all (or those named on
the command line), writes ``bench/results/<name>.json`` and regenerates the table in
BENCHMARKS.md from every results file. Nothing here is timed by the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from onai_db.local import LocalStack
from onai_db.settings import Settings

RESULTS_DIR = Path(__file__).parent / "results"
# a quick (smoke) run writes here, never over the results the table is made of (found by review)
QUICK_RESULTS_DIR = Path(__file__).resolve().parent.parent / ".local" / "bench-quick"
BENCH_DB = os.environ.get("ONAI_DB_BENCH_DB", "onai_bench")


def quick() -> bool:
    """ONAI_DB_BENCH_QUICK=1: a small smoke scale, not for the table."""
    return os.environ.get("ONAI_DB_BENCH_QUICK") == "1"


@dataclass
class Result:
    """One workload measured beside its baseline."""

    bench: str  # module name, e.g. "lead_intake"
    workload: str  # what was measured
    baseline: str  # what it is compared with
    scale: str  # data size, clients, ...
    unit: str  # "calls/s", "ms", "s", ...
    value: float  # the workload's headline figure
    baseline_value: float  # the baseline's figure, same unit
    higher_is_better: bool = True
    target: str = ""  # the target, in words
    met: bool | None = None  # whether the target was met
    details: dict[str, Any] = field(default_factory=dict)  # percentiles, counts, ...

    @property
    def ratio(self) -> float:
        """workload / baseline, oriented so that 1.0 = as good as the baseline, higher = better."""
        if self.higher_is_better:
            return self.value / self.baseline_value if self.baseline_value else float("inf")
        return self.baseline_value / self.value if self.value else float("inf")


@dataclass
class BenchContext:
    stack: LocalStack
    dbname: str
    quick: bool  # smaller scale (ONAI_DB_BENCH_QUICK=1) for a smoke run

    def url(self, user: str = "postgres") -> str:
        return self.stack.database_url(self.dbname, user)

    def connect(self, user: str = "postgres", autocommit: bool = True) -> psycopg.Connection:
        return psycopg.connect(self.url(user), autocommit=autocommit)

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def make_context(fresh: bool = True) -> BenchContext:
    stack = LocalStack(Settings.load(), echo=lambda _m: None)
    stack.up(BENCH_DB, fresh=fresh)
    return BenchContext(stack, BENCH_DB, quick=quick())


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def summarize_ms(samples_s: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in samples_s]
    return {
        "n": len(ms),
        "median_ms": round(statistics.median(ms), 3) if ms else float("nan"),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
    }


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def machine() -> dict[str, Any]:
    mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    return {
        "cpu_count": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def commit() -> str:
    """The checkout's commit, with ``+changes`` when its tracked files differ from it (the
    results and the table a run itself rewrites aside)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", ".", ":!bench/results", ":!BENCHMARKS.md"],
            cwd=root,
            check=False,
        ).returncode
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+changes" if dirty else head


def write_results(bench: str, results: list[Result], server_version: str) -> Path:
    directory = QUICK_RESULTS_DIR if quick() else RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{bench}.json"
    payload = {
        "bench": bench,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit(),
        "machine": machine(),
        "postgres": server_version,
        "results": [asdict(r) | {"ratio": round(r.ratio, 3)} for r in results],
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path
