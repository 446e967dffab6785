"""Lead fixtures: create leads the way the backend does (service role, through the RPC)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from .cast import Cast
from .postgrest import SERVICE, PostgrestSession

_counter = itertools.count(1)


def unique_phone() -> str:
    """A valid Kazakh mobile number, unique within the test run."""
    n = next(_counter)
    return f"+7701{(uuid.uuid4().int % 10**3):03d}{n % 10**4:04d}"


def record(api: PostgrestSession, **args: Any) -> dict[str, Any]:
    """Call find_or_create_unified_lead as the service role; returns its single row."""
    rows = api.rpc(SERVICE, "find_or_create_unified_lead", **args)
    assert len(rows) == 1, rows
    return rows[0]


def lead(api: PostgrestSession, lead_id: uuid.UUID) -> dict[str, Any]:
    return api.query(SERVICE, "select * from public.traffic_leads where id = %s", [lead_id])[0]


def seed_attributed_leads(api: PostgrestSession, cast: Cast) -> dict[str, list[uuid.UUID]]:
    """Two leads per owned UTM source, an unattributed lead and a merged pair; with journeys."""
    out: dict[str, list[uuid.UUID]] = {}
    for source in ("fb_arystan", "ig_arystan", "fb_muha", "fb_kenesary", None):
        for stage in ("proftest_submitted", "expresscourse_clicked"):
            row = record(
                api,
                p_name=f"Lead {source}",
                p_phone=unique_phone(),
                p_source="proftest",
                p_utm_source=source.upper() if source else None,
                p_stage=stage,
            )
            record(api, p_phone=lead(api, row["lead_id"])["phone"], p_stage="expresscourse_submitted")
            out.setdefault(source or "unattributed", []).append(row["lead_id"])
    # a merged pair attributed to the main targetologist: phone-only lead + email-only lead, then both
    phone, email = unique_phone(), f"merge-{uuid.uuid4().hex[:8]}@example.kz"
    record(api, p_phone=phone, p_utm_source="fb_arystan", p_stage="proftest_submitted")
    record(api, p_email=email, p_stage="expresscourse_clicked")
    merged = record(api, p_phone=phone, p_email=email, p_stage="expresscourse_submitted")
    assert merged["merged"]
    return out
