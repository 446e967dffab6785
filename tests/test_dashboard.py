"""Attribution and the dashboard: counts, grouping, RLS scoping, the pre-counted stats."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections import Counter
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from support.cast import TEAM_A, TEAM_B, Cast
from support.leads import lead, record, seed_attributed_leads, unique_phone
from support.postgrest import SERVICE, Actor, ApiError, PostgrestSession

FUNNEL = (
    "lead_captured",
    "proftest_submitted",
    "expresscourse_clicked",
    "expresscourse_submitted",
    "payment_started",
    "payment_succeeded",
)


def stats(api: PostgrestSession) -> set[tuple]:
    rows = api.query(
        SERVICE,
        "select utm_source, day, stage, sum(leads)::bigint as leads from public.traffic_lead_daily_stats"
        " group by 1, 2, 3 having sum(leads) <> 0",
    )
    return {(r["utm_source"], r["day"], r["stage"], r["leads"]) for r in rows}


def rebuilt(api: PostgrestSession) -> set[tuple]:
    rows = api.query(
        SERVICE,
        "select coalesce(l.utm_source, '') as utm_source, (l.created_at at time zone 'Asia/Almaty')::date as day,"
        " st.stage, count(*) as leads from public.traffic_leads l"
        " cross join lateral unnest(array[''] || l.stages) st(stage) where l.merged_into is null group by 1, 2, 3",
    )
    return {(r["utm_source"], r["day"], r["stage"], r["leads"]) for r in rows}


def test_stats_stay_exact_through_every_write_path(api: PostgrestSession, cast: Cast) -> None:
    seed_attributed_leads(api, cast)  # creates, repeats and a merge
    assert stats(api) == rebuilt(api)
    phone = unique_phone()
    lid = record(api, p_phone=phone, p_stage="lead_captured")["lead_id"]
    # a late first touch re-attributes the lead and moves it to an earlier day
    record(
        api,
        p_phone=phone,
        p_utm_source="fb_muha",
        p_stage="payment_started",
        p_occurred_at=dt.datetime(2026, 9, 1, tzinfo=dt.UTC),
    )
    assert lead(api, lid)["utm_source"] == "fb_muha"
    assert stats(api) == rebuilt(api)
    # direct service-role writes: a bulk update and a delete
    api.query(
        SERVICE,
        "update public.traffic_leads set created_at = created_at - interval '3 days' where utm_source = 'fb_arystan'",
    )
    doomed = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, stages) values ('doomed', '{lead_captured}') returning id",
    )
    assert stats(api) == rebuilt(api)
    api.query(SERVICE, "delete from public.traffic_leads where id = %s", [doomed[0]["id"]])
    assert stats(api) == rebuilt(api)


def _connect_on_shards(db_url: str, count: int) -> list[psycopg.Connection]:
    """``count`` connections whose backends write to different non-zero stats shards."""
    conns: list[psycopg.Connection] = []
    spare: list[psycopg.Connection] = []
    while len(conns) < count:
        conn = psycopg.connect(db_url)
        shard = conn.info.backend_pid % 16
        if shard == 0 or shard in {c.info.backend_pid % 16 for c in conns}:
            spare.append(conn)  # keep it open so the next backend gets another pid
            continue
        conns.append(conn)
    for conn in spare:
        conn.close()
    return conns


def _remove_probe(db_url: str, source: str) -> None:
    """Delete the committed leads of a probe UTM source (other tests count committed leads)."""
    with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
        probe = "(select id from public.traffic_leads where utm_source = %s)"
        conn.execute(f"delete from public.traffic_lead_journey where lead_id in {probe}", (source,))
        conn.execute(f"delete from private.traffic_lead_identifiers where lead_id in {probe}", (source,))
        conn.execute("delete from public.traffic_leads where utm_source = %s", (source,))


def test_concurrent_writers_do_not_wait_for_one_stats_row(db_url: str, api: PostgrestSession) -> None:
    """Two open transactions recording new leads of one source, day and stage: the second
    does not wait for the first (each adds to its own shard), and the sums stay exact."""
    opened = _connect_on_shards(db_url, 2)
    try:
        first, second = opened
        call = (
            "select lead_id from public.find_or_create_unified_lead("
            "p_phone := %s, p_utm_source := 'fb_shard_probe', p_stage := 'proftest_submitted',"
            " p_occurred_at := '2020-03-01 12:00+05')"  # outside every dashboard window of the other tests
        )
        first.execute(call, (unique_phone(),))
        second.execute("set lock_timeout = '2s'")
        second.execute(call, (unique_phone(),))  # would time out on a shared counter row
        second.commit()
        first.commit()
    finally:
        for conn in opened:
            conn.close()
    try:
        counted = {(r[0], r[2]): r[3] for r in stats(api) if r[0] == "fb_shard_probe"}
        assert counted == {("fb_shard_probe", ""): 2, ("fb_shard_probe", "proftest_submitted"): 2}
        assert stats(api) == rebuilt(api)
        shards = api.query(
            SERVICE,
            "select count(distinct shard) as n from public.traffic_lead_daily_stats"
            " where utm_source = 'fb_shard_probe'",
        )
        assert shards == [{"n": 2}]
    finally:  # committed: remove them again
        _remove_probe(db_url, "fb_shard_probe")
    assert stats(api) == rebuilt(api)  # the deletion subtracted them again


def test_dashboard_counts_by_day_targetologist_and_team(api: PostgrestSession, cast: Cast) -> None:
    seed_attributed_leads(api, cast)
    by_t = {r["bucket"]: r for r in api.rpc(SERVICE, "traffic_dashboard", p_group_by="targetologist")}
    mine = by_t[str(cast.targetologist.user_id)]
    # fb_arystan and ig_arystan: two leads each, plus the surviving lead of the merged pair
    assert mine["leads"] == 5 and mine["label"] == "Targetologist"
    assert mine["stages"] == {
        "proftest_submitted": 3,
        "expresscourse_clicked": 3,
        "expresscourse_submitted": 5,
    }
    assert mine["conversion"] == {
        "proftest_submitted->expresscourse_clicked": 1,
        "expresscourse_clicked->expresscourse_submitted": pytest.approx(5 / 3, abs=1e-4),
        "expresscourse_submitted->payment_started": 0,
    }
    assert by_t["unattributed"]["leads"] == 2
    by_team = {r["label"]: r["leads"] for r in api.rpc(SERVICE, "traffic_dashboard", p_group_by="team")}
    assert by_team == {"Cast Team A": 7, "Cast Team B": 2, "unattributed": 2}
    team_a = api.rpc(SERVICE, "traffic_dashboard", p_group_by="targetologist", p_team_id=TEAM_A)
    assert {r["bucket"] for r in team_a} == {
        str(cast.targetologist.user_id),
        str(cast.targetologist_a2.user_id),
    }
    by_day = api.rpc(SERVICE, "traffic_dashboard")
    assert sum(r["leads"] for r in by_day) == 11


@pytest.mark.parametrize("group_by", ["day", "targetologist", "team"])
def test_precounted_and_live_paths_agree(api: PostgrestSession, cast: Cast, group_by: str) -> None:
    seed_attributed_leads(api, cast)
    for actor in (SERVICE, cast.admin, cast.targetologist, cast.student):
        fast = api.rpc(actor, "traffic_dashboard", p_group_by=group_by)
        live = api.rpc(actor, "traffic_dashboard", p_group_by=group_by, p_live=True)
        assert fast == live, actor.label


def expected_dashboard(rows: list[dict], group_by: str, timezone: str) -> list[dict[str, Any]]:
    """The dashboard computed in Python from traffic_lead_attribution rows: the oracle."""
    zone = ZoneInfo(timezone)
    until = dt.datetime.now(zone).date()
    since = until - dt.timedelta(days=29)
    buckets: dict[str, dict[str, Any]] = {}
    for r in rows:
        day = r["created_at"].astimezone(zone).date()
        if not since <= day <= until:
            continue
        if group_by == "day":
            key = label = day.isoformat()
        elif group_by == "targetologist":
            key = str(r["targetologist_id"]) if r["targetologist_id"] else "unattributed"
            label = r["targetologist_name"] or "unattributed"
        elif r["team_id"]:
            key, label = str(r["team_id"]), r["team_name"]
        elif r["targetologist_id"]:  # attributed to a targetologist who is in no team
            key, label = "no_team", "no team"
        else:
            key = label = "unattributed"
        b = buckets.setdefault(key, {"bucket": key, "label": label, "leads": 0, "stages": Counter()})
        b["leads"] += 1
        b["stages"].update(r["stages"])
    out = []
    for key in sorted(buckets):
        b = buckets[key]
        conversion = {
            f"{a}->{z}": float(
                (Decimal(b["stages"][z]) / Decimal(b["stages"][a])).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            )
            for a, z in pairwise(FUNNEL)
            if b["stages"][a] > 0
        }
        out.append({**b, "stages": dict(b["stages"]), "conversion": conversion})
    return out


def scoped(rows: list[dict], targetologist: uuid.UUID | None, team: uuid.UUID | None) -> list[dict]:
    """Both filters together: the targetologist's leads, and only when they are in the team."""
    return [
        r
        for r in rows
        if (targetologist is None or r["targetologist_id"] == targetologist)
        and (team is None or r["team_id"] == team)
    ]


