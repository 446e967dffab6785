"""The figures of a result's ``details`` that the BENCHMARKS.md table shows beside the ratio
(found by review: latencies, duplicates and rows/s were in bench/results/*.json only)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Details = dict[str, Any]


def _ms(value: float) -> str:
    return f"{value:.3g} ms"


def _pair(d: Details) -> str:
    """p50/p99 of one side's latency summary."""
    return f"p50 {_ms(d['p50_ms'])}, p99 {_ms(d['p99_ms'])}"


def _lead_intake(d: Details) -> str:
    return (
        f"RPC {_pair(d['rpc'])}; bare {_pair(d['bare'])}; duplicates {d['duplicates']}"
        f" ({d['live_leads']:,} live leads for {d['people']:,} people)"
    )


def _consolidation(d: Details) -> str:
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in d["phase_seconds"].items())
    return (
        f"{d['consolidate_rows_per_s']:,} against {d['copy_rows_per_s']:,} rows/s"
        f" ({d['rows_total']:,} rows); phases: {phases}"
    )


def _dashboard(d: Details) -> str:
    return f"RLS p95 {_ms(d['rls']['p95_ms'])}; service_role p95 {_ms(d['service_role']['p95_ms'])}"


def _normalize_phone(d: Details) -> str:
    us = d["median_us_per_row"]
    return (
        f"{us['workload']:.3g} against {us['baseline']:.3g} µs per input; a do-nothing function with"
        f" `set search_path` {us['floor']:.3g} µs; this body without it {us['without_set']:.3g} µs"
    )


def _queue(d: Details) -> str:
    ratios = ", ".join(f"{r:.2f}" for r in d["round_ratios"])
    return f"per-round ratios {ratios}; batch {d['batch']}, {d['workers']} workers"


_BY_BENCH: dict[str, Callable[[Details], str]] = {
    "lead_intake": _lead_intake,
    "consolidation": _consolidation,
    "dashboard": _dashboard,
    "normalize_phone": _normalize_phone,
    "queue": _queue,
}


def highlights(bench: str, details: Details) -> str:
    """The table's cell for one result: '-' for a benchmark without highlights or a result
    written before a figure was recorded."""
    render = _BY_BENCH.get(bench)
    if render is None:
        return "-"
    try:
        return render(details)
    except (KeyError, TypeError):
        return "-"
