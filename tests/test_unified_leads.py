"""find_or_create_unified_lead: identity, gap filling, touches, journey, merges, bad input."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from support.leads import lead, record, unique_phone
from support.postgrest import SERVICE, ApiError, PostgrestSession

MIGRATIONS = Path(__file__).parents[1] / "supabase" / "migrations"


def journey(api: PostgrestSession, lead_id: uuid.UUID) -> list[dict]:
    return api.query(
        SERVICE,
        "select * from public.traffic_lead_journey where lead_id = %s order by occurred_at, id",
        [lead_id],
    )


def live_leads(api: PostgrestSession, phone: str | None = None, email: str | None = None) -> list[dict]:
    return api.query(
        SERVICE,
        "select * from public.traffic_leads where merged_into is null"
        " and (phone_normalized = public.normalize_phone(%s) or email_normalized = lower(%s))",
        [phone, email],
    )


def test_same_person_differently_formatted_is_one_lead(api: PostgrestSession) -> None:
    first = record(api, p_phone="+7 (701) 555-12-34", p_name="Айгерим", p_stage="proftest_submitted")
    again = record(api, p_phone="8 701 555 12 34", p_stage="expresscourse_clicked")
    third = record(api, p_phone="87015551234", p_stage="expresscourse_submitted")
    assert first["created"] and not again["created"] and not third["created"]
    assert first["lead_id"] == again["lead_id"] == third["lead_id"]
    row = lead(api, first["lead_id"])
    assert row["phone_normalized"] == "+77015551234"
    assert row["stages"] == ["expresscourse_clicked", "expresscourse_submitted", "proftest_submitted"]
    assert [j["stage"] for j in journey(api, first["lead_id"])] == [
        "proftest_submitted",
        "expresscourse_clicked",
        "expresscourse_submitted",
    ]


def test_email_identity_is_trimmed_and_case_insensitive(api: PostgrestSession) -> None:
    a = record(api, p_email="  Aigerim.K@Mail.KZ ")
    b = record(api, p_email="aigerim.k@mail.kz")
    assert a["lead_id"] == b["lead_id"]
    row = lead(api, a["lead_id"])
    assert row["email"] == "Aigerim.K@Mail.KZ" and row["email_normalized"] == "aigerim.k@mail.kz"


def test_gaps_are_filled_and_known_values_never_replaced_by_null(api: PostgrestSession) -> None:
    phone = unique_phone()
    created = record(api, p_phone=phone, p_metadata={"form": "proftest", "city": "Almaty"})
    record(
        api,
        p_phone=phone,
        p_name="Данияр",
        p_email="daniyar@example.kz",
        p_metadata={"city": None, "age": 30},
    )
    record(api, p_phone=phone, p_name=None, p_email=None, p_source=None)
    record(api, p_phone=phone, p_name="Other Name")
    row = lead(api, created["lead_id"])
    assert row["name"] == "Данияр"  # filled once, never overwritten
    assert row["email_normalized"] == "daniyar@example.kz"
    assert row["metadata"] == {"form": "proftest", "city": "Almaty", "age": 30}


def test_invalid_email_is_kept_raw_but_is_not_an_identifier(api: PostgrestSession) -> None:
    a = record(api, p_email="not-an-email", p_name="Raw")
    b = record(api, p_email="not-an-email", p_name="Raw")
    assert a["no_identifier"] and b["no_identifier"]
    assert a["lead_id"] != b["lead_id"]  # nothing to match on: stored twice, both flagged
    row = lead(api, a["lead_id"])
    assert row["email"] == "not-an-email" and row["email_normalized"] is None


def test_first_and_last_touch_utm(api: PostgrestSession) -> None:
    phone = unique_phone()
    t0 = dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    record(api, p_phone=phone, p_occurred_at=t0)  # no UTM: not a touch
    record(
        api,
        p_phone=phone,
        p_utm_source="fb_arystan",
        p_utm_campaign="nov",
        p_occurred_at=t0 + dt.timedelta(1),
    )
    record(api, p_phone=phone, p_utm_source="ig_arystan", p_utm_term="kw", p_occurred_at=t0 + dt.timedelta(3))
    # a late-arriving earlier touch becomes the first touch; the last stays the latest
    lid = record(api, p_phone=phone, p_utm_source="tiktok", p_occurred_at=t0 + dt.timedelta(hours=12))[
        "lead_id"
    ]
    row = lead(api, lid)
    assert (row["first_utm_source"], row["first_utm_campaign"]) == ("tiktok", None)
    assert row["first_touch_at"] == t0 + dt.timedelta(hours=12)
    assert (row["last_utm_source"], row["last_utm_term"]) == ("ig_arystan", "kw")
    assert row["utm_source"] == "tiktok"
    assert row["created_at"] == t0


def test_event_key_makes_a_retry_a_no_op(api: PostgrestSession) -> None:
    phone, key = unique_phone(), f"fb-leadgen-{uuid.uuid4()}"
    first = record(api, p_phone=phone, p_stage="proftest_submitted", p_event_key=key)
    retry = record(api, p_phone="8" + phone[2:], p_stage="proftest_submitted", p_event_key=key, p_name="Late")
    assert first["event_recorded"] and not retry["event_recorded"]
    assert retry["lead_id"] == first["lead_id"] and not retry["created"]
    assert len(journey(api, first["lead_id"])) == 1
    assert lead(api, first["lead_id"])["name"] is None  # a replay changes nothing


def test_phone_and_email_of_two_leads_merge_into_the_older(api: PostgrestSession) -> None:
    phone, email = unique_phone(), f"m-{uuid.uuid4().hex[:6]}@example.kz"
    older = record(
        api,
        p_phone=phone,
        p_utm_source="fb_arystan",
        p_stage="proftest_submitted",
        p_occurred_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC),
    )
    newer = record(
        api,
        p_email=email,
        p_name="Асель",
        p_stage="expresscourse_clicked",
        p_occurred_at=dt.datetime(2026, 10, 5, tzinfo=dt.UTC),
    )
    both = record(api, p_phone=phone, p_email=email, p_stage="expresscourse_submitted")
    assert both["merged"] and both["lead_id"] == older["lead_id"]
    winner, loser = lead(api, older["lead_id"]), lead(api, newer["lead_id"])
    assert loser["merged_into"] == winner["id"] and loser["merged_at"] is not None
    assert winner["name"] == "Асель" and winner["email_normalized"] == email  # gaps filled from the loser
    assert winner["utm_source"] == "fb_arystan"
    stages = [j["stage"] for j in journey(api, winner["id"])]
    assert stages == ["proftest_submitted", "expresscourse_clicked", "expresscourse_submitted"]
    moved = [j for j in journey(api, winner["id"]) if j["moved_from_lead_id"] == loser["id"]]
    assert len(moved) == 1
    merges = api.query(SERVICE, "select * from public.traffic_lead_merges where loser_id = %s", [loser["id"]])
    assert merges[0]["winner_id"] == winner["id"] and merges[0]["journey_rows_moved"] == 1
    assert merges[0]["matched_on"] == {"phone": phone, "email": email}
    # afterwards either identifier finds the survivor
    assert record(api, p_email=email.upper())["lead_id"] == winner["id"]
    assert len(live_leads(api, phone, email)) == 1


def test_secondary_identifiers_still_find_the_person(api: PostgrestSession) -> None:
    phone, other_phone = unique_phone(), unique_phone()
    email = f"s-{uuid.uuid4().hex[:6]}@example.kz"
    a = record(api, p_phone=phone, p_email=email)
    b = record(api, p_phone=other_phone, p_email=email)  # new phone, known email: same person
    c = record(api, p_phone=other_phone)  # found by the secondary phone
    assert a["lead_id"] == b["lead_id"] == c["lead_id"]
    assert lead(api, a["lead_id"])["phone_normalized"] == phone  # the first phone stays primary


def test_a_name_only_lead_is_stored_and_flagged(api: PostgrestSession) -> None:
    row = record(api, p_name="Only a name", p_phone="call me maybe")
    assert row["created"] and row["no_identifier"]
    stored = lead(api, row["lead_id"])
    assert stored["phone"] == "call me maybe" and stored["phone_normalized"] is None


def test_legacy_source_spellings_are_canonical_and_the_original_kept(api: PostgrestSession) -> None:
    for spelling in ("proftest", "ProfTest", "prof-test", "PROF TEST", "profitest"):
        row = lead(api, record(api, p_phone=unique_phone(), p_source=spelling)["lead_id"])
        assert row["source"] == "profitest" and row["source_raw"] == spelling


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        ({}, "22023", "needs at least one of p_name, p_email, p_phone"),
        ({"p_name": "   ", "p_phone": ""}, "22023", "needs at least one of"),
        ({"p_name": "x" * 201}, "22001", "p_name is too long: 201 characters, at most 200"),
        ({"p_phone": "1" * 65}, "22001", "p_phone is too long"),
        ({"p_phone": "+77011234567", "p_utm_source": "u" * 256}, "22001", "p_utm_source is too long"),
        (
            {"p_phone": "+77011234567", "p_metadata": ["not", "an", "object"]},
            "22023",
            "p_metadata must be a JSON object",
        ),
        ({"p_phone": "+77011234567", "p_stage": "Payment Done!"}, "22023", "is not a valid stage name"),
        ({"p_phone": "+77011234567", "p_event_key": "  "}, "22023", "p_event_key must not be empty"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(
    api: PostgrestSession, args: dict, code: str, needle: str
) -> None:
    before = api.query(SERVICE, "select count(*) as n from public.traffic_leads")[0]["n"]
    with pytest.raises(ApiError) as err:
        api.rpc(SERVICE, "find_or_create_unified_lead", **args)
    assert err.value.code == code and needle in err.value.message
    assert err.value.hint and err.value.status == 400
    assert api.query(SERVICE, "select count(*) as n from public.traffic_leads")[0]["n"] == before


@pytest.mark.parametrize(
    "stage",
    ["undefined", "null", "nil", "NaN", " nan\r\n", "[object Object]", "{{stage}}", "%7B%7Bstage%7D%7D"],
)
def test_a_placeholder_stage_is_refused_and_nothing_recorded(api: PostgrestSession, stage: str) -> None:
    """'undefined', 'null', 'nil' and 'nan' are snake_case: they were recorded as journey
    stages and the dashboard counted them (20261216100000). The import quarantines them."""
    counts = "select (select count(*) from public.traffic_leads) as leads, (select count(*) from public.traffic_lead_journey) as journey"
    before = api.query(SERVICE, counts)[0]
    with pytest.raises(ApiError) as err:
        api.rpc(SERVICE, "find_or_create_unified_lead", p_phone=unique_phone(), p_stage=stage)
    assert err.value.code == "22023" and err.value.status == 400
    assert (
        err.value.message
        == f"p_stage {_literal(stage)} is a placeholder a script sent for a missing value, not a stage"
    )
    assert "Leave p_stage out" in err.value.hint
    assert api.query(SERVICE, counts)[0] == before


def test_a_blank_stage_is_lead_captured_and_a_stage_word_is_kept(api: PostgrestSession) -> None:
    blank = record(api, p_phone=unique_phone(), p_stage=" \u200b\t")
    assert lead(api, blank["lead_id"])["stages"] == ["lead_captured"]
    # only a placeholder is refused: a stage that merely contains such a word is a stage
    named = record(api, p_phone=unique_phone(), p_stage="null_result_shown")
    assert lead(api, named["lead_id"])["stages"] == ["null_result_shown"]


def _literal(value: str) -> str:
    """format('%L', value) for the values above (no backslash, no quote)."""
    return "'" + value + "'"


def test_journey_cannot_be_lost_by_deleting_a_lead(api: PostgrestSession) -> None:
    row = record(api, p_phone=unique_phone(), p_stage="proftest_submitted")
    with pytest.raises(ApiError) as err:
        api.query(SERVICE, "delete from public.traffic_leads where id = %s", [row["lead_id"]])
    assert err.value.code == "23503" and err.value.status == 409


def test_two_live_leads_cannot_share_a_phone_even_when_written_directly(api: PostgrestSession) -> None:
    phone = unique_phone()
    api.query(SERVICE, "insert into public.traffic_leads (phone) values (%s)", [phone])
    with pytest.raises(ApiError) as err:
        api.query(SERVICE, "insert into public.traffic_leads (phone) values (%s)", ["8" + phone[2:]])
    assert err.value.code == "23505"


def test_a_merged_leads_own_phone_still_finds_the_person(api: PostgrestSession) -> None:
    """A lead written straight into traffic_leads never had its identifiers registered; once
    it is merged its phone must still find the survivor, not start a second lead."""
    y_phone, x_phone = unique_phone(), unique_phone()
    x_email = f"x-{uuid.uuid4().hex[:8]}@example.kz"
    y = record(api, p_phone=y_phone, p_email=f"y-{uuid.uuid4().hex[:8]}@example.kz")
    api.query(SERVICE, "insert into public.traffic_leads (email, phone) values (%s, %s)", [x_email, x_phone])
    both = record(api, p_phone=y_phone, p_email=x_email)
    assert both["merged"] and both["lead_id"] == y["lead_id"]
    again = record(api, p_phone=x_phone)
    assert (again["lead_id"], again["created"]) == (y["lead_id"], False)
    assert live_leads(api, phone=x_phone) == []  # no second lead holds it


def test_a_phone_with_digits_of_another_script_is_no_one_elses_number(api: PostgrestSession) -> None:
    """'٠٠١ 415 555 2671' is +1 415 555 2671 written with Arabic-Indic digits for "001".
    Before 20261214100200 they were taken for a label and the rest read as a number, so a
    stranger's lead got this person's email (found by review)."""
    phone = unique_phone()
    ivan = record(api, p_phone=phone, p_email=f"ivan-{uuid.uuid4().hex[:8]}@example.kz")
    john = record(api, p_phone=f"٠٠١ {phone[2:]}", p_email=f"john-{uuid.uuid4().hex[:8]}@example.com")
    assert john["created"] and john["lead_id"] != ivan["lead_id"]
    row = lead(api, john["lead_id"])
    assert row["phone"] == f"٠٠١ {phone[2:]}" and row["phone_normalized"] is None  # kept raw


def stored_before(conn: psycopg.Connection, lead_id: uuid.UUID, **values: object) -> None:
    """Put back what the rules before a migration stored, with the triggers off."""
    conn.execute("set session_replication_role = replica")
    assignments = ", ".join(f"{column} = %s" for column in values)
    conn.execute(f"update public.traffic_leads set {assignments} where id = %s", (*values.values(), lead_id))
    conn.execute("set session_replication_role = origin")


def test_leads_stored_with_a_misread_phone_are_renormalized_by_the_migration(superuser_url: str) -> None:
    """20261214100300 stores what the current rules read for a live lead whose phone was
    misread before 20261214100200 (the stale value is put back with the triggers off)."""
    migration = next(MIGRATIONS.glob("20261214100300_*.sql")).read_text()
    phone = unique_phone()
    with psycopg.connect(superuser_url) as conn:  # one transaction, rolled back
        lead_id = conn.execute(
            "insert into public.traffic_leads (name, phone) values ('John', %s) returning id",
            (f"٠٠١ {phone[2:]}",),
        ).fetchone()[0]
        stored_before(conn, lead_id, phone_normalized=phone)
        conn.execute(  # as the RPC registered it
            "insert into private.traffic_lead_identifiers (kind, value, lead_id) values ('phone', %s, %s)"
            " on conflict (kind, value) do update set lead_id = excluded.lead_id",
            (phone, lead_id),
        )
        conn.execute(migration)
        stored = conn.execute("select phone_normalized from public.traffic_leads where id = %s", (lead_id,))
        assert stored.fetchone() == (None,)
        # the number's owner gets a lead of their own (the registration sent them to John's)
        owner = conn.execute(
            "select lead_id, created from public.find_or_create_unified_lead(p_name => 'Ivan', p_phone => %s)",
            (phone,),
        ).fetchone()
        assert owner[0] != lead_id and owner[1], owner
        conn.rollback()


def test_a_removed_registration_comes_back_to_the_lead_its_owner_used(superuser_url: str) -> None:
    """20261217100000: 20261214100300 removed a misread number's registration also from a lead
    its owner had already reached with that number (their event is on it), and the owner's
    next call made a second live lead (found by a review of the upgrade path). The number comes
    back to that lead; a lead its owner never reached, and a number registered since, stay as
    they are."""
    migration = next(MIGRATIONS.glob("20261217100000_*.sql")).read_text()
    used, unused, taken = unique_phone(), unique_phone(), unique_phone()
    with psycopg.connect(superuser_url) as conn:  # one transaction, rolled back
        leads = {}
        for phone in (used, unused, taken):  # each stored with a digit of another script
            leads[phone] = conn.execute(
                "insert into public.traffic_leads (name, phone) values ('John', %s) returning id",
                (f"٠٠١ {phone[2:]}",),
            ).fetchone()[0]
        for phone in (used, taken):  # the owner's call, found on the misread lead before the repair
            conn.execute(
                "insert into public.traffic_lead_journey (lead_id, stage, input, occurred_at)"
                " values (%s, 'proftest_submitted', %s, now() - interval '1 day')",
                (leads[phone], Jsonb({"phone": f"8 {phone[2:5]} {phone[5:]}", "email": "owner@example.com"})),
            )
        other = conn.execute(  # the owner of `taken` came back after the repair: a lead of their own
            "select lead_id from public.find_or_create_unified_lead(p_name => 'Ivan', p_phone => %s)",
            (taken,),
        ).fetchone()[0]
        conn.execute(migration)
        registered = dict(
            conn.execute(
                "select value, lead_id from private.traffic_lead_identifiers where kind = 'phone' and value = any(%s)",
                ([used, unused, taken],),
            ).fetchall()
        )
        assert registered == {used: leads[used], taken: other}, registered
        owner = conn.execute(
            "select lead_id, created from public.find_or_create_unified_lead(p_phone => %s)", (used,)
        ).fetchone()
        assert owner == (leads[used], False), owner
        conn.execute(migration)  # a second run changes nothing
        again = conn.execute(
            "select count(*) from private.traffic_lead_identifiers where kind = 'phone' and value = any(%s)",
            ([used, unused, taken],),
        ).fetchone()
        assert again == (2,)
        conn.rollback()


@pytest.mark.parametrize("typed", ["{} (доб. 101)", "{}(ext.7)", "{} [x 12]", "{} ( Доб 5 );"])
def test_a_phone_with_an_extension_in_brackets_finds_the_lead(api: PostgrestSession, typed: str) -> None:
    """libphonenumber reads an extension in brackets; before 20261215100000 such a phone was
    NULL, and each call made a lead of its own with no identifier."""
    phone = unique_phone()
    first = record(api, p_phone=phone, p_name="Айгуль")
    again = record(api, p_phone=typed.format(f"8 {phone[2:5]} {phone[5:]}"))
    assert (again["lead_id"], again["created"]) == (first["lead_id"], False)


@pytest.mark.parametrize("pasted", ["{}.", "{}, ", "mailto:{}", "\u202a{}\u202c", "<{}>;", "\u200e{}\u200e"])
def test_an_email_pasted_with_its_surroundings_finds_the_lead(api: PostgrestSession, pasted: str) -> None:
    """Each made a lead of its own (no identifier) before 20261214100400 (found by review)."""
    email = f"aigul.t-{uuid.uuid4().hex[:8]}@mail.kz"
    first = record(api, p_email=email, p_name="Айгуль")
    again = record(api, p_email=pasted.format(email.upper()))
    assert (again["lead_id"], again["created"]) == (first["lead_id"], False)


def _unread_email() -> tuple[str, str]:
    email = f"aigul.t-{uuid.uuid4().hex[:8]}@mail.kz"
    return f"mailto:{email}.", email


def _unread_phone() -> tuple[str, str]:
    phone = unique_phone()
    return f"{phone} (доб. 101)", phone


@pytest.mark.parametrize(
    ("migration", "column", "unread"),
    [("20261214100500", "email", _unread_email), ("20261215100100", "phone", _unread_phone)],
    ids=["pasted-email", "bracketed-extension"],
)
def test_leads_stored_with_an_unread_identifier_are_renormalized_by_the_migration(
    superuser_url: str, migration: str, column: str, unread: Callable[[], tuple[str, str]]
) -> None:
    """20261214100500 (a pasted email) and 20261215100100 (a phone with an extension in
    brackets): a live lead whose value was no identifier gets it, and the lead of the same
    value made meanwhile is merged into the older one."""
    sql = next(MIGRATIONS.glob(f"{migration}_*.sql")).read_text()
    raw, value = unread()
    with psycopg.connect(superuser_url) as conn:  # one transaction, rolled back
        older = conn.execute(
            f"insert into public.traffic_leads (name, {column}) values ('Aigul', %s) returning id", (raw,)
        ).fetchone()[0]
        stored_before(conn, older, **{f"{column}_normalized": None, "no_identifier": True})
        newer = conn.execute(
            f"insert into public.traffic_leads (name, {column}, created_at) values ('Aigul', %s, now() + interval '1 s')"
            " returning id",
            (value,),
        ).fetchone()[0]
        conn.execute(sql)
        rows = dict(
            conn.execute(
                f"select id, ({column}_normalized, merged_into) from public.traffic_leads where id in (%s, %s)",
                (older, newer),
            ).fetchall()
        )
        assert rows[older] == (value, None) and rows[newer][1] == str(older), rows
        conn.rollback()


@pytest.mark.parametrize("how", ["inserted", "updated"])
def test_a_lead_written_directly_with_a_registered_second_phone_is_merged(
    api: PostgrestSession, how: str
) -> None:
    """A phone registered as one lead's second phone, then written straight into another
    live lead's row (an insert, or an update of its phone), sent every later call to the
    registered lead and left the person with two live leads for ever (found by identity
    review): the lookup read the leads' own columns only when no identifier named the value."""
    phone, second = unique_phone(), unique_phone()
    email = f"reg-{uuid.uuid4().hex[:8]}@example.kz"
    registered = record(api, p_phone=phone, p_email=email)
    record(api, p_phone=second, p_email=email)  # `second` is registered for it, its own phone stays
    assert lead(api, registered["lead_id"])["phone_normalized"] == phone
    if how == "inserted":
        (direct,) = api.query(
            SERVICE,
            "insert into public.traffic_leads (name, phone) values ('Direct', %s) returning id",
            [second],
        )
    else:
        (direct,) = api.query(
            SERVICE,
            "insert into public.traffic_leads (name, phone) values ('Direct', %s) returning id",
            [unique_phone()],
        )
        api.query(
            SERVICE,
            "update public.traffic_leads set phone = %s where id = %s",
            ["8" + second[2:], direct["id"]],
        )
    call = record(api, p_phone=second, p_stage="expresscourse_clicked")
    assert call["merged"] and call["lead_id"] == registered["lead_id"]
    assert lead(api, direct["id"])["merged_into"] == registered["lead_id"]
    assert live_leads(api, phone=second) == []  # the survivor keeps its own phone; `second` is registered
    assert record(api, p_phone=second)["lead_id"] == registered["lead_id"]
    merges = api.query(
        SERVICE, "select * from public.traffic_lead_merges where loser_id = %s", [direct["id"]]
    )
    assert merges[0]["winner_id"] == registered["lead_id"] and merges[0]["matched_on"]["phone"] == second


