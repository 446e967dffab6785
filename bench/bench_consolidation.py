"""Consolidation benchmark: 1M legacy lead rows (three tables, ~30 % duplicates) plus
3M journey rows through ``run_consolidation`` (backup, staging, identity, batches,
journey, verification), beside a plain COPY of the same five tables into
unconstrained tables of the same target, in the same run. Target: within 3x of COPY."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from bench.common import BENCH_DB, BenchContext, Result
from onai_db.consolidate import ConsolidationOptions, run_consolidation
from onai_db.legacy import LEGACY_TABLES, create_landing_db

SOURCE_DB = f"{BENCH_DB}_landing"  # beside the bench database, in its namespace


def plain_copy(source_url: str, target_url: str) -> tuple[float, int]:
    """COPY every legacy table from the source into an unconstrained copy in the target."""
    with psycopg.connect(source_url) as src, psycopg.connect(target_url, autocommit=True) as tgt:
        tgt.execute("create schema if not exists bench_plain")
        for table in LEGACY_TABLES:
            tgt.execute(sql.SQL("drop table if exists bench_plain.{}").format(sql.Identifier(table)))
            cols = src.execute(
                "select string_agg(quote_ident(column_name) || ' ' || format_type(a.atttypid, a.atttypmod), ', '"
                " order by ordinal_position) from information_schema.columns c"
                " join pg_attribute a on a.attrelid = ('public.' || c.table_name)::regclass"
                " and a.attname = c.column_name where c.table_schema = 'public' and c.table_name = %s",
                (table,),
            ).fetchone()
            assert cols is not None
            tgt.execute(
                sql.SQL("create table bench_plain.{} ({})").format(sql.Identifier(table), sql.SQL(cols[0]))
            )
        src.rollback()
        rows = 0
        start = time.perf_counter()
        for table in LEGACY_TABLES:
            ident = sql.Identifier(table)
            with src.cursor() as out_cur, tgt.cursor() as in_cur:
                with (
                    out_cur.copy(sql.SQL("copy public.{} to stdout").format(ident)) as out,
                    in_cur.copy(sql.SQL("copy bench_plain.{} from stdin").format(ident)) as inp,
                ):
                    for chunk in out:
                        inp.write(chunk)
                rows += out_cur.rowcount
        elapsed = time.perf_counter() - start
        tgt.execute("drop schema bench_plain cascade")
    return elapsed, rows


def target_met(consolidate_s: float, copy_s: float) -> bool:
    """The issue's target: the consolidation within 3x of plain COPY's time."""
    return consolidate_s <= 3.0 * copy_s


def run(ctx: BenchContext) -> list[Result]:
    lead_rows = ctx.scale(1_000_000, 20_000)
    ctx.stack.create_database(SOURCE_DB, drop=True)  # the bench's own fixture, marked or not
    source_url, counts = create_landing_db(ctx.stack, SOURCE_DB, rows=lead_rows, seed=42)
    total_rows = sum(counts.rows.values())
    baseline_s, copied = plain_copy(source_url, ctx.url())
    assert copied == total_rows
    backup_dir = Path(tempfile.mkdtemp(prefix="onai-bench-backup-"))
    try:
        start = time.perf_counter()
        report = run_consolidation(
            ConsolidationOptions(source_url, ctx.url(), backup_dir=backup_dir, batch_size=100_000)
        )
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(backup_dir, ignore_errors=True)
    assert report.ok, report.to_json()
    with ctx.connect() as conn:
        live = conn.execute("select count(*) from public.traffic_leads where merged_into is null").fetchone()
    ratio = elapsed / baseline_s
    return [
        Result(
            bench="consolidation",
            workload="onai-db consolidate (backup+stage+dedupe+import+verify)",
            baseline="plain COPY into unconstrained tables",
            scale=f"{counts.lead_rows:,} lead rows + {counts.rows['lead_journey']:,} journey rows",
            unit="s",
            value=round(elapsed, 2),
            baseline_value=round(baseline_s, 2),
            higher_is_better=False,
            target="within 3x of plain COPY",
            met=target_met(elapsed, baseline_s),
            details={
                "rows_total": total_rows,
                "consolidate_rows_per_s": round(total_rows / elapsed),
                "copy_rows_per_s": round(total_rows / baseline_s),
                "slowdown_x": round(ratio, 2),
                "phase_seconds": report.seconds,
                "live_leads": live[0] if live else None,
                "duplicates_share": round(1 - (live[0] if live else 0) / counts.lead_rows, 3),
                "quarantined": sum(t.quarantined for t in report.tables),
            },
        )
    ]
