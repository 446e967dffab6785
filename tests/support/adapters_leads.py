"""Matrix adapters for unified leads, their journey, merges, legacy views and lead RPCs."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from .cast import Cast
from .leads import record, seed_attributed_leads, unique_phone
from .matrix import FunctionAdapter, TableAdapter
from .postgrest import SERVICE, Actor, PostgrestSession

# filled by _seed for the predicates: lead id -> attribution utm_source, utm_source -> owner
LEAD_UTM: dict[uuid.UUID, str | None] = {}
OWNER: dict[str, uuid.UUID] = {}


def _seed(api: PostgrestSession, cast: Cast) -> None:
    seed_attributed_leads(api, cast)
    _seed_merged_lead_attributed_apart_from_its_live_lead(api)
    LEAD_UTM.clear()
    OWNER.clear()
    for row in api.query(SERVICE, "select id, utm_source from public.traffic_leads"):
        LEAD_UTM[row["id"]] = row["utm_source"]
    for row in api.query(SERVICE, "select utm_source, user_id from public.traffic_user_utm_sources"):
        OWNER[row["utm_source"]] = row["user_id"]


def _seed_merged_lead_attributed_apart_from_its_live_lead(api: PostgrestSession) -> None:
    """The "merged" branch of the leads' rule: a merged lead whose own first touch is the main
    targetologist's, merged into a live lead first touched by a team-mate. The rule follows
    each row's own first touch, so that targetologist sees the merged row and not the live
    one (and the team-mate the other way round)."""
    phone, email = unique_phone(), f"apart-{uuid.uuid4().hex[:8]}@example.kz"
    live = record(api, p_phone=phone, p_utm_source="fb_muha", p_stage="proftest_submitted")
    loser = record(api, p_email=email, p_utm_source="fb_arystan", p_stage="expresscourse_clicked")
    assert record(api, p_phone=phone, p_email=email, p_stage="expresscourse_submitted")["merged"]
    rows = api.query(
        SERVICE,
        "select id, merged_into, utm_source from public.traffic_leads where id = any(%s) order by lead_no",
        [[live["lead_id"], loser["lead_id"]]],
    )
    assert [(r["id"], r["merged_into"], r["utm_source"]) for r in rows] == [
        (live["lead_id"], None, "fb_muha"),
        (loser["lead_id"], live["lead_id"], "fb_arystan"),
    ], rows


def _owns(actor: Actor, utm_source: str | None) -> bool:
    return (
        "targetologist" in actor.app_roles
        and utm_source is not None
        and OWNER.get(utm_source) == actor.user_id
    )


def _lead_attributed(actor: Actor, row: dict[str, Any], cast: Cast) -> bool:
    return _owns(actor, row["utm_source"])


def _journey_attributed(actor: Actor, row: dict[str, Any], cast: Cast) -> bool:
    return _owns(actor, LEAD_UTM.get(row["lead_id"]))


def _any_lead(cast: Cast) -> uuid.UUID:
    return next(iter(LEAD_UTM))


def _call_dashboard(api: PostgrestSession, actor: Actor, cast: Cast) -> list[dict]:
    return api.rpc(actor, "traffic_dashboard", p_group_by="targetologist")


def _dashboard_scoped(api: PostgrestSession, actor: Actor, cast: Cast) -> None:
    rows = _call_dashboard(api, actor, cast)
    visible = api.query(actor, "select count(*) as n from public.traffic_lead_attribution")[0]["n"]
    assert sum(r["leads"] for r in rows) == visible
    if "targetologist" in actor.app_roles:
        assert visible > 0 and {r["bucket"] for r in rows} == {str(actor.user_id)}
    else:
        assert rows == []


ADAPTERS = {
    "public.traffic_leads": TableAdapter(
        rules={"attributed": _lead_attributed},
        insert_samples=lambda cast, actor: [{"name": "Direct insert", "phone": unique_phone()}],
        update_column="name",
        seed=_seed,
    ),
    "public.traffic_lead_journey": TableAdapter(
        rules={"attributed": _journey_attributed},
        insert_samples=lambda cast, actor: [{"lead_id": _any_lead(cast), "stage": "payment_started"}],
        update_column="stage",
        seed=_seed,
    ),
    "public.traffic_lead_merges": TableAdapter(
        insert_samples=lambda cast, actor: [
            dict(zip(("winner_id", "loser_id"), list(LEAD_UTM)[:2], strict=True), reason="matrix probe")
        ],
        update_column="reason",
        seed=_seed,
    ),
    "public.traffic_lead_daily_stats": TableAdapter(
        key=("utm_source", "day", "stage", "shard"),
        rules={"attributed": lambda actor, row, cast: _owns(actor, row["utm_source"] or None)},
        insert_samples=lambda cast, actor: [
            {"utm_source": "matrix_probe", "day": dt.date(2020, 1, 1), "stage": "", "leads": 1}
        ],
        update_column="leads",
        seed=_seed,
    ),
    "public.landing_leads": TableAdapter(rules={"attributed": _lead_attributed}, seed=_seed),
    "public.lead_journey": TableAdapter(rules={"attributed": _journey_attributed}, seed=_seed),
    "public.traffic_lead_attribution": TableAdapter(
        key=("lead_id",),
        rules={"attributed": lambda actor, row, cast: _owns(actor, row["utm_source"])},
        seed=_seed,
    ),
    "public.find_or_create_unified_lead": FunctionAdapter(
        call=lambda api, actor, cast: api.rpc(
            actor, "find_or_create_unified_lead", p_phone=unique_phone(), p_stage="lead_captured"
        ),
    ),
    "public.traffic_dashboard": FunctionAdapter(
        call=_call_dashboard,
        checks={"scoped": _dashboard_scoped},
        seed=_seed,
    ),
}