def test_three_leads_of_one_person_are_merged_in_one_call(api: PostgrestSession) -> None:
    """The phone's registered lead, the email's lead and a lead written directly with that
    phone: one call merges all three into the oldest (after a merge the lookup runs again)."""
    phone, second = unique_phone(), unique_phone()
    email, email_b = f"three-{uuid.uuid4().hex[:8]}@example.kz", f"three-{uuid.uuid4().hex[:8]}@example.kz"
    registered = record(api, p_phone=phone, p_email=email)
    record(api, p_phone=second, p_email=email)
    by_email = record(api, p_email=email_b)
    (direct,) = api.query(
        SERVICE, "insert into public.traffic_leads (name, phone) values ('Direct', %s) returning id", [second]
    )
    call = record(api, p_phone=second, p_email=email_b)
    assert call["merged"] and call["lead_id"] == registered["lead_id"]
    for loser in (by_email["lead_id"], direct["id"]):
        assert lead(api, loser)["merged_into"] == registered["lead_id"]
    assert live_leads(api, phone=second, email=email_b) == []  # only merged leads hold them in their rows
    assert lead(api, registered["lead_id"])["email_normalized"] == email
    # both are registered for the survivor: a later call by either alone finds it
    assert record(api, p_phone=second)["lead_id"] == registered["lead_id"]
    assert record(api, p_email=email_b.upper())["lead_id"] == registered["lead_id"]