def test_dashboard_matches_the_attribution_view_for_every_role_grouping_and_filter(
    api: PostgrestSession, cast: Cast
) -> None:
    """Every call on one connection, as PostgREST reuses its connections: each statement of
    the function is planned once (a generic plan) and must be right for every actor,
    grouping, filter and path that follows, whatever came first."""
    seed_attributed_leads(api, cast)
    actors: list[Actor] = [cast.targetologist, SERVICE, cast.admin, cast.sales_manager, cast.student]
    filters: list[tuple[uuid.UUID | None, uuid.UUID | None]] = [
        (cast.targetologist.user_id, None),
        (None, None),
        (None, TEAM_A),
        (cast.targetologist_b.user_id, None),
        (None, TEAM_B),
        (cast.targetologist.user_id, TEAM_A),  # both filters: the targetologist is in that team
        (cast.targetologist.user_id, TEAM_B),  # ... and is not: nothing
    ]
    calls = 0
    for actor in actors:
        visible = api.query(actor, "select * from public.traffic_lead_attribution")
        for group_by in ("targetologist", "day", "team"):
            for targetologist, team in filters:
                for live, timezone in (
                    (False, "Asia/Almaty"),
                    (True, "Asia/Almaty"),
                    (False, "Europe/Moscow"),
                ):
                    got = api.rpc(
                        actor,
                        "traffic_dashboard",
                        p_group_by=group_by,
                        p_targetologist_id=targetologist,
                        p_team_id=team,
                        p_live=live,
                        p_timezone=timezone,
                    )
                    want = expected_dashboard(scoped(visible, targetologist, team), group_by, timezone)
                    where = (actor.label, group_by, targetologist, team, live, timezone)
                    assert [{**r, "conversion": pytest.approx(r["conversion"])} for r in want] == got, where
                    calls += 1
    assert calls == 5 * 3 * 7 * 3
    # the oracle is not vacuous: staff see every seeded lead, the student none
    everyone = api.rpc(SERVICE, "traffic_dashboard", p_group_by="team")
    assert sum(r["leads"] for r in everyone) >= 11
    assert api.rpc(cast.student, "traffic_dashboard") == []


