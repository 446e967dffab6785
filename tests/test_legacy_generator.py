"""The legacy Landing fixture generator (issue 4): realistic messy data, the row counts
asked for, the same data for the same seed. The consolidation tests use its output as
background; these tests pin the messiness itself, so a generator that became tidy (one
phone format, no orphans, no duplicates, ...) cannot leave the consolidation untested."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from onai_db.legacy import LEGACY_TABLES, create_landing_db, generate, install_schema
from onai_db.legacy.generator import FIRST_NAMES, LAST_NAMES
from onai_db.local import LocalStack
from support.consolidation import scratch_db

LEAD_ROWS = 3000  # the demo's default


@pytest.fixture(scope="module")
def landing(stack: LocalStack) -> Iterator[psycopg.Connection]:
    url, counts = create_landing_db(stack, scratch_db("gen_messy"), rows=LEAD_ROWS, seed=1)
    assert counts.lead_rows == LEAD_ROWS
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


def one(conn: psycopg.Connection, sql: str) -> object:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


LEADS = """
  (select 'landing_leads' as t, name, email, phone, source from landing_leads
   union all select 'lead_tracking', name, email, phone, source from lead_tracking
   union all select 'unified_lead_tracking', full_name, email, phone, source from unified_lead_tracking) as r
"""


def test_one_person_spans_the_three_tables_with_varied_phone_and_email(landing: psycopg.Connection) -> None:
    # a person's e-mail holds its number (name.<n>@domain): group the rows by it
    people = landing.execute(
        f"""
        select lower(trim(email)), count(distinct t),
          count(distinct right(regexp_replace(phone, '\\D', '', 'g'), 10)), count(distinct phone), count(distinct email)
        from {LEADS}
        where email ~ '^\\s*[^@\\s]+@[^@\\s]+\\.[a-z]+\\s*$' and regexp_replace(phone, '\\D', '', 'g') ~ '^[78]?\\d{{10}}$'
        group by 1 having count(*) > 1
        """
    ).fetchall()
    across = [p for p in people if p[1] == 3]
    assert len(across) >= 10, "people with rows in all three lead tables"
    assert all(digits == 1 for _e, _t, digits, _p, _m in people), "one person, one number"
    assert sum(phones > 1 for *_x, phones, _m in people) > len(people) / 2, "the number's format varies"
    assert sum(emails > 1 for *_x, emails in people) > len(people) / 4, "the e-mail's case or spaces vary"
    # the formats landing pages produced, digits masked
    shapes = {
        r[0]
        for r in landing.execute(
            f"select distinct regexp_replace(phone, '\\d', '9', 'g') from {LEADS} where phone ~ '\\d{{3}}'"
        ).fetchall()
    }
    for shape in (
        "+99999999999",
        "99999999999",
        "9999999999",
        "+9 (999) 999-99-99",
        "9 999 999 99 99",
        " +9-999-999-9999 ",
    ):
        assert shape in shapes, shape
    trunk = {
        r[0]
        for r in landing.execute(
            f"select distinct left(regexp_replace(phone, '\\D', '', 'g'), 1) from {LEADS} where regexp_replace(phone, '\\D', '', 'g') ~ '^\\d{{11}}$'"
        ).fetchall()
    }
    assert {"7", "8"} <= trunk, trunk
    assert one(landing, f"select count(*) from {LEADS} where email ~ '[A-Z]' and email = upper(email)")
    assert one(landing, f"select count(*) from {LEADS} where email <> trim(email)")
    # unified rows point at the person's landing row
    assert one(
        landing,
        "select count(*) from unified_lead_tracking as u join landing_leads as l on l.id = u.landing_lead_id",
    )


def test_sources_names_utms_and_nulls_are_messy(landing: psycopg.Connection) -> None:
    sources = {r[0] for r in landing.execute(f"select distinct source from {LEADS}").fetchall()}
    assert {"proftest", "ProfTest", "profitest", "proftest ", None} <= sources
    # Cyrillic names, Kazakh letters among them, and the mis-encoded ones
    assert one(landing, f"select count(*) from {LEADS} where name ~ '[а-яА-Я]'")
    kazakh = "'[әғқңөұүһіӘҒҚҢӨҰҮҺІ]'"
    for part in (1, 2):  # first names and last names
        assert one(landing, f"select count(*) from {LEADS} where split_part(name, ' ', {part}) ~ {kazakh}"), (
            part
        )
    names = {r[0] for r in landing.execute(f"select distinct name from {LEADS}").fetchall()}
    proper = {f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES}
    misread = {name.encode().decode("cp1251", errors="replace") for name in proper}
    assert names & (misread - proper), "UTF-8 names read as cp1251"
    # NULLs, invalid e-mails and unusable phones
    for column in ("name", "email", "phone"):
        assert one(landing, f"select count(*) from {LEADS} where {column} is null"), column
    # a row of a reachable person without a name, too
    assert one(
        landing,
        f"select count(*) from {LEADS} where name is null and email ~* '^\\s*[^@\\s]+@[^@\\s]+[.][a-z]+\\s*$'",
    )
    assert one(landing, f"select count(*) from {LEADS} where email in ('n/a', 'aigerim@', 'нет почты')")
    assert one(landing, f"select count(*) from {LEADS} where phone in ('звонить вечером', '123', '0')")
    # UTMs: present on most rows, missing on many
    for table in ("lead_tracking", "unified_lead_tracking"):
        with_utm, without = landing.execute(
            f"select count(*) filter (where utm_source is not null), count(*) filter (where utm_source is null) from {table}"
        ).fetchone() or (0, 0)
        assert with_utm > without > 0, table
    assert one(landing, "select count(*) from landing_leads where not metadata ? 'utm_source'")
    assert one(landing, "select count(*) from landing_leads where metadata ? 'utm_source'")


def test_duplicates_and_orphans(landing: psycopg.Connection) -> None:
    # exact duplicate rows (a new id, the same values)
    for table, name in (
        ("landing_leads", "name"),
        ("lead_tracking", "name"),
        ("unified_lead_tracking", "full_name"),
    ):
        dupes = one(
            landing,
            f"select count(*) from (select 1 from {table} group by {name}, email, phone, source, created_at"
            " having count(*) > 1) as d",
        )
        assert dupes, table
    assert one(
        landing,
        "select count(*) from (select 1 from lead_journey group by lead_id, stage, source, metadata, created_at"
        " having count(*) > 1) as d",
    )
    # journey rows and notifications pointing at missing leads, and journey rows without a lead
    orphans = "lead_id is not null and lead_id not in (select id from landing_leads)"
    assert one(landing, f"select count(*) from lead_journey where {orphans}")
    assert one(landing, "select count(*) from lead_journey where lead_id is null")
    assert one(landing, f"select count(*) from scheduled_notifications where {orphans}")
    # but most of them point at a lead
    assert one(landing, f"select count(*) filter (where not ({orphans})) > 0.9 * count(*) from lead_journey")


def test_counts_follow_rows_and_ratios(stack: LocalStack) -> None:
    """--rows is the number of lead rows exactly (duplicates and a person's rows included),
    the journey and notifications follow their ratios, and the sequences are past the ids."""
    url, _counts = create_landing_db(stack, scratch_db("gen_counts"), rows=0, seed=1)
    with psycopg.connect(url, autocommit=True, client_encoding="UTF8") as conn:
        for rows in (*range(1, 120), 997):
            install_schema(conn)
            counts = generate(conn, rows, seed=rows)
            assert counts.lead_rows == rows
            # journey rows and notifications hang off landing_leads rows: none without them
            some = 1 if counts.rows["landing_leads"] else 0
            assert counts.rows["lead_journey"] == round(3.0 * rows) * some
            assert counts.rows["scheduled_notifications"] == round(0.1 * rows) * some
            actual = conn.execute(
                "select (select count(*) from landing_leads) + (select count(*) from lead_tracking)"
                " + (select count(*) from unified_lead_tracking)"
            ).fetchone()
            assert actual == (rows,)
        install_schema(conn)
        counts = generate(conn, 200, seed=2, journey_per_lead_row=0.5, notifications_per_lead_row=1)
        assert (counts.rows["lead_journey"], counts.rows["scheduled_notifications"]) == (100, 200)
        # Landing goes on writing after the fixture is made: ids from the sequences are free
        for table in ("lead_tracking", "lead_journey", "scheduled_notifications"):
            conn.execute(f"insert into {table} default values")


def test_same_seed_same_data_another_seed_other_data(stack: LocalStack) -> None:
    def dump(name: str, seed: int) -> dict[str, list[str]]:
        url, _counts = create_landing_db(stack, scratch_db(name), rows=300, seed=seed)
        with psycopg.connect(url) as conn:
            return {t: sorted(map(str, conn.execute(f"select * from {t}").fetchall())) for t in LEGACY_TABLES}

    first = dump("gen_seed_a", 5)
    assert dump("gen_seed_b", 5) == first
    other = dump("gen_seed_c", 6)
    assert all(other[t] != first[t] for t in LEGACY_TABLES)