def test_a_directly_written_email_is_read_with_the_rpcs_blanks(api: PostgrestSession) -> None:
    """An email written straight into traffic_leads with a zero-width space (copied from a
    messenger) was no identifier, and the same address through the RPC made a second lead
    (found by review): the trigger's normalize_email trimmed fewer blanks than the RPC."""
    email = f"zw-{uuid.uuid4().hex[:8]}@example.kz"
    (direct,) = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, email) values ('Aigerim', %s)"
        " returning id, email_normalized, no_identifier",
        [f"\ufeff{email.upper()}\u200b\u3000"],
    )
    assert (direct["email_normalized"], direct["no_identifier"]) == (email, False)
    found = record(api, p_email=f"{email}\u200b")
    assert (found["lead_id"], found["created"]) == (direct["id"], False)


def test_two_leads_without_stages_merge(api: PostgrestSession) -> None:
    """Leads written straight into traffic_leads have no stages ('{}'): merging two of them
    gave the survivor NULL stages and failed with 23502, losing the call's event."""
    phone, email = unique_phone(), f"nostage-{uuid.uuid4().hex[:8]}@example.kz"
    older = api.query(SERVICE, "insert into public.traffic_leads (phone) values (%s) returning id", [phone])[
        0
    ]["id"]
    api.query(SERVICE, "insert into public.traffic_leads (email) values (%s)", [email])
    row = record(api, p_phone=phone, p_email=email, p_event_key=f"nostage-{phone}")
    assert (row["lead_id"], row["merged"], row["event_recorded"]) == (older, True, True)
    assert lead(api, older)["stages"] == ["lead_captured"]


@pytest.mark.parametrize("role", ["service_role", "sales_manager"])
def test_direct_writes_work_on_a_fresh_connection(authenticator_url: str, cast, role: str) -> None:
    """No cached plan from an earlier RPC call may hide a missing permission in a trigger."""
    import json

    import psycopg

    actor = SERVICE if role == "service_role" else cast.sales_manager
    with psycopg.connect(authenticator_url) as conn:
        try:
            conn.execute(
                "select set_config('role', %s, true), set_config('request.jwt.claims', %s, true)",
                (actor.role, json.dumps(actor.claims())),
            )
            if role == "service_role":
                row = conn.execute(
                    "insert into public.traffic_leads (name, phone, email) values ('Direct', '8 701 999 00 11',"
                    " ' Direct@Example.KZ') returning phone_normalized, email_normalized, no_identifier"
                ).fetchone()
                assert row == ("+77019990011", "direct@example.kz", False)
            else:
                conn.execute("select 1 from public.traffic_leads limit 1")
                updated = conn.execute(
                    "update public.traffic_leads set name = name where id in"
                    " (select id from public.traffic_leads limit 1) returning id"
                ).fetchall()
                assert isinstance(updated, list)
        finally:
            conn.rollback()


def _stage_candidates() -> list[str]:
    """Edge cases of the snake_case stage rule and random strings around its limits."""
    import random

    rnd = random.Random(20261122)
    edges = [
        "a",
        "z",
        "a" * 63,
        "a" * 64,
        "a" + "_" * 62,
        "a" + "9" * 63,
        "_a",
        "1a",
        "A",
        "aB",
        "a-b",
        "a b",
        "a\n",
        "\na",
        "é",
        "aé",
        "a.b",
        "payment_done",
        "proftest_submitted",
        "",
        " a",
    ]
    alphabet = "az09_AZé- ."
    randoms = [
        "".join(rnd.choice(alphabet) for _ in range(rnd.choice([0, 1, 2, 5, 61, 62, 63, 64, 65, 70])))
        for _ in range(300)
    ]
    # mostly valid shapes near the length limit, where the two forms could disagree
    near = [
        "a" + "".join(rnd.choice("abz09_") for _ in range(n)) for n in (60, 61, 62, 63, 64) for _ in range(20)
    ]
    return edges + randoms + near