def test_targetologist_sees_only_their_leads(api: PostgrestSession, cast: Cast) -> None:
    seed_attributed_leads(api, cast)
    rows = api.rpc(cast.targetologist, "traffic_dashboard", p_group_by="targetologist")
    assert [r["bucket"] for r in rows] == [str(cast.targetologist.user_id)]
    # asking for someone else's numbers gives nothing, not an error
    assert (
        api.rpc(cast.targetologist, "traffic_dashboard", p_targetologist_id=cast.targetologist_b.user_id)
        == []
    )
    attribution = api.query(
        cast.targetologist, "select distinct targetologist_id from public.traffic_lead_attribution"
    )
    assert attribution == [{"targetologist_id": cast.targetologist.user_id}]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ({"p_group_by": "week"}, "p_group_by must be day, targetologist or team"),
        ({"p_from": dt.date(2026, 2, 1), "p_to": dt.date(2026, 1, 1)}, "invalid period"),
        ({"p_from": dt.date(2024, 1, 1), "p_to": dt.date(2026, 1, 1)}, "invalid period"),
        ({"p_timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"p_timezone": None}, "must not be NULL"),
        ({"p_timezone": "+05"}, "ambiguous time zone"),
        ({"p_timezone": "5"}, "ambiguous time zone"),
        ({"p_timezone": "UTC+5"}, "ambiguous time zone"),
        ({"p_timezone": " gmt -06:00"}, "ambiguous time zone"),
        ({"p_timezone": "ABC+5"}, "ambiguous time zone"),
        ({"p_timezone": "EST5EDT"}, "ambiguous time zone"),
        ({"p_timezone": "<+05>-5"}, "ambiguous time zone"),
        # POSIX zones whose name is not plain letters: read as UTC-5 before 20261201100000
        ({"p_timezone": "Asia/Almaty+5"}, "ambiguous time zone"),
        ({"p_timezone": "GMT_+5"}, "ambiguous time zone"),
        ({"p_timezone": "U T C+5"}, "ambiguous time zone"),
        ({"p_timezone": "UTC.+5"}, "ambiguous time zone"),
        ({"p_timezone": "ÄÖÜ+5"}, "ambiguous time zone"),
        ({"p_timezone": "ALMT"}, "abbreviation"),
        ({"p_timezone": "msk"}, "abbreviation"),
        # days that are not the place's calendar days, or no place: accepted before 20261214100000
        ({"p_timezone": "right/Asia/Almaty"}, "is not accepted"),
        ({"p_timezone": "RIGHT/UTC"}, "is not accepted"),
        ({"p_timezone": "localtime"}, "is not accepted"),
        ({"p_timezone": "posixrules"}, "is not accepted"),
        ({"p_timezone": "Factory"}, "is not accepted"),
        ({"p_timezone": "posix/Factory"}, "is not accepted"),
        ({"p_group_by": None}, "must not be NULL"),
        ({"p_live": None}, "must not be NULL"),
        ({"p_to": dt.date(2026, 1, 1), "p_timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"p_to": "infinity"}, "invalid period"),
        ({"p_from": "-infinity", "p_to": dt.date(2026, 1, 1)}, "invalid period"),
        ({"p_to": "5874897-12-31"}, "invalid period"),
        ({"p_from": dt.date(1969, 12, 31), "p_to": dt.date(1970, 1, 2)}, "invalid period"),
    ],
)
def test_dashboard_rejects_bad_input(api: PostgrestSession, cast: Cast, args: dict, needle: str) -> None:
    with pytest.raises(ApiError) as err:
        api.rpc(cast.admin, "traffic_dashboard", **args)
    assert err.value.code == "22023" and needle in err.value.message and err.value.hint


def test_dashboard_reads_iana_zones_and_utc(api: PostgrestSession, cast: Cast) -> None:
    """IANA names (even Etc/GMT-5, whose sign the tz database documents) and the
    zero-offset abbreviations still work."""
    for zone in (
        "Asia/Almaty",
        "UTC",
        "utc",
        "GMT",
        "Z",
        "Etc/GMT-5",
        "etc/gmt-5",
        "Etc/GMT+0",
        "Europe/Moscow",
        "America/New_York",
        "posix/Asia/Almaty",
    ):
        assert isinstance(api.rpc(cast.admin, "traffic_dashboard", p_timezone=zone), list), zone


@pytest.mark.parametrize(
    ("zone", "day", "first_midnight"),
    [
        # clocks fall back from 01:00 to 00:00: the day's midnight happens twice
        ("America/Havana", dt.date(2024, 11, 3), dt.datetime(2024, 11, 3, 4, tzinfo=dt.UTC)),
        ("Atlantic/Azores", dt.date(2024, 10, 27), dt.datetime(2024, 10, 27, 0, tzinfo=dt.UTC)),
    ],
)
def test_the_live_path_counts_a_day_whose_midnight_happens_twice(
    api: PostgrestSession, zone: str, day: dt.date, first_midnight: dt.datetime
) -> None:
    """PostgreSQL reads such a midnight as the later one: before 20261214100000 the first
    hour of the day was left out of a period starting that day, and counted as a bucket
    outside a period ending the day before."""
    instants = [first_midnight + dt.timedelta(minutes=m) for m in (-30, 30, 90)]
    local_days = [t.astimezone(ZoneInfo(zone)).date() for t in instants]
    assert local_days == [day - dt.timedelta(1), day, day]  # the oracle agrees on the setting
    for at in instants:
        row = record(api, p_phone=unique_phone(), p_utm_source="fb_arystan")
        api.query(
            SERVICE,
            "update public.traffic_leads set created_at = %s where id = %s returning id",
            (at, row["lead_id"]),
        )

    def counted(since: dt.date, until: dt.date) -> dict[str, int]:
        rows = api.rpc(SERVICE, "traffic_dashboard", p_from=since, p_to=until, p_timezone=zone)
        return {r["bucket"]: r["leads"] for r in rows}

    before = day - dt.timedelta(1)
    assert counted(day, day) == {day.isoformat(): 2}
    assert counted(before, before) == {before.isoformat(): 1}
    assert counted(before, day) == {before.isoformat(): 1, day.isoformat(): 2}


def test_legacy_views_keep_the_seed_shapes(api: PostgrestSession, cast: Cast) -> None:
    record(api, p_phone=unique_phone(), p_source="proftest", p_stage="proftest_submitted")
    cols = api.query(SERVICE, "select * from public.landing_leads limit 1")[0].keys()
    assert {
        "id",
        "email",
        "name",
        "phone",
        "phone_normalized",
        "source",
        "metadata",
        "amocrm_lead_id",
        "amocrm_contact_id",
        "amocrm_synced",
        "email_sent",
        "sms_sent",
        "click_count",
        "created_at",
        "updated_at",
    } <= set(cols)
    row = api.query(SERVICE, "select source from public.landing_leads where source = 'proftest' limit 1")
    assert row == [{"source": "proftest"}]  # old code filtering on the legacy spelling keeps working
    journey_cols = api.query(SERVICE, "select * from public.lead_journey limit 1")[0].keys()
    assert set(journey_cols) == {"id", "lead_id", "stage", "source", "metadata", "created_at"}


def test_the_legacy_lead_view_shows_live_leads_only(api: PostgrestSession) -> None:
    """Old code reading landing_leads sees one row per person, not the merged duplicates
    (the matrix derives what a role should see from the view itself, so it could not tell;
    found by mutation review)."""
    phone, email = unique_phone(), f"legacy-{uuid.uuid4().hex[:8]}@example.kz"
    first = record(api, p_phone=phone)["lead_id"]
    second = record(api, p_email=email)["lead_id"]
    assert record(api, p_phone=phone, p_email=email)["merged"]
    shown = api.query(SERVICE, "select id from public.landing_leads where id = any(%s)", [[first, second]])
    assert shown == [{"id": first}]


def test_a_lead_after_local_midnight_counts_on_the_local_day(api: PostgrestSession) -> None:
    """The precounted stats take a new lead's day in Asia/Almaty: 20:30 UTC is 01:30 the next
    day there (the UTC date went unnoticed: the recount tests used times where both agree;
    found by mutation review)."""
    source = f"probe_{uuid.uuid4().hex[:6]}"
    at = dt.datetime(2026, 11, 10, 20, 30, tzinfo=dt.UTC)
    record(api, p_phone=unique_phone(), p_utm_source=source, p_occurred_at=at)
    rows = api.query(
        SERVICE,
        "select day, sum(leads)::int as n from public.traffic_lead_daily_stats where utm_source = %s"
        " and stage = '' group by day having sum(leads) <> 0",
        [source],
    )
    assert rows == [{"day": dt.date(2026, 11, 11), "n": 1}]


def test_a_period_of_367_days_is_the_longest(api: PostgrestSession, cast: Cast) -> None:
    api.rpc(cast.admin, "traffic_dashboard", p_from=dt.date(2025, 1, 1), p_to=dt.date(2026, 1, 2))
    with pytest.raises(ApiError) as err:
        api.rpc(cast.admin, "traffic_dashboard", p_from=dt.date(2025, 1, 1), p_to=dt.date(2026, 1, 3))
    assert err.value.code == "22023" and "invalid period" in err.value.message


def test_legacy_views_give_old_code_the_seed_values(api: PostgrestSession) -> None:
    """20261122130500: seed 000's synced_to_amocrm, UTM in metadata where the Landing app kept
    it (utm_source as the attribution key, 20261202100300), and the same source spelling in both views."""
    row = record(
        api,
        p_phone=unique_phone(),
        p_source="proftest",
        p_utm_source="FB_Anna",
        p_utm_campaign="nov",
        p_metadata={"page": "/proftest"},
        p_stage="proftest_submitted",
    )
    landing = api.query(
        SERVICE,
        "select metadata, synced_to_amocrm, legacy_id from public.landing_leads where id = %s",
        [row["lead_id"]],
    )
    assert landing == [
        {
            "metadata": {"utm_source": "fb_anna", "utm_campaign": "nov", "page": "/proftest"},
            "synced_to_amocrm": False,
            "legacy_id": None,
        }
    ]
    counts = api.query(
        SERVICE, "select synced_to_amocrm, count(*) as n from public.landing_leads group by synced_to_amocrm"
    )
    assert {r["synced_to_amocrm"] for r in counts} <= {True, False}
    journey = api.query(
        SERVICE,
        "select source from public.lead_journey where lead_id = %s and source = 'proftest'",
        [row["lead_id"]],
    )
    assert journey == [{"source": "proftest"}]


FOLD_PROBE = "fb_fold_probe"
PROBE_CALL = (
    "select lead_id from public.find_or_create_unified_lead("
    "p_phone := %s, p_utm_source := 'fb_fold_probe', p_stage := 'proftest_submitted', p_occurred_at := %s)"
)


def _probe_rows(db_url: str) -> list[tuple]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select day, stage, shard, leads from public.traffic_lead_daily_stats"
            " where utm_source = %s order by 1, 2, 3",
            (FOLD_PROBE,),
        ).fetchall()


def test_nightly_fold_leaves_one_row_per_count_of_past_days(db_url: str, api: PostgrestSession) -> None:
    """Past days end up in shard 0 with the same sums; today keeps its shards; a second fold
    has nothing to do."""
    old_day = dt.datetime(2020, 4, 2, 12, tzinfo=dt.UTC)
    today = dt.datetime.now(dt.UTC)
    writers = _connect_on_shards(db_url, 2)
    try:
        for conn in writers:
            for when in (old_day, today):
                conn.execute(PROBE_CALL, (unique_phone(), when))
            conn.commit()
        before = _probe_rows(db_url)
        assert {shard for day, _, shard, _ in before if day == old_day.date()} == {
            c.info.backend_pid % 16 for c in writers
        }
        with psycopg.connect(db_url, autocommit=True) as owner:
            folded = owner.execute("select private.fold_lead_daily_stats()").fetchone()[0]
            assert folded >= 2  # at least the probe's two counts of the old day
            after = _probe_rows(db_url)
            assert [r for r in after if r[0] == old_day.date()] == [
                (old_day.date(), "", 0, 2),
                (old_day.date(), "proftest_submitted", 0, 2),
            ]
            today_local = dt.datetime.now(ZoneInfo("Asia/Almaty")).date()
            assert [r for r in after if r[0] == today_local] == [r for r in before if r[0] == today_local]
            assert len({r[2] for r in after if r[0] == today_local}) == 2  # today keeps its shards
            assert stats(api) == rebuilt(api)
            assert owner.execute("select private.fold_lead_daily_stats()").fetchone()[0] == 0
    finally:
        for conn in writers:
            conn.close()
        _remove_probe(db_url, FOLD_PROBE)
    assert stats(api) == rebuilt(api)


def test_fold_leaves_the_shard_of_an_open_intake_for_later_and_never_waits(
    db_url: str, api: PostgrestSession
) -> None:
    """An intake call still open on a past day's shard row: the fold does not wait for it (nor
    it for the fold: no deadlock, no table lock); it folds every other shard and leaves that
    one for the next fold, and the sums stay exact."""
    old_day = dt.datetime(2020, 4, 3, 12, tzinfo=dt.UTC)
    writer, done = _connect_on_shards(db_url, 2)
    try:
        done.execute(PROBE_CALL, (unique_phone(), old_day))
        done.commit()
        writer.execute(PROBE_CALL, (unique_phone(), old_day))
        writer.commit()
        writer.execute(PROBE_CALL, (unique_phone(), old_day))  # updates its shard's row; open
        held = int(writer.execute("select current_setting('onai.lead_stats_shard')").fetchone()[0])
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute("set lock_timeout = '2s'")
            assert owner.execute("select private.fold_lead_daily_stats()").fetchone()[0] >= 2
            rows = [r for r in _probe_rows(db_url) if r[0] == old_day.date()]
            assert {r[2] for r in rows} == {0, held}  # the open writer's shard is left alone
            # intake goes on meanwhile: the fold holds no claim once it has committed
            with psycopg.connect(db_url) as other:
                other.execute("set lock_timeout = '2s'")
                other.execute(PROBE_CALL, (unique_phone(), dt.datetime.now(dt.UTC)))
                other.commit()
            writer.commit()
            assert owner.execute("select private.fold_lead_daily_stats()").fetchone()[0] >= 2
        rows = [r for r in _probe_rows(db_url) if r[0] == old_day.date()]
        assert rows == [(old_day.date(), "", 0, 3), (old_day.date(), "proftest_submitted", 0, 3)]
        assert stats(api) == rebuilt(api)
    finally:
        writer.close()
        done.close()
        _remove_probe(db_url, FOLD_PROBE)
    assert stats(api) == rebuilt(api)


def test_a_fold_never_waits_for_an_open_merge(db_url: str, api: PostgrestSession) -> None:
    """A merge writes the loser's stats rows before the winner's (not in key order); a fold
    that locked past days' rows in key order waited for it and could deadlock with it. Now
    the fold never touches a shard an open transaction holds."""
    past, earlier = dt.datetime(2020, 4, 4, 12, tzinfo=dt.UTC), dt.datetime(2020, 4, 3, 12, tzinfo=dt.UTC)
    (writer,) = _connect_on_shards(db_url, 1)
    phone, email = unique_phone(), f"fold-merge-{uuid.uuid4().hex[:8]}@example.kz"
    try:
        writer.execute(PROBE_CALL, (phone, earlier))  # the winner: older
        writer.execute(
            "select public.find_or_create_unified_lead(p_email := %s, p_utm_source := 'fb_fold_probe_b',"
            " p_stage := 'proftest_submitted', p_occurred_at := %s)",
            (email, past),
        )
        writer.commit()
        # the merge, open: it moved the loser's counts (source b) and then the winner's (source a)
        writer.execute(
            "select public.find_or_create_unified_lead(p_phone := %s, p_email := %s)", (phone, email)
        )
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute("set lock_timeout = '2s'")
            owner.execute("select private.fold_lead_daily_stats()")
        writer.commit()
        with psycopg.connect(db_url, autocommit=True) as owner:
            owner.execute("select private.fold_lead_daily_stats()")
        assert stats(api) == rebuilt(api)
    finally:
        writer.close()
        with psycopg.connect(db_url, autocommit=True) as conn, conn.transaction():
            ids = "(select id from public.traffic_leads where utm_source in (%s, 'fb_fold_probe_b'))"
            conn.execute(f"delete from public.traffic_lead_merges where winner_id in {ids}", (FOLD_PROBE,))
            conn.execute(f"delete from public.traffic_lead_journey where lead_id in {ids}", (FOLD_PROBE,))
            conn.execute(
                f"delete from private.traffic_lead_identifiers where lead_id in {ids}", (FOLD_PROBE,)
            )
            conn.execute(
                "delete from public.traffic_leads where utm_source = 'fb_fold_probe_b' and merged_into is not null"
            )
        _remove_probe(db_url, FOLD_PROBE)
        _remove_probe(db_url, "fb_fold_probe_b")
    assert stats(api) == rebuilt(api)


def test_team_grouping_keeps_a_teamless_targetologists_leads_apart_from_unattributed(
    api: PostgrestSession, cast: Cast
) -> None:
    seed_attributed_leads(api, cast)
    api.query(
        SERVICE,
        "update public.traffic_users set team_id = null where id = %s",
        [cast.targetologist_b.user_id],
    )
    try:
        visible = api.query(SERVICE, "select * from public.traffic_lead_attribution")
        want = expected_dashboard(visible, "team", "Asia/Almaty")
        assert "no_team" in {r["bucket"] for r in want} and "unattributed" in {r["bucket"] for r in want}
        for live in (False, True):
            got = api.rpc(SERVICE, "traffic_dashboard", p_group_by="team", p_live=live)
            assert [{**r, "conversion": pytest.approx(r["conversion"])} for r in want] == got
            labels = {r["bucket"]: r["label"] for r in got}
            assert labels["no_team"] == "no team" and labels["unattributed"] == "unattributed"
    finally:
        api.query(
            SERVICE,
            "update public.traffic_users set team_id = %s where id = %s",
            [TEAM_B, cast.targetologist_b.user_id],
        )


def _connect_on_one_home_shard(db_url: str, count: int) -> list[psycopg.Connection]:
    """``count`` connections whose backend pids share one remainder modulo 16."""
    by_home: dict[int, list[psycopg.Connection]] = {}
    while True:
        conn = psycopg.connect(db_url)
        group = by_home.setdefault(conn.info.backend_pid % 16, [])
        group.append(conn)
        if len(group) == count:
            for other in by_home.values():
                if other is not group:
                    for spare in other:
                        spare.close()
            return group


def test_transactions_sharing_a_home_shard_neither_wait_nor_deadlock(
    db_url: str, api: PostgrestSession
) -> None:
    """Two open transactions whose pids share a shard each record leads of two sources in
    opposite orders (as two crossing merges move counts). With the shard of the backend pid
    they took the two counter rows in opposite orders: the third call waited for the second
    transaction, which would then wait for the first (40P01). A transaction claims a shard of
    its own now, so none of the four calls waits (lock_timeout would fail it)."""
    first, second = _connect_on_one_home_shard(db_url, 2)
    call = (
        "select lead_id from public.find_or_create_unified_lead(p_phone := %s, p_utm_source := %s,"
        " p_stage := 'proftest_submitted', p_occurred_at := '2020-03-02 12:00+05')"
    )
    try:
        for conn in (first, second):
            conn.execute("set lock_timeout = '2s'")
        first.execute(call, (unique_phone(), "fb_shard_cross_a"))
        second.execute(call, (unique_phone(), "fb_shard_cross_b"))
        first.execute(call, (unique_phone(), "fb_shard_cross_b"))
        second.execute(call, (unique_phone(), "fb_shard_cross_a"))
        claimed = {
            c.execute("select current_setting('onai.lead_stats_shard')").fetchone()[0]
            for c in (first, second)
        }
        assert len(claimed) == 2, claimed
        first.commit()
        second.commit()
    finally:
        for conn in (first, second):
            conn.close()
    try:
        counted = {(r[0], r[2]): r[3] for r in stats(api) if r[0].startswith("fb_shard_cross_")}
        assert counted == {
            ("fb_shard_cross_a", ""): 2, ("fb_shard_cross_a", "proftest_submitted"): 2,
            ("fb_shard_cross_b", ""): 2, ("fb_shard_cross_b", "proftest_submitted"): 2,
        }  # fmt: skip
        assert stats(api) == rebuilt(api)
    finally:
        _remove_probe(db_url, "fb_shard_cross_a")
        _remove_probe(db_url, "fb_shard_cross_b")


def test_a_writer_that_meets_a_running_fold_waits_for_the_fold_only(
    db_url: str, api: PostgrestSession
) -> None:
    """The fold claims every free shard for its transaction. A writer starting meanwhile found
    all 16 claimed and waited for its pid's shard, held by an unrelated open transaction, after
    the fold had committed too: with a lock timeout the intake call failed (found by review).
    It now waits for the fold (key 16), then takes a free shard."""
    holder, writer = _connect_on_one_home_shard(db_url, 2)
    home = holder.info.backend_pid % 16
    at = dt.datetime(2020, 5, 6, 12, tzinfo=dt.UTC)
    got: list[object] = []
    try:
        holder.execute(PROBE_CALL, (unique_phone(), at))  # open: holds its home shard
        assert holder.execute("select current_setting('onai.lead_stats_shard')").fetchone()[0] == str(home)
        with psycopg.connect(db_url) as fold, psycopg.connect(db_url, autocommit=True) as monitor:
            fold.execute("select private.fold_lead_daily_stats()")  # open: every other shard, key 16
            writer.execute("set lock_timeout = '5s'")

            def intake() -> None:
                try:
                    got.append(writer.execute(PROBE_CALL, (unique_phone(), at)).fetchone()[0])
                except psycopg.Error as exc:
                    got.append(exc)

            t = threading.Thread(target=intake)
            t.start()
            deadline = time.monotonic() + 10
            while (
                time.monotonic() < deadline
                and not monitor.execute(
                    "select wait_event_type = 'Lock' from pg_catalog.pg_stat_activity where pid = %s",
                    (writer.info.backend_pid,),
                ).fetchone()[0]
            ):
                time.sleep(0.05)
            assert not got  # the writer waits while the fold runs
            fold.commit()
            t.join(timeout=30)
        assert len(got) == 1 and isinstance(got[0], uuid.UUID), got
        claimed = writer.execute("select current_setting('onai.lead_stats_shard')").fetchone()[0]
        assert claimed != str(home)
        writer.commit()
        holder.commit()
    finally:
        holder.close()
        writer.close()
        _remove_probe(db_url, FOLD_PROBE)
    assert stats(api) == rebuilt(api)


def test_a_stage_whose_shards_net_to_zero_is_left_out(db_url: str, api: PostgrestSession, cast: Cast) -> None:
    """+1 in one shard and -1 in another (a lead counted by one writer and moved off the day by
    another) is no stage at all, as on the live path; zero was dropped per shard, not per sum."""
    day = dt.date(2001, 1, 1)  # no other test writes this day
    rows = [
        ("", 1, 1),
        ("payment_succeeded", 1, 1),
        ("payment_succeeded", 2, -1),
        ("proftest_submitted", 1, 1),
    ]
    with psycopg.connect(db_url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.executemany(
                "insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)"
                " values ('fb_zero_probe', %s, %s, %s, %s)",
                [(day, stage, shard, n) for stage, shard, n in rows],
            )
        try:
            answer = api.rpc(cast.admin, "traffic_dashboard", p_from=day, p_to=day)
        finally:
            conn.execute("delete from public.traffic_lead_daily_stats where utm_source = 'fb_zero_probe'")
    assert [(r["bucket"], r["leads"], r["stages"]) for r in answer] == [
        ("2001-01-01", 1, {"proftest_submitted": 1})
    ]


def test_deleting_journey_rows_takes_their_stages_off_the_lead_and_the_counts(
    db_url: str, api: PostgrestSession
) -> None:
    phone, key = unique_phone(), f"pay-{uuid.uuid4().hex[:8]}"
    args = {"p_phone": phone, "p_utm_source": "fb_delete_probe", "p_occurred_at": "2020-03-03 12:00+05"}
    row = record(api, p_stage="proftest_submitted", **args)
    record(api, p_stage="payment_succeeded", p_event_key=key, **args)
    assert "payment_succeeded" in lead(api, row["lead_id"])["stages"]
    try:
        api.query(SERVICE, "delete from public.traffic_lead_journey where event_key = %s", [key])
        assert lead(api, row["lead_id"])["stages"] == ["proftest_submitted"]
        assert stats(api) == rebuilt(api)
        assert ("fb_delete_probe", dt.date(2020, 3, 3), "payment_succeeded") not in {
            r[:3] for r in stats(api)
        }
    finally:
        _remove_probe(db_url, "fb_delete_probe")


_SOURCE_IS_A_TOUCH = "traffic_user_utm_sources_utm_source_is_a_touch"


@pytest.mark.parametrize("placeholder", ["nil", "nan", "null", "(direct)", "{campaign}", "__cid__"])
def test_a_placeholder_is_refused_as_a_targetologists_source(
    api: PostgrestSession, cast: Cast, placeholder: str
) -> None:
    """No lead is attributed through a placeholder (it makes no touch), so an admin cannot
    assign one (found by review: 'nil' was accepted and then matched nothing); a real source
    that contains the word is accepted."""
    insert = "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)"
    with pytest.raises(ApiError) as err:
        api.query(cast.admin, insert, [placeholder, cast.targetologist.user_id])
    assert err.value.code == "23514" and _SOURCE_IS_A_TOUCH in err.value.message
    real = f"fb_{placeholder.strip('(){}_')}_{uuid.uuid4().hex[:6]}"
    api.query(cast.admin, insert, [real, cast.targetologist.user_id])
    validated = api.query(
        SERVICE, "select convalidated from pg_catalog.pg_constraint where conname = %s", [_SOURCE_IS_A_TOUCH]
    )
    assert validated == [{"convalidated": True}]


def test_placeholder_sources_stored_before_stay_and_are_named(db_url: str, cast: Cast) -> None:
    """20261209100000 over a source stored before it: the row stays, the migration names it
    in a warning and leaves the constraint to check new and changed rows only. As the
    migration runs (the owner), rolled back at the end."""
    from pathlib import Path

    migration = Path(__file__).parents[1] / "supabase/migrations/20261209100000_utm_sources_are_touches.sql"
    warnings: list[tuple[str | None, str | None, str | None]] = []
    with psycopg.connect(db_url) as conn:
        # a notice's fields are readable during the callback only
        conn.add_notice_handler(
            lambda d: warnings.append((d.severity_nonlocalized, d.message_primary, d.message_hint))
        )
        try:
            conn.execute(f"alter table public.traffic_user_utm_sources drop constraint {_SOURCE_IS_A_TOUCH}")
            conn.execute(
                "insert into public.traffic_user_utm_sources (utm_source, user_id) values ('nil', %s)",
                [cast.targetologist.user_id],
            )
            conn.execute(migration.read_text())
            validated = conn.execute(
                "select convalidated from pg_catalog.pg_constraint where conname = %s", [_SOURCE_IS_A_TOUCH]
            ).fetchone()
            assert validated == (False,)
            kept = conn.execute(
                "select count(*) from public.traffic_user_utm_sources where utm_source = 'nil'"
            )
            assert kept.fetchone() == (1,)
            said = [(message, hint) for severity, message, hint in warnings if severity == "WARNING"]
            assert len(said) == 1 and "'nil'" in (said[0][0] or "")
            assert "validate the constraint" in (said[0][1] or "")
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "insert into public.traffic_user_utm_sources (utm_source, user_id) values ('undefined', %s)",
                    [cast.targetologist.user_id],
                )
        finally:
            conn.rollback()


@pytest.mark.parametrize("padded", ["fb_nbsp\u00a0", "\u200bfb_zw", "fb_tab\t", "fb_line\r\n"])
def test_a_source_with_blanks_around_it_is_refused(api: PostgrestSession, cast: Cast, padded: str) -> None:
    """A touch records its source trimmed of blanks, so a source with a no-break, zero-width
    space, tab or line break around it would match no lead (found by review: it was
    accepted); the trimmed source is accepted."""
    insert = "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)"
    with pytest.raises(ApiError) as err:
        api.query(cast.admin, insert, [padded, cast.targetologist.user_id])
    assert err.value.code == "23514" and _SOURCE_IS_A_TOUCH in err.value.message
    api.query(cast.admin, insert, [padded.strip("\u00a0\u200b\t\r\n"), cast.targetologist.user_id])


def test_padded_sources_stored_before_stay(db_url: str, cast: Cast) -> None:
    """20261210100200 over a source with blanks around it stored before: the row stays, the
    constraint checks new and changed rows only (`onai-db monitor` lists it as not yet
    validated). As the migration runs (the owner), rolled back at the end."""
    from pathlib import Path

    migration = (
        Path(__file__).parents[1] / "supabase/migrations/20261210100200_utm_sources_without_blanks.sql"
    )
    with psycopg.connect(db_url) as conn:
        try:
            conn.execute(f"alter table public.traffic_user_utm_sources drop constraint {_SOURCE_IS_A_TOUCH}")
            conn.execute(
                "alter table public.traffic_user_utm_sources add constraint"
                f" {_SOURCE_IS_A_TOUCH} check (private.utm_touch_value(utm_source) is not null)"
            )
            conn.execute(
                "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)",
                ["fb_stored\u00a0", cast.targetologist.user_id],
            )
            conn.execute(migration.read_text())
            validated = conn.execute(
                "select convalidated from pg_catalog.pg_constraint where conname = %s", [_SOURCE_IS_A_TOUCH]
            ).fetchone()
            assert validated == (False,)
            kept = conn.execute(
                "select count(*) from public.traffic_user_utm_sources where utm_source = %s",
                ["fb_stored\u00a0"],
            )
            assert kept.fetchone() == (1,)
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute(
                    "insert into public.traffic_user_utm_sources (utm_source, user_id) values (%s, %s)",
                    ["fb_new\u00a0", cast.targetologist.user_id],
                )
        finally:
            conn.rollback()


# --- found by mutation testing: the stats triggers and the nightly fold ---


def test_an_update_of_a_lead_after_local_midnight_moves_its_counts_on_the_local_day(
    api: PostgrestSession,
) -> None:
    """The update branch of the stats trigger takes the day in Asia/Almaty too (20:30 UTC is
    01:30 the next day there); the recount tests update leads created at times where the UTC
    and the local date agree (found by mutation testing)."""
    source = f"probe_{uuid.uuid4().hex[:6]}"
    at = dt.datetime(2026, 11, 10, 20, 30, tzinfo=dt.UTC)
    lead_id = record(api, p_phone=unique_phone(), p_utm_source=source, p_occurred_at=at)["lead_id"]
    api.query(
        SERVICE, "update public.traffic_leads set stages = '{payment_started}' where id = %s", [lead_id]
    )
    rows = api.query(
        SERVICE,
        "select day, stage, sum(leads)::int as n from public.traffic_lead_daily_stats where utm_source = %s"
        " group by day, stage having sum(leads) <> 0 order by stage",
        [source],
    )
    assert rows == [
        {"day": dt.date(2026, 11, 11), "stage": "", "n": 1},
        {"day": dt.date(2026, 11, 11), "stage": "payment_started", "n": 1},
    ]
    assert stats(api) == rebuilt(api)


def test_a_merged_lead_written_directly_is_not_counted(api: PostgrestSession) -> None:
    """The service role may insert a lead already merged (an import of a duplicate): the
    dashboard counts live leads only, on both paths (found by mutation testing)."""
    live = record(api, p_phone=unique_phone(), p_utm_source="fb_merged_probe", p_stage="lead_captured")
    api.query(
        SERVICE,
        "insert into public.traffic_leads (name, first_utm_source, first_touch_at, stages, merged_into, merged_at)"
        " values ('Duplicate', 'fb_merged_probe', now(), '{lead_captured}', %s, now())",
        [live["lead_id"]],
    )
    assert stats(api) == rebuilt(api)


def test_truncating_the_leads_empties_the_counts(db_url: str) -> None:
    """A truncate of traffic_leads (a reset of a staging database) leaves no count behind
    (found by mutation testing). Rolled back: nothing is lost."""
    with psycopg.connect(db_url) as conn:
        conn.execute("insert into public.traffic_leads (name, stages) values ('T', '{lead_captured}')")
        assert conn.execute("select count(*) from public.traffic_lead_daily_stats").fetchone()[0] > 0
        conn.execute("truncate public.traffic_leads cascade")
        assert conn.execute("select count(*) from public.traffic_lead_daily_stats").fetchone() == (0,)
        conn.rollback()


def test_a_fold_keeps_a_negative_count_whose_other_half_is_in_a_held_shard(db_url: str) -> None:
    """A lead counted in shard 7 and taken away again in shard 5 (deleted or merged by another
    writer): while an open transaction holds shard 7, the fold moves the -1 alone into shard 0.
    That -1 must stay until shard 7's +1 is folded onto it; dropping it as 'nothing' left the
    count at +1 for good (found by mutation testing). One transaction, rolled back."""
    day = dt.date(2001, 2, 2)  # no other test writes this day
    with psycopg.connect(db_url) as owner, psycopg.connect(db_url) as holder:
        holder.execute("select pg_advisory_xact_lock(1818506355, 7)")  # an open writer on shard 7
        with owner.cursor() as cur:
            cur.executemany(
                "insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)"
                " values ('fb_neg_probe', %s, '', %s, %s)",
                [(day, 7, 1), (day, 5, -1)],
            )
        owner.execute("select private.fold_lead_daily_stats()")
        rows = owner.execute(
            "select shard, leads from public.traffic_lead_daily_stats where utm_source = 'fb_neg_probe' order by 1"
        ).fetchall()
        assert rows == [(0, -1), (7, 1)]
        holder.rollback()  # shard 7 free again
        owner.execute("select private.fold_lead_daily_stats()")
        total = owner.execute(
            "select coalesce(sum(leads), 0) from public.traffic_lead_daily_stats where utm_source = 'fb_neg_probe'"
        ).fetchone()
        assert total == (0,)
        owner.rollback()


def test_a_fold_folds_nothing_while_an_open_transaction_holds_shard_0(db_url: str) -> None:
    """Shard 0 receives the sums: while an open transaction holds it (a backend whose pid is a
    multiple of 16 recording a past day), the fold folds nothing and returns at once, instead
    of waiting for that transaction with every other shard and key 16 claimed, which stalls
    every writer meanwhile (found by mutation testing)."""
    day = dt.date(2001, 3, 3)
    with psycopg.connect(db_url) as holder, psycopg.connect(db_url) as owner:
        holder.execute("select pg_advisory_xact_lock(1818506355, 0)")
        holder.execute(
            "insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)"
            " values ('fb_s0_probe', %s, '', 0, 1)",
            [day],
        )
        owner.execute(
            "insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)"
            " values ('fb_s0_probe', %s, '', 3, 1)",
            [day],
        )
        owner.execute("set lock_timeout = '2s'")
        assert owner.execute("select private.fold_lead_daily_stats()").fetchone() == (0,)
        assert owner.execute(
            "select shard from public.traffic_lead_daily_stats where utm_source = 'fb_s0_probe'"
        ).fetchall() == [(3,)]
        owner.rollback()
        holder.rollback()
