"""Checks of one benchmark result (bench/results/*.json or a smoke run's): the ratio oriented
as BENCHMARKS.md says, and ``met`` what the issue's target says of the figures."""

from __future__ import annotations

from typing import Any

import pytest

TIME_UNITS = ("s", "ms", "ms (median)")


def _within_rounding(slowdown: float, value: float, baseline: float, places: int) -> bool:
    """slowdown (rounded to 2 places) is value / baseline, both rounded to `places` places
    (at the smoke scale a baseline of 0.2 s is only two digits)."""
    h = 0.5 * 10**-places
    return (value - h) / (baseline + h) - 0.006 <= slowdown <= (value + h) / (baseline - h) + 0.006


def _clear_of(x: float, line: float, tolerance: float) -> bool:
    """x (as rounded in the file) is not within its rounding of the target's line, where the
    unrounded figure could lie on the other side."""
    return abs(x - line) > tolerance


def assert_result_consistent(r: dict[str, Any]) -> None:
    """One result of bench/results/*.json (or a smoke run's): the ratio oriented as
    BENCHMARKS.md says, and `met` what the issue's target says of the figures."""
    name = r["bench"]
    assert r["value"] > 0 and r["baseline_value"] > 0, name
    assert r["higher_is_better"] is (r["unit"] not in TIME_UNITS), name  # times: lower is better
    raw = r["value"] / r["baseline_value"]  # workload / baseline, as measured
    oriented = raw if r["higher_is_better"] else 1 / raw
    assert r["ratio"] == pytest.approx(oriented, rel=0.03, abs=0.002), name  # figures are rounded
    assert isinstance(r["met"], bool), name
    d = r["details"]
    if name == "consolidation":  # within 3x of plain COPY
        assert _within_rounding(d["slowdown_x"], r["value"], r["baseline_value"], places=2), name
        if _clear_of(d["slowdown_x"], 3.0, 0.005):
            assert r["met"] is (d["slowdown_x"] <= 3.0), name
    elif name == "normalize_phone":  # within 2x of the regexp baseline
        assert _within_rounding(d["slowdown_vs_baseline"], r["value"], r["baseline_value"], places=3), name
        if _clear_of(d["slowdown_vs_baseline"], 2.0, 0.005):
            assert r["met"] is (d["slowdown_vs_baseline"] <= 2.0), name
    elif name == "dashboard":  # median <= 2 ms, RLS overhead <= 1.5x
        rls, service = d["rls"]["median_ms"], d["service_role"]["median_ms"]
        assert (r["value"], r["baseline_value"]) == (rls, service), name
        assert r["met"] is (rls <= 2.0 and rls <= 1.5 * service), name
    elif name == "queue":  # >= 5000 jobs/s and >= 0.7x the minimal loop
        if _clear_of(r["value"], 5000, 0.05) and _clear_of(r["ratio"], 0.7, 0.0005):
            assert r["met"] is (r["value"] >= 5000 and r["ratio"] >= 0.7), name
        assert len(d["round_ratios"]) == d["rounds"], name
    elif name == "lead_intake":  # >= 0.4x the bare upsert; 0 duplicates
        assert d["rpc"]["n"] == d["bare"]["n"] == d["journey_events"], name
        sound = d["duplicates"] == 0 and d["live_leads"] == d["people"]
        if _clear_of(r["ratio"], 0.4, 0.0005):
            assert r["met"] is (r["ratio"] >= 0.4 and sound), name
        elif not sound:
            assert r["met"] is False, name
    else:
        pytest.fail(f"no target check for benchmark {name!r}: add one here")