def test_journey_stage_check_accepts_exactly_what_the_original_pattern_did(db_url: str) -> None:
    """20261122130000 replaced `^[a-z][a-z0-9_]{0,62}$` (slow) by `^[a-z][a-z0-9_]*$` and a
    length test; the old pattern is the oracle for which stages a direct write may use."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        lead_id = conn.execute(
            "insert into public.traffic_leads (name) values ('stage check') returning id"
        ).fetchone()[0]
        disagreements = []
        for candidate in _stage_candidates():
            expected = conn.execute("select %s ~ '^[a-z][a-z0-9_]{0,62}$'", [candidate]).fetchone()[0]
            try:
                with conn.transaction():
                    conn.execute(
                        "insert into public.traffic_lead_journey (lead_id, stage) values (%s, %s)",
                        [lead_id, candidate],
                    )
                accepted = True
            except psycopg.errors.CheckViolation as err:
                assert err.diag.constraint_name == "traffic_lead_journey_values_check"
                accepted = False
            if accepted != expected:
                disagreements.append((candidate, expected, accepted))
        conn.rollback()
    assert not disagreements, disagreements


def test_empty_utm_fields_are_no_touch_and_do_not_take_the_attribution(api: PostgrestSession) -> None:
    """Forms post every UTM field, usually empty: '' is NULL, and only a touch naming a
    utm_source is a first or last touch (20261122130100)."""
    phone = unique_phone()
    blank = {"p_utm_source": "", "p_utm_medium": " ", "p_utm_campaign": ""}
    first = record(api, p_phone=phone, **blank)
    record(api, p_phone=phone, p_utm_source=" FB_Arystan ", p_utm_campaign="nov")
    record(api, p_phone=phone, **blank)
    record(api, p_phone=phone, p_utm_medium="cpc")  # no source: not a touch either
    row = lead(api, first["lead_id"])
    assert (row["utm_source"], row["first_utm_source"], row["first_utm_campaign"]) == (
        "fb_arystan",
        "FB_Arystan",
        "nov",
    )
    assert (row["last_utm_source"], row["last_utm_campaign"], row["last_utm_medium"]) == (
        "FB_Arystan",
        "nov",
        None,
    )
    events = journey(api, first["lead_id"])
    assert [(j["utm_source"], j["utm_medium"]) for j in events] == [
        (None, None),
        ("FB_Arystan", None),
        (None, None),
        (None, "cpc"),
    ]


def test_a_new_lead_without_a_utm_source_has_no_touch(api: PostgrestSession) -> None:
    row = lead(api, record(api, p_phone=unique_phone(), p_utm_medium="cpc", p_utm_campaign="nov")["lead_id"])
    assert row["first_touch_at"] is None and row["first_utm_medium"] is None and row["utm_source"] is None


@pytest.mark.parametrize(
    "occurred_at",
    [
        "'-infinity'::timestamptz",
        "'infinity'::timestamptz",
        "'1969-12-31 23:59:59+00'",
        "now() + interval '2 days'",
    ],
)
def test_an_absurd_event_time_is_rejected(api: PostgrestSession, occurred_at: str) -> None:
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE,
            "select * from public.find_or_create_unified_lead(p_phone => %s,"
            f" p_occurred_at => {occurred_at})",
            [unique_phone()],
        )
    assert err.value.code == "22023" and "p_occurred_at" in err.value.message and err.value.hint


def test_event_times_in_range_are_accepted(api: PostgrestSession) -> None:
    for at in (dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime.now(dt.UTC) + dt.timedelta(hours=20)):
        assert record(api, p_phone=unique_phone(), p_occurred_at=at)["created"]


def _blob(n: int) -> str:
    """n characters that do not compress, so the stored size is about n bytes."""
    return "".join(uuid.uuid4().hex for _ in range(n // 32 + 1))[:n]


def test_gap_filling_never_pushes_metadata_past_its_limit(api: PostgrestSession) -> None:
    phone = unique_phone()
    first = record(api, p_phone=phone, p_metadata={"a": _blob(45_000)})
    second = record(api, p_phone=phone, p_metadata={"b": _blob(45_000)}, p_event_key=f"big-{phone}")
    assert second["lead_id"] == first["lead_id"] and second["event_recorded"]
    row = lead(api, first["lead_id"])
    assert set(row["metadata"]) == {"a"}  # the lead keeps its own
    assert "b" in journey(api, first["lead_id"])[-1]["metadata"]  # the event's is in its journey row
    small = record(api, p_phone=phone, p_metadata={"c": 1})
    assert small["event_recorded"] and set(lead(api, first["lead_id"])["metadata"]) == {"a", "c"}


def test_a_merge_never_fails_on_the_size_of_the_merged_metadata(api: PostgrestSession) -> None:
    phone, email = unique_phone(), f"big-{uuid.uuid4().hex[:8]}@example.kz"
    older = record(api, p_phone=phone, p_metadata={"a": _blob(45_000)})
    younger = record(api, p_email=email, p_metadata={"b": _blob(45_000)})
    both = record(api, p_phone=phone, p_email=email, p_stage="payment_succeeded")
    assert both["merged"] and both["lead_id"] == older["lead_id"]
    assert set(lead(api, older["lead_id"])["metadata"]) == {"a"}
    loser = lead(api, younger["lead_id"])
    assert loser["merged_into"] == older["lead_id"] and set(loser["metadata"]) == {"b"}


_TOUCHES_ARE_REAL = "traffic_leads_touch_sources_are_real"


def _as_before_the_touch_constraint(api: PostgrestSession) -> None:
    """The repairs ran before 20261210100100 refused placeholder sources on live leads; the
    tests make what those repairs found as it was then (the caller rolls back)."""
    api.conn.execute(f"alter table public.traffic_leads drop constraint {_TOUCHES_ARE_REAL}")


def test_repair_of_stored_touches_follows_the_new_rule(db_url: str) -> None:
    """20261122130200 run again over leads stored under the old rule: first/last touch
    recomputed from the journey, and a lead with no source-naming event keeps no touch. As
    the owner (to make the old state); rolled back at the end."""
    with psycopg.connect(db_url) as conn:
        try:
            _repair_stored_touches(PostgrestSession(conn))
        finally:
            conn.rollback()


def _repair_stored_touches(api: PostgrestSession) -> None:
    from pathlib import Path

    _as_before_the_touch_constraint(api)
    phone, other = unique_phone(), unique_phone()
    t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    row = record(api, p_phone=phone, p_occurred_at=t0)
    record(
        api, p_phone=phone, p_utm_source="fb_muha", p_utm_term="x", p_occurred_at=t0 + dt.timedelta(hours=1)
    )
    record(api, p_phone=phone, p_utm_source="ig_muha", p_occurred_at=t0 + dt.timedelta(hours=2))
    lonely = record(api, p_phone=other)
    # a row imported from Landing's lead_journey: UTM from its metadata, never a touch
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, utm_source, legacy_source_table, legacy_id)"
        " values (%s, 'proftest_submitted', 'tiktok', 'lead_journey', '1')",
        [lonely["lead_id"]],
    )
    # what the old rule stored for such calls: a blank first touch, a blank last touch
    for lead_id in (row["lead_id"], lonely["lead_id"]):
        api.query(
            SERVICE,
            "update public.traffic_leads set first_utm_source = '', first_utm_term = null, first_touch_at = %s,"
            " last_utm_source = '', last_touch_at = %s where id = %s",
            [t0 - dt.timedelta(days=1), t0 + dt.timedelta(days=1), lead_id],
        )
    assert lead(api, row["lead_id"])["utm_source"] == ""
    repair = Path(__file__).parents[1] / "supabase/migrations/20261122130200_repair_lead_touches.sql"
    api.query(SERVICE, repair.read_text())
    fixed = lead(api, row["lead_id"])
    assert (fixed["utm_source"], fixed["first_utm_term"], fixed["first_touch_at"]) == (
        "fb_muha",
        "x",
        t0 + dt.timedelta(hours=1),
    )
    assert (fixed["last_utm_source"], fixed["last_touch_at"]) == ("ig_muha", t0 + dt.timedelta(hours=2))
    alone = lead(api, lonely["lead_id"])
    assert alone["first_touch_at"] is None and alone["last_touch_at"] is None and alone["utm_source"] is None


def test_utm_placeholders_are_no_touch_and_do_not_take_the_attribution(api: PostgrestSession) -> None:
    """A script's text for a missing value and an unexpanded ad macro are no UTM value for the
    touch (20261208100100): the lead is attributed by its real source, and each journey row
    keeps what was sent."""
    phone = unique_phone()
    t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    first = record(
        api, p_phone=phone, p_utm_source="undefined", p_utm_campaign="{{campaign.name}}", p_occurred_at=t0
    )
    record(
        api,
        p_phone=phone,
        p_utm_source="FB_Arystan",
        p_utm_campaign="{{campaign.name}}",
        p_utm_content="ad_1",
        p_occurred_at=t0 + dt.timedelta(hours=1),
    )
    record(
        api,
        p_phone=phone,
        p_utm_source="%7B%7Bsite_source_name%7D%7D",
        p_occurred_at=t0 + dt.timedelta(hours=2),
    )
    row = lead(api, first["lead_id"])
    touch = (row["first_touch_at"], row["first_utm_campaign"], row["first_utm_content"])
    assert (row["utm_source"], row["last_utm_source"]) == ("fb_arystan", "FB_Arystan")
    assert touch == (t0 + dt.timedelta(hours=1), None, "ad_1")
    assert row["last_touch_at"] == t0 + dt.timedelta(hours=1)
    events = journey(api, first["lead_id"])
    assert [(j["utm_source"], j["utm_campaign"]) for j in events] == [
        ("undefined", "{{campaign.name}}"),
        ("FB_Arystan", "{{campaign.name}}"),
        ("%7B%7Bsite_source_name%7D%7D", None),
    ]
    only = record(api, p_phone=unique_phone(), p_utm_source="null", p_utm_medium="cpc")
    assert lead(api, only["lead_id"])["first_touch_at"] is None


@pytest.mark.parametrize(
    "value",
    ["undefined", "Undefined", "null", "NULL", "(null)", "nil", "<nil>", "NaN", "[object Object]",
     "[object Undefined]", "(not set)", "(none)", "(direct)", "(not provided)", "{{campaign.name}}",
     "{{adset.name}}", "{campaignid}", "{keyword}", "sale_{campaign_id}", "%7B%7Bcampaign.name%7D%7D",
     "%7bkeyword%7d", "%257B%257Bcampaign.name%257D%257D", "__CAMPAIGN_NAME__", "__CID__", "*|CAMPAIGN|*",
     "", "\u200b", " undefined\r\n", "\u00a0(direct)\t"],
)  # fmt: skip
def test_a_utm_placeholder_is_no_touch_value(owner_conn: psycopg.Connection, value: str) -> None:
    got = owner_conn.execute("select private.utm_touch_value(%s)", [value]).fetchone()
    assert got == (None,), value


@pytest.mark.parametrize(
    "value",
    ["fb_arystan", "FB_Arystan", "google", "nonexistent", "nullify", "none_such", "cpc", "ad_1",
     "proftest_autumn", "100%_sale", "sale_50%7days", "%7d_then_%7b", "a__b__c", "__", "____", "Лето-2026",
     "instagram.stories", "none", "direct", "a|b*c"],
)  # fmt: skip
def test_a_real_utm_value_is_kept_for_the_touch(owner_conn: psycopg.Connection, value: str) -> None:
    """Real values stay, among them a bare ``none``, which Yandex Direct sends ({source} on
    search, found by review), and a literal percent sign before 7d (found by review)."""
    got = owner_conn.execute("select private.utm_touch_value(%s)", [value]).fetchone()
    assert got == (value,)
    padded = owner_conn.execute("select private.utm_touch_value(%s)", [f"\u00a0{value}\r\n"]).fetchone()
    assert padded == (value,)  # trimmed of the blanks the RPC trims


def test_repair_of_placeholder_touches(db_url: str) -> None:
    """20261208100200 run again over leads stored before placeholders were no value: a
    placeholder source's touches are recomputed from the journey, a placeholder in another
    field of a real touch becomes NULL, a real touch is left as it is. As the migration runs:
    as the owner; all rolled back at the end."""

    with psycopg.connect(db_url) as conn:
        try:
            _repair_placeholder_touches(PostgrestSession(conn))
        finally:
            conn.rollback()


def _repair_placeholder_touches(api: PostgrestSession) -> None:
    from pathlib import Path

    _as_before_the_touch_constraint(api)
    phone, other, fine = unique_phone(), unique_phone(), unique_phone()
    t0 = dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC)
    row = record(api, p_phone=phone, p_utm_source="undefined", p_occurred_at=t0)
    record(
        api, p_phone=phone, p_utm_source="fb_muha", p_utm_term="x", p_occurred_at=t0 + dt.timedelta(hours=1)
    )
    macro = record(api, p_phone=other, p_utm_source="ig_muha", p_utm_campaign="spring", p_occurred_at=t0)
    kept = record(api, p_phone=fine, p_utm_source="fb_kenesary", p_utm_campaign="autumn", p_occurred_at=t0)
    # what the old rule stored: the placeholder as the first touch, a macro as the campaign
    api.query(
        SERVICE,
        "update public.traffic_leads set first_utm_source = 'undefined', first_utm_term = null,"
        " first_touch_at = %s where id = %s",
        [t0, row["lead_id"]],
    )
    api.query(
        SERVICE,
        "update public.traffic_leads set first_utm_campaign = '{{campaign.name}}',"
        " last_utm_campaign = '{{campaign.name}}' where id = %s",
        [macro["lead_id"]],
    )
    # a lead inserted with its touches has no journey event behind them (found by review: the
    # repair wiped its real first touch); its real touch stays, the placeholder side takes it
    direct = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, first_utm_source, first_utm_campaign, first_touch_at,"
        " last_utm_source, last_touch_at, created_at) values ('Direct', %s, 'fb_arystan', 'nov', %s,"
        " 'undefined', %s, %s) returning id",
        [unique_phone(), t0, t0 + dt.timedelta(days=1), t0],
    )[0]["id"]
    mirrored = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, first_utm_source, first_touch_at,"
        " last_utm_source, last_utm_term, last_touch_at, created_at) values ('Mirror', %s, E'undefined\\r\\n',"
        " %s, 'ig_kenesary', 'x', %s, %s) returning id",
        [unique_phone(), t0, t0 + dt.timedelta(days=1), t0],
    )[0]["id"]
    before = lead(api, kept["lead_id"])
    assert lead(api, row["lead_id"])["utm_source"] == "undefined"
    repair = Path(__file__).parents[1] / "supabase/migrations/20261208100200_repair_placeholder_touches.sql"
    api.conn.execute(repair.read_text())
    fixed = lead(api, row["lead_id"])
    assert (fixed["utm_source"], fixed["first_utm_term"], fixed["first_touch_at"]) == (
        "fb_muha",
        "x",
        t0 + dt.timedelta(hours=1),
    )
    assert (fixed["last_utm_source"], fixed["last_touch_at"]) == ("fb_muha", t0 + dt.timedelta(hours=1))
    cleared = lead(api, macro["lead_id"])
    assert (cleared["utm_source"], cleared["first_utm_campaign"], cleared["last_utm_campaign"]) == (
        "ig_muha",
        None,
        None,
    )
    assert lead(api, kept["lead_id"]) == before
    alone = lead(api, direct)
    assert (alone["utm_source"], alone["first_utm_campaign"], alone["first_touch_at"]) == (
        "fb_arystan",
        "nov",
        t0,
    )
    assert (alone["last_utm_source"], alone["last_utm_campaign"], alone["last_touch_at"]) == (
        "fb_arystan",
        "nov",
        t0,
    )
    other_side = lead(api, mirrored)  # a placeholder with a line break after it (stored before trimming)
    assert (other_side["utm_source"], other_side["first_utm_term"], other_side["first_touch_at"]) == (
        "ig_kenesary",
        "x",
        t0 + dt.timedelta(days=1),
    )
    assert other_side["last_utm_source"] == "ig_kenesary"


def test_repair_of_touches_from_merged_leads(db_url: str) -> None:
    """20261209100100 run again over live leads whose touches 20261208100200 recomputed
    without the leads merged into them (found by review): a merged lead's real touch that is
    earlier (later) than the live lead's, or the only one, becomes its first (last) touch, a
    placeholder in another field of it NULL; a lead whose merges decided its touches stays
    as it is, and a second run changes nothing. As the owner; rolled back at the end."""
    with psycopg.connect(db_url) as conn:
        try:
            _repair_touches_from_merged_leads(PostgrestSession(conn))
        finally:
            conn.rollback()


def _merged_pair(
    api: PostgrestSession, t0: dt.datetime, source: str, medium: str
) -> tuple[uuid.UUID, uuid.UUID]:
    """A live lead from the RPC merged with a lead the service role inserted with touches."""
    phone, email = unique_phone(), f"merged-{uuid.uuid4().hex[:8]}@example.kz"
    live = record(api, p_phone=phone, p_occurred_at=t0)["lead_id"]
    inserted = api.query(
        SERVICE,
        "insert into public.traffic_leads (email, first_utm_source, first_utm_medium, first_touch_at,"
        " last_utm_source, last_utm_medium, last_touch_at, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s)"
        " returning id",
        [email, source, medium, t0 + dt.timedelta(days=1), source, medium, t0 + dt.timedelta(days=1), t0],
    )[0]["id"]
    merged = record(api, p_phone=phone, p_email=email, p_occurred_at=t0 + dt.timedelta(days=2))
    assert merged["merged"] and merged["lead_id"] == live
    return live, inserted


def _repair_touches_from_merged_leads(api: PostgrestSession) -> None:
    from pathlib import Path

    _as_before_the_touch_constraint(api)
    t0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    # the only real touch is the merged lead's; the old repair left the live lead none
    alone, _ = _merged_pair(api, t0, "fb_muha", "undefined")
    # the merged lead's touch is earlier than the live lead's, which the old repair took later
    later, _ = _merged_pair(api, t0, "ig_kenesary", "cpc")
    # the live lead's own touch is earlier: the merge decided it, nothing changes
    decided, _ = _merged_pair(api, t0, "fb_arystan", "cpc")
    touches = (
        "first_utm_source, first_utm_medium, first_touch_at, last_utm_source, last_utm_medium, last_touch_at"
    )
    api.query(
        SERVICE,
        f"update public.traffic_leads set ({touches}) = (null, null, null, null, null, null) where id = %s",
        [alone],
    )
    api.query(
        SERVICE,
        f"update public.traffic_leads set ({touches}) = ('fb_arystan', null, %s, 'fb_arystan', null, %s)"
        " where id in (%s, %s)",
        [t0 + 3 * day, t0 + 3 * day, later, decided],
    )
    api.query(
        SERVICE,
        "update public.traffic_leads set first_utm_source = 'ig_arystan', first_touch_at = %s where id = %s",
        [t0, decided],
    )
    before = lead(api, decided)
    repair = (
        Path(__file__).parents[1] / "supabase/migrations/20261209100100_repair_touches_from_merged_leads.sql"
    )
    api.conn.execute(repair.read_text())

    def touch(lead_id: uuid.UUID) -> tuple:
        row = lead(api, lead_id)
        return tuple(row[c] for c in touches.split(", "))

    assert touch(alone) == ("fb_muha", None, t0 + day, "fb_muha", None, t0 + day)
    assert touch(later) == ("ig_kenesary", "cpc", t0 + day, "fb_arystan", None, t0 + 3 * day)
    assert lead(api, decided) == before
    after = {i: lead(api, i) for i in (alone, later, decided)}
    api.conn.execute(repair.read_text())
    assert {i: lead(api, i) for i in (alone, later, decided)} == after


def test_live_leads_recompute_touches_from_every_real_touch(db_url: str) -> None:
    """20261210100100 run again over the leads its review found (as the owner, the constraint
    it adds dropped first so the old states can be made; rolled back at the end): a merged
    lead's real last touch behind a placeholder first touch becomes the live lead's first
    touch (20261209100100 offered first touches only), a merged lead's real first touch its
    last touch too, a placeholder a merge took from a directly inserted lead gives way to the
    lead's real touches (its journey's events among them), blanks around a source go, a
    journey row the service role wrote directly is no touch, and a second run changes
    nothing."""
    with psycopg.connect(db_url) as conn:
        try:
            _recompute_touches_from_every_real_touch(PostgrestSession(conn))
        finally:
            conn.rollback()


def _direct_lead(api: PostgrestSession, t0: dt.datetime, first: tuple, last: tuple) -> tuple[uuid.UUID, str]:
    """A lead the service role inserts with its touches ((source, medium, at) each), by email,
    created after the RPC's leads of the test, so a merge keeps those."""
    email = f"direct-{uuid.uuid4().hex[:8]}@example.kz"
    row = api.query(
        SERVICE,
        "insert into public.traffic_leads (email, first_utm_source, first_utm_medium, first_touch_at,"
        " last_utm_source, last_utm_medium, last_touch_at, created_at) values (%s, %s, %s, %s, %s, %s, %s, %s)"
        " returning id",
        [email, *first, *last, t0 + dt.timedelta(days=8)],
    )
    return row[0]["id"], email


