"""normalize_phone over 1M realistic inputs vs a bare regexp_replace(x, '\\D', '', 'g').

Issue 3's target: normalize_phone within 2x of the regexp_replace baseline over 1M inputs.
Both run over the same unlogged table in the same session, alternating, several times;
the medians are compared. Parallel query is off so that both measure per-row CPU, not the
number of workers. A third figure, a do-nothing PL/pgSQL function with
``set search_path = ''`` (the standards require the clause), shows the floor every such
function pays per call: the SET clause alone is about half the baseline on PostgreSQL 15.
A fourth, the same body without the SET clause (a copy in ``pg_temp``), shows what an
exception to that standard would buy (reported in ``details`` only).
"""

from __future__ import annotations

import statistics
import time

import psycopg

from bench.common import BenchContext, Result
from onai_db.connection import scalar
from onai_db.phone_samples import samples

BENCH = "normalize_phone"
REPETITIONS = 5
TARGET_RATIO = 2.0


def target_met(workload_s: float, baseline_s: float) -> bool:
    """The issue's target: normalize_phone within 2x of the regexp baseline's time."""
    return workload_s <= TARGET_RATIO * baseline_s


BASELINE_SQL = "select count(pg_catalog.regexp_replace(x, '\\D', '', 'g')) from bench_phone_inputs"
WORKLOAD_SQL = "select count(public.normalize_phone(x)) from bench_phone_inputs"
FLOOR_SQL = "select count(pg_temp.bench_identity(x)) from bench_phone_inputs"
NO_SET_SQL = "select count(pg_temp.normalize_phone_without_set(x)) from bench_phone_inputs"
FLOOR_FUNCTION = """
create function pg_temp.bench_identity(phone text) returns text
language plpgsql immutable strict parallel safe set search_path = '' as $$ begin return phone; end $$
"""


def create_without_set(conn: psycopg.Connection) -> None:
    """A pg_temp copy of public.normalize_phone without its SET clause (same body)."""
    definition = scalar(conn, "select pg_get_functiondef('public.normalize_phone(text)'::regprocedure)")
    copy = definition.replace(
        "FUNCTION public.normalize_phone(", "FUNCTION pg_temp.normalize_phone_without_set(", 1
    ).replace(" SET search_path TO ''\n", "\n", 1)
    if "search_path" in copy.split("AS $")[0] or "pg_temp.normalize_phone_without_set" not in copy:
        raise RuntimeError("could not derive normalize_phone without its SET clause")
    conn.execute(copy)


def load(conn: psycopg.Connection, n: int) -> None:
    conn.execute("drop table if exists bench_phone_inputs")
    conn.execute("create unlogged table bench_phone_inputs (x text)")
    with conn.cursor().copy("copy bench_phone_inputs (x) from stdin") as copy:
        for value in samples(n):
            copy.write_row((value,))
    conn.execute("vacuum analyze bench_phone_inputs")


def timed(conn: psycopg.Connection, stmt: str) -> float:
    start = time.perf_counter()
    conn.execute(stmt).fetchone()
    return time.perf_counter() - start


def run(ctx: BenchContext) -> list[Result]:
    n = ctx.scale(1_000_000, 20_000)
    scale = f"{n:,} inputs, {REPETITIONS} runs each, medians, no parallel workers"
    with ctx.connect() as conn:
        load(conn, n)
        conn.execute("set max_parallel_workers_per_gather = 0")
        conn.execute(FLOOR_FUNCTION)
        create_without_set(conn)
        normalized = scalar(
            conn,
            "select count(*) filter (where public.normalize_phone(x) is not null) from bench_phone_inputs",
        )
        times: dict[str, list[float]] = {"baseline": [], "workload": [], "floor": [], "without_set": []}
        for _ in range(REPETITIONS):
            times["baseline"].append(timed(conn, BASELINE_SQL))
            times["workload"].append(timed(conn, WORKLOAD_SQL))
            times["floor"].append(timed(conn, FLOOR_SQL))
            times["without_set"].append(timed(conn, NO_SET_SQL))
        conn.execute("drop table bench_phone_inputs")
    median = {k: statistics.median(v) for k, v in times.items()}
    ratio = median["workload"] / median["baseline"]
    per_row_us = {k: round(v / n * 1e6, 3) for k, v in median.items()}
    details = {
        "runs_s": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "median_us_per_row": per_row_us,
        "normalized_non_null": normalized,
        "slowdown_vs_baseline": round(ratio, 2),
        "set_search_path_function_floor_vs_baseline": round(median["floor"] / median["baseline"], 2),
        "same_body_without_set_clause_vs_baseline": round(median["without_set"] / median["baseline"], 2),
    }
    return [
        Result(
            bench=BENCH,
            workload="normalize_phone(x), count over the table",
            baseline="regexp_replace(x, '\\D', '', 'g'), count over the table",
            scale=scale,
            unit="s",
            value=round(median["workload"], 3),
            baseline_value=round(median["baseline"], 3),
            higher_is_better=False,
            target="within 2x of regexp baseline",
            met=target_met(median["workload"], median["baseline"]),
            details=details,
        )
    ]