def _recompute_touches_from_every_real_touch(api: PostgrestSession) -> None:
    from pathlib import Path

    _as_before_the_touch_constraint(api)
    t0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    touches = (
        "first_utm_source, first_utm_medium, first_touch_at, last_utm_source, last_utm_medium, last_touch_at"
    )

    def touch(lead_id: uuid.UUID) -> tuple:
        row = lead(api, lead_id)
        return tuple(row[c] for c in touches.split(", "))

    def merge_into(phone: str, email: str) -> uuid.UUID:
        merged = record(api, p_phone=phone, p_email=email, p_occurred_at=t0 + 9 * day)
        assert merged["merged"]
        return merged["lead_id"]

    # the merged lead's first touch is a placeholder, its last real and earlier than the live lead's
    phone = unique_phone()
    behind = record(api, p_phone=phone, p_utm_source="fb_live", p_occurred_at=t0 + 4 * day)["lead_id"]
    _, email = _direct_lead(api, t0, ("undefined", None, t0), ("fb_merged", "cpc", t0 + day))
    assert merge_into(phone, email) == behind
    # the merged lead's first touch is real, its last a placeholder; the live lead has none
    phone = unique_phone()
    mirror = record(api, p_phone=phone, p_occurred_at=t0 + 4 * day)["lead_id"]
    _, email = _direct_lead(api, t0, ("fb_first", "cpc", t0), ("(direct)", None, t0 + 2 * day))
    assert merge_into(phone, email) == mirror
    # the merge took a directly inserted placeholder as the earlier first touch and so lost
    # the live lead's own first touch from the row; its journey still has it
    phone = unique_phone()
    displaced = record(api, p_phone=phone, p_utm_source="fb_a", p_occurred_at=t0 + 3 * day)["lead_id"]
    record(api, p_phone=phone, p_utm_source="fb_b", p_utm_medium="cpc", p_occurred_at=t0 + 5 * day)
    _, email = _direct_lead(api, t0, ("undefined", None, t0), ("{campaign}", None, t0))
    assert merge_into(phone, email) == displaced
    assert touch(displaced)[0] == "undefined"
    # blanks around a directly written source, and a journey row written directly (no touch)
    padded, _ = _direct_lead(api, t0, ("fb_pad\u00a0", "cpc", t0 + day), (None, None, None))
    placeholder, _ = _direct_lead(api, t0, ("nil", None, t0 + day), ("nil", None, t0 + day))
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, utm_source, occurred_at)"
        " values (%s, 'proftest_submitted', 'fb_direct_row', %s)",
        [placeholder, t0],
    )
    # a lead the rule already holds
    fine = record(api, p_phone=unique_phone(), p_utm_source="fb_fine", p_occurred_at=t0)["lead_id"]
    before = lead(api, fine)

    migration = (
        Path(__file__).parents[1] / "supabase/migrations/20261210100100_live_lead_touches_are_real.sql"
    )
    api.conn.execute(migration.read_text())

    assert touch(behind) == ("fb_merged", "cpc", t0 + day, "fb_live", None, t0 + 4 * day)
    assert touch(mirror) == ("fb_first", "cpc", t0, "fb_first", "cpc", t0)
    assert touch(displaced) == ("fb_a", None, t0 + 3 * day, "fb_b", "cpc", t0 + 5 * day)
    assert touch(padded) == ("fb_pad", "cpc", t0 + day, "fb_pad", "cpc", t0 + day)
    assert lead(api, padded)["utm_source"] == "fb_pad"
    assert touch(placeholder) == (None, None, None, None, None, None)
    assert lead(api, fine) == before
    after = {i: lead(api, i) for i in (behind, mirror, displaced, padded, placeholder)}
    _as_before_the_touch_constraint(api)
    api.conn.execute(migration.read_text())
    assert {i: lead(api, i) for i in after} == after


_TIMES_HAVE_SOURCES = "traffic_leads_touch_times_have_sources"


def test_live_leads_with_a_touch_time_and_no_source_recompute_their_touches(db_url: str) -> None:
    """20261211100000 run again over the leads its review found (as the owner, the constraint
    it adds dropped first so the old states can be made; rolled back at the end): a lead the
    service role wrote with a touch time and no source kept a later real touch from ever
    being its first (the RPC and merges compare times), now its real touches decide; a cycle
    among merged leads stops nothing, a journey row the service role wrote with an input of
    its own is no touch, and a second run changes nothing."""
    with psycopg.connect(db_url) as conn:
        try:
            _recompute_touches_of_touch_times_without_sources(PostgrestSession(conn))
        finally:
            conn.rollback()


def _recompute_touches_of_touch_times_without_sources(api: PostgrestSession) -> None:
    from pathlib import Path

    api.conn.execute(f"alter table public.traffic_leads drop constraint {_TIMES_HAVE_SOURCES}")
    t0 = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC)
    day = dt.timedelta(days=1)
    touches = "first_utm_source, first_touch_at, last_utm_source, last_utm_medium, last_touch_at"

    def touch(lead_id: uuid.UUID) -> tuple:
        row = lead(api, lead_id)
        return tuple(row[c] for c in touches.split(", "))

    def phantom(phone: str, **times: dt.datetime) -> uuid.UUID:
        columns = "".join(f", {c}" for c in times)
        values = ", %s" * len(times)
        return api.query(
            SERVICE,
            f"insert into public.traffic_leads (phone, created_at{columns}) values (%s, %s{values}) returning id",
            [phone, t0 - 30 * day, *times.values()],
        )[0]["id"]

    # a touch time without a source: a later real touch became its last touch only
    phone = unique_phone()
    alone = phantom(phone, first_touch_at=t0)
    record(api, p_phone=phone, p_utm_source="fb_real", p_utm_medium="cpc", p_occurred_at=t0 + 2 * day)
    assert touch(alone) == (None, t0, "fb_real", "cpc", t0 + 2 * day)
    # a merge kept the empty first touch over the merged lead's real one
    phone, email = unique_phone(), f"phantom-{uuid.uuid4().hex[:8]}@example.kz"
    kept = phantom(phone, first_touch_at=t0, last_touch_at=t0)
    record(api, p_email=email, p_utm_source="ig_real", p_occurred_at=t0 + day)
    merged = record(api, p_phone=phone, p_email=email, p_occurred_at=t0 + 3 * day)
    assert merged["merged"] and merged["lead_id"] == kept
    assert touch(kept)[:2] == (None, t0)
    # a journey row the service role wrote with an input of its own, and a cycle of merged leads
    backfilled = phantom(unique_phone(), last_touch_at=t0)
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, utm_source, input, occurred_at)"
        " values (%s, 'proftest_submitted', 'backfill_src', '{\"source\": \"crm\"}', %s)",
        [backfilled, t0],
    )
    one, two = (phantom(unique_phone()) for _ in range(2))
    api.query(
        SERVICE,
        "update public.traffic_leads set merged_into = %s, merged_at = now(), first_utm_source = 'fb', first_touch_at = %s where id = %s",
        [two, t0, one],
    )
    api.query(
        SERVICE,
        "update public.traffic_leads set merged_into = %s, merged_at = now() where id = %s",
        [one, two],
    )
    fine = record(api, p_phone=unique_phone(), p_utm_source="fb_fine", p_occurred_at=t0)["lead_id"]
    before = lead(api, fine)

    migration = (
        Path(__file__).parents[1]
        / "supabase/migrations/20261211100000_live_lead_touch_times_have_sources.sql"
    )
    api.conn.execute(migration.read_text())

    assert touch(alone) == ("fb_real", t0 + 2 * day, "fb_real", "cpc", t0 + 2 * day)
    assert lead(api, alone)["utm_source"] == "fb_real"
    assert touch(kept) == ("ig_real", t0 + day, "ig_real", None, t0 + day)
    assert touch(backfilled) == (None, None, None, None, None)
    assert lead(api, fine) == before
    after = {i: lead(api, i) for i in (alone, kept, backfilled)}
    api.conn.execute(f"alter table public.traffic_leads drop constraint {_TIMES_HAVE_SOURCES}")
    api.conn.execute(migration.read_text())
    assert {i: lead(api, i) for i in after} == after


@pytest.mark.parametrize("column", ["first_touch_at", "last_touch_at"])
def test_a_live_lead_refuses_a_touch_time_without_a_source(api: PostgrestSession, column: str) -> None:
    """A direct write of a touch time with no utm_source is refused (23514, found by review:
    the empty touch's time kept every later real touch from being the first); a merged lead
    keeps what it holds, and a touch with its source is taken."""
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE,
            f"insert into public.traffic_leads (phone, {column}) values (%s, now())",
            [unique_phone()],
        )
    assert err.value.code == "23514" and _TIMES_HAVE_SOURCES in err.value.message
    row = record(api, p_phone=unique_phone(), p_utm_source="fb_real", p_occurred_at=dt.datetime(2026, 10, 1))
    source = column.replace("touch_at", "utm_source")
    with pytest.raises(ApiError) as err:
        api.query(SERVICE, f"update public.traffic_leads set {source} = null where id = %s", [row["lead_id"]])
    assert err.value.code == "23514" and _TIMES_HAVE_SOURCES in err.value.message
    api.query(
        SERVICE,
        f"update public.traffic_leads set {source} = null, {column} = null where id = %s",
        [row["lead_id"]],
    )
    assert lead(api, row["lead_id"])[column] is None


@pytest.mark.parametrize(
    ("column", "value"),
    [("first_utm_source", "undefined"), ("last_utm_source", "{campaign}"), ("first_utm_source", "fb_nbsp\u00a0"),
     ("last_utm_source", "\u200bfb_zw")],
)  # fmt: skip
def test_a_live_lead_refuses_a_source_no_touch_would_record(
    api: PostgrestSession, column: str, value: str
) -> None:
    """A direct write of a placeholder or of blanks around a source is refused (23514, found
    by review: a merge took such a touch as the earlier first touch and the lead could never
    be attributed); the RPC never stores one, and a real source is taken."""
    row = record(api, p_phone=unique_phone(), p_utm_source="fb_real", p_occurred_at=dt.datetime(2026, 10, 1))
    at = "first_touch_at" if column.startswith("first") else "last_touch_at"
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE,
            f"update public.traffic_leads set {column} = %s, {at} = now() where id = %s",
            [value, row["lead_id"]],
        )
    assert err.value.code == "23514" and _TOUCHES_ARE_REAL in err.value.message
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE,
            f"insert into public.traffic_leads (phone, {column}, {at}) values (%s, %s, now())",
            [unique_phone(), value],
        )
    assert err.value.code == "23514" and _TOUCHES_ARE_REAL in err.value.message
    api.query(
        SERVICE,
        f"update public.traffic_leads set {column} = 'fb_taken', {at} = now() where id = %s",
        [row["lead_id"]],
    )
    assert lead(api, row["lead_id"])[column] == "fb_taken"


def test_line_breaks_tabs_and_unicode_spaces_count_as_blank(api: PostgrestSession) -> None:
    """Forms post every field, often as '\\r\\n', a tab or a no-break space: none of them is a
    name, a source or a UTM value, so none takes the place of a real one."""
    phone = unique_phone()
    first = record(
        api,
        p_phone=phone,
        p_name="\r\n",
        p_source="\t",
        p_utm_source="\r\n",
        p_utm_medium="\u00a0",
        p_utm_campaign="\u200b",
        p_occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2),
    )
    row = lead(api, first["lead_id"])
    assert (row["name"], row["source"], row["source_raw"]) == (None, None, None)
    assert (row["first_utm_source"], row["first_touch_at"], row["last_utm_source"]) == (None, None, None)
    assert [
        (j["utm_source"], j["utm_medium"], j["utm_campaign"]) for j in journey(api, first["lead_id"])
    ] == [(None, None, None)]
    record(api, p_phone=phone, p_name=" Айгерим\u00a0", p_source="proftest\r\n", p_utm_source="fb_arystan ")
    row = lead(api, first["lead_id"])
    assert (row["name"], row["source"], row["source_raw"]) == ("Айгерим", "profitest", "proftest")
    assert (row["first_utm_source"], row["last_utm_source"]) == ("fb_arystan", "fb_arystan")


def test_stages_written_directly_survive_merges_and_journey_changes(api: PostgrestSession) -> None:
    """A stage written straight into traffic_leads (no journey row) stays through a merge, a
    metadata correction of a journey row and the deletion of another stage's rows; a stage
    goes only when its last journey row does."""
    phone, email = unique_phone(), f"stages-{uuid.uuid4().hex[:8]}@example.kz"
    direct = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, stages, created_at)"
        " values ('Direct', %s, '{lead_captured,payment_succeeded}', now() - interval '2 days') returning id",
        [phone],
    )[0]["id"]
    record(api, p_email=email, p_stage="proftest_submitted")
    merged = record(api, p_phone=phone, p_email=email, p_stage="expresscourse_clicked")
    assert merged["merged"] and merged["lead_id"] == direct
    assert lead(api, direct)["stages"] == [
        "expresscourse_clicked",
        "lead_captured",
        "payment_succeeded",
        "proftest_submitted",
    ]
    api.query(
        SERVICE,
        "update public.traffic_lead_journey set metadata = '{\"fixed\": true}' where lead_id = %s",
        [direct],
    )
    assert "payment_succeeded" in lead(api, direct)["stages"]
    api.query(
        SERVICE,
        "delete from public.traffic_lead_journey where lead_id = %s and stage = 'expresscourse_clicked'",
        [direct],
    )
    assert lead(api, direct)["stages"] == ["lead_captured", "payment_succeeded", "proftest_submitted"]
    api.query(
        SERVICE,
        "update public.traffic_lead_journey set stage = 'payment_started'"
        " where lead_id = %s and stage = 'proftest_submitted'",
        [direct],
    )
    assert lead(api, direct)["stages"] == ["lead_captured", "payment_started", "payment_succeeded"]


def test_a_bulk_journey_insert_adds_each_leads_new_stages_once(api: PostgrestSession) -> None:
    """Several rows per lead in one statement (grouped once, not scanned per lead)."""
    ids = [record(api, p_phone=unique_phone(), p_stage="proftest_submitted")["lead_id"] for _ in range(3)]
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, source, input, metadata, event_key, occurred_at)"
        " select l, s, 'bulk', '{}', '{}', 'bulk-' || l || '-' || s || '-' || n, now()"
        " from unnest(%s::uuid[]) as l, unnest(array['payment_started', 'payment_succeeded']) as s,"
        " generate_series(1, 2) as n",
        [ids],
    )
    for lead_id in ids:
        assert lead(api, lead_id)["stages"] == ["payment_started", "payment_succeeded", "proftest_submitted"]


def test_a_merge_keeps_the_survivors_amocrm_sync(api: PostgrestSession) -> None:
    """A lead synced to AmoCRM without a deal id (a contact only) stays synced when a newer,
    unsynced lead is merged into it: otherwise it is queued again and AmoCRM gets a second deal.
    Either lead synced means the person is (as onai-db consolidate combines them)."""
    phone, email = unique_phone(), f"amo-{uuid.uuid4().hex[:8]}@example.kz"
    old = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, amocrm_synced, amocrm_synced_at, amocrm_contact_id,"
        " created_at) values ('Old', %s, true, now() - interval '1 day', 555, now() - interval '2 days')"
        " returning id",
        [phone],
    )[0]["id"]
    record(api, p_email=email, p_name="New")
    assert record(api, p_phone=phone, p_email=email)["merged"]
    live = lead(api, old)
    assert live["merged_into"] is None
    assert (live["amocrm_synced"], live["amocrm_contact_id"]) == (True, 555)
    # the other way round: the newer lead was synced, the older (the survivor) was not
    phone2, email2 = unique_phone(), f"amo-{uuid.uuid4().hex[:8]}@example.kz"
    a = record(api, p_phone=phone2, p_occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))["lead_id"]
    b = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, email, amocrm_synced, amocrm_contact_id)"
        " values ('B', %s, true, 556) returning id",
        [email2],
    )[0]["id"]
    assert record(api, p_phone=phone2, p_email=email2)["merged"]
    assert lead(api, b)["merged_into"] == a
    assert (lead(api, a)["amocrm_synced"], lead(api, a)["amocrm_contact_id"]) == (True, 556)


def test_an_amocrm_sync_recorded_on_a_lead_merged_meanwhile_reaches_the_live_lead(
    api: PostgrestSession,
) -> None:
    """The worker synced lead B; B was merged into A during its AmoCRM calls. A gets B's ids
    (else A is queued again and its job creates a second deal), unless A has its own."""
    phone, email = unique_phone(), f"amo-{uuid.uuid4().hex[:8]}@example.kz"
    a = record(api, p_phone=phone, p_occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))["lead_id"]
    b = record(api, p_email=email)["lead_id"]
    assert record(api, p_phone=phone, p_email=email)["merged"]
    assert api.rpc(SERVICE, "record_amocrm_sync", p_lead_id=b, p_contact_id=111, p_amocrm_lead_id=222)
    live, gone = lead(api, a), lead(api, b)
    assert (live["amocrm_contact_id"], live["amocrm_lead_id"], live["amocrm_synced"]) == (111, 222, True)
    assert (gone["amocrm_contact_id"], gone["amocrm_lead_id"], gone["amocrm_synced"]) == (111, 222, True)
    # the live lead's own deal wins over a merged lead's
    phone2, email2 = unique_phone(), f"amo-{uuid.uuid4().hex[:8]}@example.kz"
    a2 = record(api, p_phone=phone2, p_occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))["lead_id"]
    b2 = record(api, p_email=email2)["lead_id"]
    api.rpc(SERVICE, "record_amocrm_sync", p_lead_id=a2, p_contact_id=1, p_amocrm_lead_id=2)
    assert record(api, p_phone=phone2, p_email=email2)["merged"]
    api.rpc(SERVICE, "record_amocrm_sync", p_lead_id=b2, p_contact_id=3, p_amocrm_lead_id=4)
    assert (lead(api, a2)["amocrm_contact_id"], lead(api, a2)["amocrm_lead_id"]) == (1, 2)
    assert (lead(api, b2)["amocrm_contact_id"], lead(api, b2)["amocrm_lead_id"]) == (3, 4)


def test_the_consolidation_trims_the_same_blanks_as_the_rpc(owner_conn: psycopg.Connection) -> None:
    """One rule for blank values, in the RPC (its body: the attempt it runs) and in the
    set-based import."""
    from onai_db.consolidate.load import BLANKS

    row = owner_conn.execute(
        "select pg_get_functiondef('private.find_or_create_unified_lead_attempt'::regproc)"
    ).fetchone()
    assert row is not None and f"c_blank constant text := {BLANKS};" in row[0]


def test_the_legacy_view_shows_the_attributed_utm_over_the_leads_own_metadata(api: PostgrestSession) -> None:
    """Legacy readers attribute by landing_leads.metadata ->> 'utm_source': a caller's metadata
    must not show them another source than the lead is attributed to."""
    row = record(
        api,
        p_phone=unique_phone(),
        p_utm_source="fb_arystan",
        p_metadata={"utm_source": "fb_kenesary", "k": 1},
    )
    view = api.query(
        SERVICE, "select utm_source, metadata from public.landing_leads where id = %s", [row["lead_id"]]
    )[0]
    assert view["utm_source"] == "fb_arystan"
    assert view["metadata"]["utm_source"] == "fb_arystan" and view["metadata"]["k"] == 1
    # sent in another case: metadata carries the attribution key, as the utm_source column does
    row = record(api, p_phone=unique_phone(), p_utm_source=" FB_Arystan ", p_utm_campaign="Nov")
    view = api.query(
        SERVICE, "select utm_source, metadata from public.landing_leads where id = %s", [row["lead_id"]]
    )[0]
    assert view["utm_source"] == "fb_arystan"
    assert view["metadata"] == {"utm_source": "fb_arystan", "utm_campaign": "Nov"}


def test_the_legacy_view_shows_exactly_the_attributed_utm(api: PostgrestSession) -> None:
    """No mix: the lead's own utm_* keys never show beside (or instead of) its first touch."""
    touched = record(
        api, p_phone=unique_phone(), p_utm_source="fb_arystan", p_metadata={"utm_campaign": "c1", "k": 1}
    )
    untouched = record(api, p_phone=unique_phone(), p_metadata={"utm_source": "fb_kenesary", "k": 2})
    rows = {
        r["id"]: r["metadata"]
        for r in api.query(
            SERVICE,
            "select id, metadata from public.landing_leads where id = any(%s)",
            [[touched["lead_id"], untouched["lead_id"]]],
        )
    }
    assert rows[touched["lead_id"]] == {"utm_source": "fb_arystan", "k": 1}
    assert rows[untouched["lead_id"]] == {"k": 2}


def test_a_landing_import_without_a_touch_is_never_shown_a_callers_utm_source(api: PostgrestSession) -> None:
    """A lead imported from Landing with no touch keeps its own utm_* keys in the legacy view,
    but a utm_source a later call put into its metadata is not its attribution."""
    phone = unique_phone()
    imported = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, metadata, legacy_source_table, legacy_id)"
        """ values ('Leg', %s, '{"page": "p1", "utm_medium": "cpc"}', 'landing_leads', %s) returning id""",
        [phone, str(uuid.uuid4())],
    )[0]["id"]
    record(api, p_phone=phone, p_metadata={"utm_source": "fb_t2", "utm_campaign": "x"})
    view = api.query(
        SERVICE, "select utm_source, metadata from public.landing_leads where id = %s", [imported]
    )[0]
    assert view["utm_source"] is None and "utm_source" not in view["metadata"], view
    assert view["metadata"]["page"] == "p1" and view["metadata"]["utm_medium"] == "cpc"


def test_the_legacy_journey_view_shows_the_source_trimmed_and_blank_as_null(api: PostgrestSession) -> None:
    phone = unique_phone()
    first = record(api, p_phone=phone, p_source=" proftest\r\n", p_event_key=f"src-a-{phone}")
    record(api, p_phone=phone, p_source="\u00a0", p_event_key=f"src-b-{phone}")
    rows = api.query(
        SERVICE,
        "select j.source from public.lead_journey as j join public.traffic_lead_journey as t on t.id = j.id"
        " where j.lead_id = %s order by t.event_key",
        [first["lead_id"]],
    )
    assert [r["source"] for r in rows] == ["proftest", None]
    landing = api.query(SERVICE, "select source from public.landing_leads where id = %s", [first["lead_id"]])
    assert landing == [{"source": "proftest"}]


def test_a_touch_written_without_its_time_is_refused(api: PostgrestSession) -> None:
    """Touches are decided by time: a first touch with no time read as none and was replaced
    by the next call naming any utm_source (the lead changed targetologist)."""
    phone = unique_phone()
    for columns in ("first_utm_source", "last_utm_source"):
        with pytest.raises(ApiError) as err:
            api.query(
                SERVICE, f"insert into public.traffic_leads (phone, {columns}) values (%s, 'fb_t1')", [phone]
            )
        assert err.value.code == "23514" and "traffic_leads_touch_times_check" in err.value.message
    lead_id = api.query(
        SERVICE,
        "insert into public.traffic_leads (phone, first_utm_source, first_touch_at, last_utm_source, last_touch_at)"
        " values (%s, 'fb_t1', now() - interval '1 day', 'fb_t1', now() - interval '1 day') returning id",
        [phone],
    )[0]["id"]
    record(api, p_phone=phone, p_utm_source="fb_t2")
    assert lead(api, lead_id)["first_utm_source"] == "fb_t1"  # the attribution stays


@pytest.mark.parametrize(
    "stages", [["", "lead_captured"], ["lead_captured", None], ["Lead Captured"], ["a b"]]
)
def test_stages_hold_stage_names_only(api: PostgrestSession, stages: list) -> None:
    """Both dashboard paths count traffic_leads.stages: an empty, NULL or malformed element
    written directly is refused instead of counting a lead twice."""
    row = record(api, p_phone=unique_phone())
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE, "update public.traffic_leads set stages = %s where id = %s", [stages, row["lead_id"]]
        )
    assert err.value.code == "23514" and "traffic_leads_stages_check" in err.value.message
    api.query(
        SERVICE,
        "update public.traffic_leads set stages = %s where id = %s",
        [["lead_captured", "proftest_submitted"], row["lead_id"]],
    )


@pytest.mark.parametrize(
    "stages",
    [["lead_captured", "lead_captured"], ["proftest_submitted", "lead_captured", "proftest_submitted"]],
)
def test_a_stage_is_named_once(api: PostgrestSession, cast, stages: list) -> None:
    """The dashboard counts a lead once per element of stages: a stage written twice (by an
    update or an insert of the service role) is refused, not counted twice. The order is free."""
    row = record(api, p_phone=unique_phone())
    with pytest.raises(ApiError) as err:
        api.query(
            SERVICE, "update public.traffic_leads set stages = %s where id = %s", [stages, row["lead_id"]]
        )
    assert err.value.code == "23514" and "traffic_leads_stages_distinct_check" in err.value.message
    with pytest.raises(ApiError) as err:
        api.query(SERVICE, "insert into public.traffic_leads (name, stages) values ('Twice', %s)", [stages])
    assert err.value.code == "23514" and "traffic_leads_stages_distinct_check" in err.value.message
    once = list(dict.fromkeys(stages))[::-1]  # each once, in an order of the writer's choosing
    api.query(SERVICE, "update public.traffic_leads set stages = %s where id = %s", [once, row["lead_id"]])
    # a sales manager's edit re-checks the row as it is: it still passes
    api.query(
        cast.sales_manager, "update public.traffic_leads set name = 'Edited' where id = %s", [row["lead_id"]]
    )
    kept = api.query(SERVICE, "select name, stages from public.traffic_leads where id = %s", [row["lead_id"]])
    assert kept == [{"name": "Edited", "stages": once}]


def _intake_lead(conn: psycopg.Connection, **kw: object) -> uuid.UUID:
    """The lead find_or_create_unified_lead returns for these arguments, called on ``conn``."""
    names = ", ".join(f"{k} => %({k})s" for k in kw)
    return conn.execute(f"select lead_id from public.find_or_create_unified_lead({names})", kw).fetchone()[0]


def test_renormalizing_after_a_rule_change_merges_and_registers(stack) -> None:
    # its own database: the function locks and rewrites every lead
    from support.consolidation import fresh_target

    url = fresh_target(stack, "leads_renormalize").replace("postgres:postgres@", "supabase_admin@")
    with psycopg.connect(url, autocommit=True) as conn:
        a = _intake_lead(conn, p_phone="+77011110001", p_name="A", p_stage="proftest_submitted")
        b = _intake_lead(conn, p_phone="+77011110002", p_name="B", p_stage="expresscourse_clicked")
        c = _intake_lead(conn, p_phone="+77011110003", p_name="C")
        e = _intake_lead(conn, p_phone="+77011110005", p_email="e@example.kz", p_name="E")
        f = _intake_lead(conn, p_email="f@example.kz", p_name="F")
        assert _intake_lead(conn, p_phone="+77011110005", p_email="f@example.kz") == e  # F merged into E
        # as the old rules had stored them: B's number (now A's under the current rules) and
        # C's number were read differently
        conn.execute("set session_replication_role = replica")  # no triggers: stored as is
        conn.execute(
            "update public.traffic_leads set phone = '8 (701) 111-00-01', phone_normalized = '+7701111000199'"
            " where id = %s",
            [b],
        )
        conn.execute("update public.traffic_leads set phone_normalized = '+7701111000399' where id = %s", [c])
        conn.execute("set session_replication_role = origin")
        # a lead written straight into the table with F's email (registered for E since the merge)
        g = conn.execute(
            "insert into public.traffic_leads (name, email) values ('G', 'F@example.kz') returning id"
        ).fetchone()[0]

        done = conn.execute("select * from private.renormalize_lead_identities()").fetchone()
        assert done[:2] == (2, 2)  # B and C stored anew; B merged into A, G into E
        live = dict(
            conn.execute(
                "select id, merged_into from public.traffic_leads where id = any(%s)", [[a, b, c, e, f, g]]
            ).fetchall()
        )
        assert live == {a: None, b: a, c: None, e: None, f: e, g: e}
        assert conn.execute(
            "select phone_normalized from public.traffic_leads where id = %s", [c]
        ).fetchone() == ("+77011110003",)
        stages = conn.execute("select stages from public.traffic_leads where id = %s", [a]).fetchone()[0]
        assert {"proftest_submitted", "expresscourse_clicked"} <= set(stages)
        assert (
            _intake_lead(conn, p_phone="8 701 111 00 01") == a
            and _intake_lead(conn, p_email="f@example.kz") == e
        )
        assert conn.execute("select * from private.renormalize_lead_identities()").fetchone() == (0, 0, 0)


def test_renormalizing_moves_stored_values_between_leads_without_23505(stack) -> None:
    """New rules may give a lead a value another live lead still stores under the old rules
    (a rotation of numbers, a swap of emails, a merge filling a number that a third lead held):
    the unique indexes are checked row by row, so the run must clear those values first. The
    leads below were written straight into the table (never registered), as the service role may."""
    from support.consolidation import fresh_target

    url = fresh_target(stack, "leads_renormalize_moves").replace("postgres:postgres@", "supabase_admin@")
    with psycopg.connect(url, autocommit=True) as conn:

        def insert(**kw: object) -> uuid.UUID:
            cols = ", ".join(kw)
            vals = ", ".join(f"%({k})s" for k in kw)
            return conn.execute(
                f"insert into public.traffic_leads ({cols}) values ({vals}) returning id", kw
            ).fetchone()[0]

        def stored(lead_id: uuid.UUID) -> tuple[object, ...]:
            return conn.execute(
                "select merged_into, phone, phone_normalized, email_normalized from public.traffic_leads where id = %s",
                [lead_id],
            ).fetchone()

        day = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        # a rotation: A now reads ...002 (stores ...001), B now reads ...003 (stores ...002)
        a = conn.execute(
            "select lead_id from public.find_or_create_unified_lead(p_phone => '+77011210001', p_name => 'A')"
        ).fetchone()[0]
        b = insert(name="B", phone="+77011210002")
        # a swap: S1 stores s1@ and now reads s2@, S2 the reverse
        s1 = insert(name="S1", email="s1@example.kz")
        s2 = insert(name="S2", email="s2@example.kz")
        # a merge's fill: W (stores no phone) and L now read ...101, Z stores ...101 and now reads ...109
        w = insert(name="W", email="w@example.kz", created_at=day)
        z = insert(name="Z", phone="+77011210101")
        lx = insert(name="L", phone="+77011210177", created_at=day + dt.timedelta(days=1))
        # a merge by email keeps the valid number: W2's number no longer reads as one, L2's does
        w2 = insert(name="W2", phone="+77011210201", created_at=day)
        l2 = insert(
            name="L2", phone="+77011210202", email="l2-old@example.kz", created_at=day + dt.timedelta(days=1)
        )
        conn.execute("set session_replication_role = replica")  # as the old rules stored them
        for lead_id, column, value in (
            (a, "phone", "+77011210002"),  # A first: its new value meets B's stored one
            (b, "phone", "+77011210003"),
            (s1, "email", "s2@example.kz"),
            (s2, "email", "s1@example.kz"),
            (w, "phone", "8 701 121 01 01"),
            (z, "phone", "+77011210109"),
            (lx, "phone", "+77011210101"),
            (w2, "phone", "+7 701 121"),
            (w2, "email", "pair2@example.kz"),
            (l2, "email", "pair2@example.kz"),
        ):
            conn.execute(f"update public.traffic_leads set {column} = %s where id = %s", [value, lead_id])
        conn.execute("set session_replication_role = origin")

        done = conn.execute("select * from private.renormalize_lead_identities()").fetchone()
        assert done[:2] == (9, 2)  # every lead above stored anew; L into W, L2 into W2
        assert stored(a) == (None, "+77011210002", "+77011210002", None)
        assert stored(b) == (None, "+77011210003", "+77011210003", None)
        assert stored(s1)[3] == "s2@example.kz" and stored(s2)[3] == "s1@example.kz"
        assert stored(w) == (None, "8 701 121 01 01", "+77011210101", "w@example.kz")
        assert stored(lx)[0] == w and stored(z) == (None, "+77011210109", "+77011210109", None)
        assert stored(w2) == (None, "+77011210202", "+77011210202", "pair2@example.kz")
        assert stored(l2)[0] == w2
        assert conn.execute(
            "select count(*) from public.traffic_leads where merged_into is null and no_identifier"
        ).fetchone() == (0,)

        def rpc_lead(**kw: object) -> uuid.UUID:
            names = ", ".join(f"{k} => %({k})s" for k in kw)
            return conn.execute(
                f"select lead_id from public.find_or_create_unified_lead({names})", kw
            ).fetchone()[0]

        assert rpc_lead(p_phone="+77011210003") == b and rpc_lead(p_phone="+77011210101") == w
        assert rpc_lead(p_email="s2@example.kz") == s1 and rpc_lead(p_phone="+77011210202") == w2
        assert conn.execute("select * from private.renormalize_lead_identities()").fetchone() == (0, 0, 0)


def _stage_count(api: PostgrestSession, utm_source: str, stage: str) -> int:
    return api.query(
        SERVICE,
        "select coalesce(sum(leads), 0)::int as n from public.traffic_lead_daily_stats"
        " where utm_source = %s and stage = %s",
        [utm_source, stage],
    )[0]["n"]


def test_a_journey_row_written_against_a_merged_lead_reaches_the_live_lead(api: PostgrestSession) -> None:
    """A row the service role inserts (or re-points) with a lead id read before a merge moves to
    the live lead, remembers the id it was written with, and counts in the live lead's funnel."""
    source = f"fb_moved_{uuid.uuid4().hex[:8]}"
    phone, email = unique_phone(), f"moved-{uuid.uuid4().hex[:8]}@example.kz"
    live = record(
        api,
        p_phone=phone,
        p_utm_source=source,
        p_occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )["lead_id"]
    gone = record(api, p_email=email)["lead_id"]
    assert record(api, p_phone=phone, p_email=email)["merged"]
    assert lead(api, gone)["merged_into"] == live
    assert _stage_count(api, source, "payment_succeeded") == 0

    row = api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, source, event_key)"
        " values (%s, 'payment_succeeded', 'webhook', %s) returning id",
        [gone, f"moved-{uuid.uuid4()}"],
    )[0]
    moved = api.query(
        SERVICE,
        "select lead_id, moved_from_lead_id from public.traffic_lead_journey where id = %s",
        [row["id"]],
    )[0]
    assert (moved["lead_id"], moved["moved_from_lead_id"]) == (live, gone)
    assert "payment_succeeded" in lead(api, live)["stages"]
    assert "payment_succeeded" not in lead(api, gone)["stages"]
    assert _stage_count(api, source, "payment_succeeded") == 1

    # pointed at the merged lead by an update: moved on, and its former lead loses the stage
    other = record(api, p_phone=unique_phone(), p_stage="payment_started")["lead_id"]
    api.query(
        SERVICE,
        "update public.traffic_lead_journey set lead_id = %s where lead_id = %s and stage = 'payment_started'",
        [gone, other],
    )
    assert lead(api, other)["stages"] == []
    moved_rows = api.query(
        SERVICE,
        "select lead_id, moved_from_lead_id from public.traffic_lead_journey where stage = 'payment_started'"
        " and moved_from_lead_id = %s",
        [gone],
    )
    assert [(r["lead_id"], r["moved_from_lead_id"]) for r in moved_rows] == [(live, gone)]
    assert {"payment_started", "payment_succeeded"} <= set(lead(api, live)["stages"])
    assert _stage_count(api, source, "payment_started") == 1


def test_a_journey_row_follows_a_merge_chain_to_its_end(api: PostgrestSession) -> None:
    """Merges keep chains flat, but a chain written directly (C -> B -> A) is followed to A."""
    a, b, c = (record(api, p_phone=unique_phone())["lead_id"] for _ in range(3))
    api.query(
        SERVICE, "update public.traffic_leads set merged_into = %s, merged_at = now() where id = %s", [a, b]
    )
    api.query(
        SERVICE, "update public.traffic_leads set merged_into = %s, merged_at = now() where id = %s", [b, c]
    )
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, event_key) values (%s, 'payment_started', %s)",
        [c, f"chain-{uuid.uuid4()}"],
    )
    rows = api.query(
        SERVICE,
        "select lead_id from public.traffic_lead_journey where moved_from_lead_id = %s and stage = 'payment_started'",
        [c],
    )
    assert [r["lead_id"] for r in rows] == [a]
    assert "payment_started" in lead(api, a)["stages"]


def _stats_writes(api: PostgrestSession) -> int:
    """Rows of traffic_lead_daily_stats this transaction has inserted or updated so far."""
    return api.query(
        SERVICE,
        "select (n_tup_ins + n_tup_upd)::int as n from pg_catalog.pg_stat_xact_user_tables"
        " where relid = 'public.traffic_lead_daily_stats'::regclass",
    )[0]["n"]


def test_one_statement_changing_many_leads_writes_each_count_once(api: PostgrestSession) -> None:
    """A journey backfill giving 300 leads of one day and source a stage updates the leads in one
    statement: the stage's count is written once, not once per lead (an upsert per lead of the
    same stats row was quadratic); counts that do not change are not written at all."""
    source, moved_to = (f"fb_bulk_{uuid.uuid4().hex[:8]}" for _ in range(2))
    at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    phones = [unique_phone() for _ in range(300)]
    api.query(
        SERVICE,
        "insert into public.traffic_leads (name, phone, first_utm_source, first_touch_at, created_at)"
        " select 'Bulk ' || p, p, %s, %s, %s from pg_catalog.unnest(%s::text[]) as p",
        [source, at, at, phones],
    )
    assert _stage_count(api, source, "") == 300

    before = _stats_writes(api)
    api.query(
        SERVICE,
        "insert into public.traffic_lead_journey (lead_id, stage, source)"
        " select l.id, 'payment_succeeded', 'backfill' from public.traffic_leads as l where l.utm_source = %s",
        [source],
    )
    assert _stats_writes(api) - before == 1
    assert _stage_count(api, source, "payment_succeeded") == 300

    before = _stats_writes(api)
    api.query(SERVICE, "update public.traffic_leads set email_sent = true where utm_source = %s", [source])
    assert _stats_writes(api) - before == 0

    # re-attributed: both counts leave the old source and arrive at the new one, each written once
    before = _stats_writes(api)
    api.query(
        SERVICE,
        "update public.traffic_leads set first_utm_source = %s where utm_source = %s",
        [moved_to, source],
    )
    assert _stats_writes(api) - before == 4
    assert (_stage_count(api, source, ""), _stage_count(api, source, "payment_succeeded")) == (0, 0)
    assert (_stage_count(api, moved_to, ""), _stage_count(api, moved_to, "payment_succeeded")) == (300, 300)


# --- found by the mutation review: each test fails on one plausible bug the suite missed ---


def test_the_first_touch_keeps_the_values_of_one_touch(api: PostgrestSession) -> None:
    """Each first-touch field is taken with the first touch's time; a field compared with the
    last touch's time instead (a copy-paste slip) mixed two touches' values."""
    phone, t0 = unique_phone(), dt.datetime(2026, 11, 1, 10, tzinfo=dt.UTC)
    record(api, p_phone=phone, p_utm_source="fb_arystan", p_utm_term="early", p_occurred_at=t0)
    lid = record(
        api, p_phone=phone, p_utm_source="ig_arystan", p_utm_term="late", p_occurred_at=t0 + dt.timedelta(1)
    )["lead_id"]
    row = lead(api, lid)
    assert (row["first_utm_source"], row["first_utm_term"]) == ("fb_arystan", "early")
    assert (row["last_utm_source"], row["last_utm_term"]) == ("ig_arystan", "late")


def test_an_event_that_happened_earlier_moves_the_creation_back(api: PostgrestSession) -> None:
    """The dashboard counts a lead on the day it was created: an event arriving late that
    happened before the lead's creation makes that the lead's creation."""
    phone, t0 = unique_phone(), dt.datetime(2026, 11, 5, 10, tzinfo=dt.UTC)
    record(api, p_phone=phone, p_occurred_at=t0)
    lid = record(api, p_phone=phone, p_occurred_at=t0 - dt.timedelta(days=2))["lead_id"]
    assert lead(api, lid)["created_at"] == t0 - dt.timedelta(days=2)


def test_an_event_key_of_unicode_blanks_only_is_refused(api: PostgrestSession) -> None:
    with pytest.raises(ApiError) as err:
        record(api, p_phone=unique_phone(), p_event_key="\u00a0\u200b")
    assert err.value.code == "22023" and err.value.hint


def test_a_second_email_given_alone_later_finds_the_lead(api: PostgrestSession) -> None:
    phone = unique_phone()
    first, second = (f"{x}-{uuid.uuid4().hex[:6]}@example.kz" for x in "ab")
    lid = record(api, p_phone=phone, p_email=first)["lead_id"]
    record(api, p_phone=phone, p_email=second)
    again = record(api, p_email=second)
    assert (again["lead_id"], again["created"]) == (lid, False)


def test_a_readable_phone_replaces_an_unreadable_one(api: PostgrestSession) -> None:
    email, phone = f"junk-{uuid.uuid4().hex[:6]}@example.kz", unique_phone()
    lid = record(api, p_email=email, p_phone="call me")["lead_id"]
    record(api, p_email=email, p_phone=phone)
    row = lead(api, lid)
    assert (row["phone"], row["phone_normalized"]) == (phone, phone)


def merge_chain(api: PostgrestSession) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Leads C (oldest, email E), B (phone P) and A (email F), with 2 clicks on A and 3 on B;
    then A merges into B, and B into C."""
    e, f = (f"{x}-{uuid.uuid4().hex[:6]}@example.kz" for x in "ef")
    p, t0 = unique_phone(), dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    c = record(api, p_email=e, p_occurred_at=t0)["lead_id"]
    b = record(api, p_phone=p, p_occurred_at=t0 + dt.timedelta(1))["lead_id"]
    a = record(api, p_email=f, p_occurred_at=t0 + dt.timedelta(2))["lead_id"]
    for lead_id, clicks in ((a, 2), (b, 3)):
        api.query(
            SERVICE, "update public.traffic_leads set click_count = %s where id = %s", [clicks, lead_id]
        )
    assert record(api, p_phone=p, p_email=f)["lead_id"] == b  # A into B
    assert record(api, p_phone=p, p_email=e)["lead_id"] == c  # B into C
    return a, b, c


def test_a_chain_of_merges_points_every_loser_at_the_live_lead(api: PostgrestSession) -> None:
    """Merged leads are one hop from their live lead (record_amocrm_sync follows one hop: a
    two-hop chain marked a merged lead synced, and the live lead was synced again), and a
    journey row keeps the lead it first came from through later moves."""
    a, b, c = merge_chain(api)
    assert (lead(api, a)["merged_into"], lead(api, b)["merged_into"]) == (c, c)
    assert {j["moved_from_lead_id"] for j in journey(api, c)} == {None, a, b}


def test_a_merge_adds_up_the_click_counts(api: PostgrestSession) -> None:
    _a, _b, c = merge_chain(api)
    assert lead(api, c)["click_count"] == 5


def test_the_legacy_view_shows_none_of_an_untouched_leads_own_utm_keys(api: PostgrestSession) -> None:
    """Only a Landing import without a touch shows its own utm_* keys; a lead of the RPC without
    a touch shows none of them, not just no utm_source (found by mutation testing)."""
    row = record(api, p_phone=unique_phone(), p_metadata={"utm_campaign": "c9", "utm_medium": "cpc", "k": 2})
    view = api.query(SERVICE, "select metadata from public.landing_leads where id = %s", [row["lead_id"]])
    assert view == [{"metadata": {"k": 2}}]


def test_the_legacy_view_shows_the_first_touchs_utm_values(api: PostgrestSession) -> None:
    """metadata's utm_* are the first touch's, not the last one's (found by mutation testing)."""
    phone = unique_phone()
    t0 = dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)
    first = record(
        api, p_phone=phone, p_utm_source="fb_a", p_utm_medium="cpc", p_utm_campaign="c1",
        p_utm_content="ad1", p_utm_term="t1", p_occurred_at=t0,
    )  # fmt: skip
    record(
        api, p_phone=phone, p_utm_source="fb_b", p_utm_medium="cpm", p_utm_campaign="c2",
        p_utm_content="ad2", p_utm_term="t2", p_occurred_at=t0 + dt.timedelta(days=1),
    )  # fmt: skip
    view = api.query(SERVICE, "select metadata from public.landing_leads where id = %s", [first["lead_id"]])
    assert view == [
        {
            "metadata": {
                "utm_source": "fb_a",
                "utm_medium": "cpc",
                "utm_campaign": "c1",
                "utm_content": "ad1",
                "utm_term": "t1",
            }
        }
    ]


def test_the_legacy_view_keeps_each_click_and_send_column(api: PostgrestSession) -> None:
    """Landing's click and send columns each show their own value (found by mutation testing)."""
    row = record(api, p_phone=unique_phone())
    e_at, s_at = dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC), dt.datetime(2026, 10, 2, 9, tzinfo=dt.UTC)
    api.query(
        SERVICE,
        "update public.traffic_leads set email_sent = true, sms_sent = false, email_clicked = true,"
        " email_clicked_at = %s, sms_clicked = true, sms_clicked_at = %s, click_count = 3,"
        " amocrm_lead_id = 11, amocrm_contact_id = 22, legacy_id = 'L-1' where id = %s",
        [e_at, s_at, row["lead_id"]],
    )
    view = api.query(
        SERVICE,
        "select email_sent, sms_sent, email_clicked, email_clicked_at, sms_clicked, sms_clicked_at,"
        " click_count, amocrm_lead_id, amocrm_contact_id, legacy_id from public.landing_leads where id = %s",
        [row["lead_id"]],
    )
    assert view == [
        {
            "email_sent": True, "sms_sent": False, "email_clicked": True, "email_clicked_at": e_at,
            "sms_clicked": True, "sms_clicked_at": s_at, "click_count": 3, "amocrm_lead_id": 11,
            "amocrm_contact_id": 22, "legacy_id": "L-1",
        }
    ]  # fmt: skip


def test_the_legacy_journey_view_dates_a_row_when_it_happened(api: PostgrestSession) -> None:
    """lead_journey.created_at is when the event happened (occurred_at), as Landing's rows were
    dated, not when onai-db stored it (found by mutation testing)."""
    at = dt.datetime(2025, 5, 5, 10, tzinfo=dt.UTC)
    row = record(api, p_phone=unique_phone(), p_stage="proftest_submitted", p_occurred_at=at)
    rows = api.query(
        SERVICE, "select created_at from public.lead_journey where lead_id = %s", [row["lead_id"]]
    )
    assert rows == [{"created_at": at}]


BLANKS = [
    " ", "\t", "\n", "\x0b", "\x0c", "\r", "\x85", "\u00a0", "\u1680", "\u2000", "\u2001", "\u2002",
    "\u2003", "\u2004", "\u2005", "\u2006", "\u2007", "\u2008", "\u2009", "\u200a", "\u200b", "\u2028",
    "\u2029", "\u202f", "\u205f", "\u3000", "\ufeff",
]  # fmt: skip


@pytest.mark.parametrize("blank", BLANKS, ids=[f"U+{ord(b):04X}" for b in BLANKS])
def test_a_touch_value_is_trimmed_of_every_blank_the_rpc_trims(
    owner_conn: psycopg.Connection, blank: str
) -> None:
    """utm_touch_value trims each blank of find_or_create_unified_lead's list: consolidate calls
    it directly, and a CSV's byte-order mark before a source made a touch of '\\ufeffFB_x' and a
    placeholder behind one a touch (found by mutation testing)."""
    got = owner_conn.execute(
        "select private.utm_touch_value(%s), private.utm_touch_value(%s)",
        [f"{blank}FB_x{blank}", f"{blank}undefined{blank}"],
    ).fetchone()
    assert got == ("FB_x", None)


def test_renormalizing_merges_a_lead_holding_another_leads_registered_phone(stack) -> None:
    """A lead written straight into the table with a phone registered for another lead (its
    second number) is the same person: the run merges it, as it does for an email (found by mutation testing)."""
    from support.consolidation import fresh_target

    url = fresh_target(stack, "leads_renormalize_phone").replace("postgres:postgres@", "supabase_admin@")
    with psycopg.connect(url, autocommit=True) as conn:
        a = _intake_lead(conn, p_phone="+77011310001", p_email="a@example.kz", p_name="A")
        assert (
            _intake_lead(conn, p_phone="+77011310002", p_email="a@example.kz") == a
        )  # A's second number, registered
        assert conn.execute(
            "select lead_id from private.traffic_lead_identifiers where kind = 'phone' and value = '+77011310002'"
        ).fetchone() == (a,)
        g = conn.execute(
            "insert into public.traffic_leads (name, phone) values ('G', '8 701 131 00 02') returning id"
        ).fetchone()[0]
        done = conn.execute("select * from private.renormalize_lead_identities()").fetchone()
        assert done[:2] == (0, 1)  # nothing stale; G merged into A
        assert conn.execute("select merged_into from public.traffic_leads where id = %s", [g]).fetchone() == (
            a,
        )
        assert _intake_lead(conn, p_phone="+77011310002") == a


def test_a_merged_lead_keeps_a_placeholder_touch_and_follows_later_merges(api: PostgrestSession) -> None:
    """Merged leads stored before the touch repairs may hold placeholders (the repairs fixed
    live leads only): the constraint leaves them alone, so a later merge that re-points them
    at the new live lead does not fail with 23514 (found by mutation testing)."""
    phone, email = unique_phone(), f"ph-{uuid.uuid4().hex[:8]}@example.kz"
    older = record(api, p_phone=phone, p_occurred_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))["lead_id"]
    newer = record(api, p_email=email)["lead_id"]
    loser = api.query(
        SERVICE,
        "insert into public.traffic_leads (name, first_utm_source, first_touch_at, merged_into, merged_at)"
        " values ('Old loser', 'undefined', now(), %s, now()) returning id",
        [newer],
    )[0]["id"]
    assert record(api, p_phone=phone, p_email=email)["lead_id"] == older  # newer merged into older
    assert lead(api, loser)["merged_into"] == older
