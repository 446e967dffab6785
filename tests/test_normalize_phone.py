"""public.normalize_phone against its oracle (libphonenumber with the documented pre-processing)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onai_db.codegen import digit_language, phone_metadata
from onai_db.phone_samples import (
    DASHES,
    KZ_MOBILE_PREFIXES,
    LABELS,
    NEIGHBOURS,
    SPACES,
    group_ten,
    samples,
)
from onai_db.settings import find_project_dir
from support.cast import Cast
from support.phone_oracle import expected
from support.postgrest import ANON, ApiError, PostgrestSession

CORPUS_SIZE = 12_000
MIN_AGREEMENT = 0.995


def normalize_many(conn: psycopg.Connection, inputs: list[str | None]) -> list[str | None]:
    """One round trip: the function over the whole list, in order."""
    rows = conn.execute(
        "select public.normalize_phone(t.x) from unnest(%s::text[]) with ordinality as t(x, i) order by t.i",
        (inputs,),
    ).fetchall()
    return [r[0] for r in rows]


def disagreements(
    inputs: list[str | None], got: list[str | None]
) -> list[tuple[str | None, str | None, str | None]]:
    return [(x, expected(x), g) for x, g in zip(inputs, got, strict=True) if expected(x) != g]


def report(bad: list[tuple[str | None, str | None, str | None]], total: int) -> str:
    lines = [f"{len(bad)} of {total} disagree with the oracle (input, expected, got):"]
    lines += [f"  {x!r}: expected {e!r}, got {g!r}" for x, e, g in bad]
    return "\n".join(lines)


# --- the corpus ---------------------------------------------------------------------------


def test_corpus_agrees_with_libphonenumber(owner_conn: psycopg.Connection) -> None:
    inputs: list[str | None] = [*samples(CORPUS_SIZE), None]
    got = normalize_many(owner_conn, inputs)
    bad = disagreements(inputs, got)
    agreement = 1 - len(bad) / len(inputs)
    assert agreement >= MIN_AGREEMENT, report(bad, len(inputs))
    # the corpus is realistic: most inputs are numbers, and it exercises the NULL side too
    found = sum(g is not None for g in got)
    assert 0.6 * len(inputs) < found < 0.95 * len(inputs)
    assert {g for g in got if g and not g.startswith("+7")}, "no foreign number normalized"


def test_corpus_is_deterministic() -> None:
    assert samples(500) == samples(500)
    assert samples(500, seed=1) != samples(500)


def test_corpus_holds_every_way_people_type_a_number() -> None:
    """The oracle comparison is only as good as its corpus: it must keep the formats the
    docstring of phone_samples promises (a corpus of bare digits would pass it too)."""
    corpus = samples(CORPUS_SIZE)

    def share(pattern: str) -> float:
        return sum(bool(re.search(pattern, x)) for x in corpus) / len(corpus)

    nsn = r"[0-9]{3}"
    checks = {
        "grouped with spaces": rf"{nsn}[ \u00a0\u2009\u202f]{nsn}[ \u00a0\u2009\u202f]\d\d",
        "grouped with dashes": rf"{nsn}[-\u2011\u2013\u2014\u2212]{nsn}[-\u2011\u2013\u2014\u2212]\d\d",
        "area code in brackets": rf"\({nsn}\)",
        "dots": rf"{nsn}\.{nsn}\.\d\d\.\d\d",
        "NBSP or thin spaces": "[\u00a0\u2009\u202f]",
        "unicode dashes": "[\u2011\u2013\u2014\u2212]",
        "full-width digits": "[\uff10-\uff19]",
        "+7": r"^\+ ?7",
        "8": r"^8[ (-]?[0-9(]",
        "00 7": r"^00 ?7",
        "8 10 7": r"^8 ?10 7",
        "a label": r"^(tel:|Tel\.|тел\.|\(моб\)|моб\.|WhatsApp|Phone:)",
        "an extension": r"(доб|Доб|ext|[xX] ?\d|#\d)",
        "trailing punctuation": r"[;.,!)]$",
        "no digits at all": r"^[^0-9\uff10-\uff19]*$",
    }
    missing = {name: share(pattern) for name, pattern in checks.items() if share(pattern) < 0.001}
    assert not missing, missing
    assert share(rf"^{nsn}{nsn}\d{{4}}$") > 0.002, "bare 10-digit numbers"
    # most +7 / 8 numbers are written in groups (as group_ten writes them), not as bare digits
    assert share(r"^\D*[78]\D*\d{3}\D+\d{3}\D+\d\d") > 0.2, "grouped national numbers"
    assert share(r"^\+(?!7)\d") > 0.05, "foreign numbers"


def test_every_country_code_agrees(owner_conn: psycopg.Connection) -> None:
    """+<code> with random national numbers (with and without a national prefix) for every
    country code in the metadata, except those whose national prefix has a transform rule."""
    rng = random.Random(7)
    skipped = set(phone_metadata.transform_rule_codes())
    inputs: list[str | None] = []
    for country in phone_metadata.countries():
        if country.code in skipped:
            continue
        for _ in range(12):
            prefix = rng.choice(("", "", "0", "8", "1", "00", "80", "9"))
            body = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 16)))
            inputs.append(f"+{country.code} {prefix}{body}")
    got = normalize_many(owner_conn, inputs)
    bad = disagreements(inputs, got)
    assert bad == [], report(bad, len(inputs))


def test_digit_strings_agree(owner_conn: psycopg.Connection) -> None:
    """The parsing steps (+, 00, 8 10, 7, 8, none) over random digit strings."""
    rng = random.Random(11)
    prefixes = ("", "+", "+7", "+8", "8", "7", "87", "78", "00", "007", "810", "8107", "8108", "8100")
    inputs: list[str | None] = [
        rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 16)))
        for _ in range(4000)
    ]
    skipped = tuple(f"+{c}" for c in phone_metadata.transform_rule_codes())
    got = normalize_many(owner_conn, inputs)
    bad = [b for b in disagreements(inputs, got) if not str(expected(b[0]) or "").startswith(skipped)]
    assert bad == [], report(bad, len(inputs))


# --- the table of the research notes (queues-phones-integrations.md §2) and the rules -----

TABLE = [
    ("+7 (701) 123-45-67", "+77011234567"),  # 1
    ("8 701 123 45 67", "+77011234567"),  # 2
    ("8(701)1234567", "+77011234567"),  # 3
    ("77011234567", "+77011234567"),  # 4
    ("7011234567", "+77011234567"),  # 5
    ("007 701 123 45 67", "+77011234567"),  # 9: we read 00 as "+"
    ("8 10 7 701 123 45 67", "+77011234567"),  # 10
    ("877011234567", None),  # 11: 8 and 7 both
    ("+8 701 123 45 67", None),  # 12: +870 Inmarsat, too short
    ("+7 701 123 45 6", None),  # 13
    ("+7 701 123 45 678", None),  # 14
    ("+7 703 123 4567", None),  # 15: no such KZ range
    ("+7 704 123 4567", None),
    ("+7 747 123 4567", "+77471234567"),  # 16
    ("+7 700 123 4567", "+77001234567"),
    ("8 (727) 250-12-34", "+77272501234"),  # 17: Almaty
    ("8 7172 55 12 34", "+77172551234"),  # Astana
    ("+7 916 123-45-67", "+79161234567"),  # 18: RU mobile
    ("8 (495) 123-45-67", "+74951234567"),  # 19: RU fixed
    ("+7 800 555 35 35", "+78005553535"),  # 20: RU toll-free
    ("+7 612 345 67 89", None),  # +7 6xx: neither RU nor KZ
    ("1234567", None),  # 21: local only
    ("12", None),  # 22
    ("+7 701 ABC 4567", None),  # 23: no keypad conversion
    ("+7 701 O12 3456", None),  # 24
    ("hello", None),  # 25
    ("", None),
    ("   ", None),
    ("+7 701 123 45 67 доб. 12", "+77011234567"),  # 26
    ("+7 701 123 45 67 ext. 12", "+77011234567"),
    ("+7 701 123 45 67 x12", "+77011234567"),
    # an extension in brackets, as libphonenumber reads it (NULL before 20261215100000)
    ("+7 701 123 45 67 (доб. 101)", "+77011234567"),
    ("8 (727) 250-12-34 [ext 5]", "+77272501234"),
    ("+7 701 123 45 67(x12)", "+77011234567"),
    ("+7 701 123 45 67 ( доб 5 );", "+77011234567"),
    ("+7 701 123 45 67 (доб. 101", "+77011234567"),
    ("+7 701 123 45 67, (доб. 101)", None),  # libphonenumber: no number
    ("+1 415 555 2671 (ext. 12)", "+14155552671"),
    ("tel:+7-701-123-45-67", "+77011234567"),  # 27
    ("+７ ７０１ １２３ ４５ ６７", "+77011234567"),
    ("+7\u00a0701\u00a0123\u201145\u201167", "+77011234567"),
    # a phone's "copy number" wraps the number in bidirectional marks (found by review: NULL)
    ("\u202a+7 701 123 45 67\u202c", "+77011234567"),
    ("\u202d+7 701 123 45 67\u202c", "+77011234567"),
    ("\u2066+77011234567\u2069", "+77011234567"),
    ("\u200e8 701 123 45 67\u200e", "+77011234567"),
    ("+7 701\u200f 123 45 67", "+77011234567"),
    ("+7 701 123 45 67 #", "+77011234567"),  # trailing junk is dropped
    ("tel: +7 701 123 45 67;", "+77011234567"),
    ("  (моб) 8-701-123-45-67 ", "+77011234567"),
    ("8 701 123 45 67 Айгуль", None),  # letters after the number
    ("8 701 123 45 67, 8 702 123 45 67", None),  # two numbers
    ("7 + 701 123 45 67", None),  # a plus in the middle
    ("+996 555 123 456", "+996555123456"),  # KG
    ("+998 90 123 45 67", "+998901234567"),  # UZ
    ("8 10 998 90 123 45 67", "+998901234567"),
    ("00998901234567", "+998901234567"),
    ("00 44 20\u20107946 0958", "+442079460958"),  # 00 on the separators' path (mutation review)
    ("+86 138 0013 8000", "+8613800138000"),  # CN
    ("+380 (0)50 123 45 67", "+380501234567"),  # UA, national prefix kept by mistake
    ("+90 532 123 45 67", "+905321234567"),  # TR
    ("+996 555 123 45", None),  # KG, too short
    ("+0 701 123 45 67", None),  # no such country code
]


@pytest.mark.parametrize(("raw", "want"), TABLE, ids=[repr(r) for r, _ in TABLE])
def test_table(owner_conn: psycopg.Connection, raw: str, want: str | None) -> None:
    assert expected(raw) == want, "the oracle itself disagrees with the table"
    assert owner_conn.execute("select public.normalize_phone(%s)", (raw,)).fetchone()[0] == want


def test_null_is_null(owner_conn: psycopg.Connection) -> None:
    assert owner_conn.execute("select public.normalize_phone(null)").fetchone()[0] is None


# --- properties ---------------------------------------------------------------------------

kz_nsn = st.builds(
    lambda p, rest: p + rest,
    st.sampled_from(KZ_MOBILE_PREFIXES),
    st.text(alphabet="0123456789", min_size=7, max_size=7),
)


def formats(nsn: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    sp, dash = rng.choice(SPACES), rng.choice(DASHES)
    body = group_ten(nsn, rng)
    return [
        f"+7{sp}{body}",
        f"8{sp}{body}",
        f"7{body}",
        body,
        f"00{sp}7{sp}{body}",
        f"8{sp}10{sp}7{sp}{body}",
        f"+7{dash}{nsn}",
        rng.choice(LABELS) + f"+7 {body}",
        f"+7 {body} доб. {seed % 1000}",
        f"+7 {body}".translate(str.maketrans("0123456789+", "０１２３４５６７８９＋")),
    ]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(nsn=kz_nsn, seed=st.integers(min_value=0, max_value=10_000))
def test_all_formats_of_one_number_agree(owner_conn: psycopg.Connection, nsn: str, seed: int) -> None:
    variants = formats(nsn, seed)
    assert set(normalize_many(owner_conn, list(variants))) == {"+7" + nsn}, variants


typed = st.text(alphabet="0123456789 +-().78", max_size=22) | st.sampled_from(samples(300, seed=3))
neighbour = st.builds(
    lambda c, digits: f"+{c.code} {digits}",
    st.sampled_from(NEIGHBOURS),
    st.text(alphabet="0123456789", min_size=6, max_size=12),
)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(raw=typed | neighbour)
def test_idempotent_and_agrees_with_oracle(owner_conn: psycopg.Connection, raw: str) -> None:
    once, twice = owner_conn.execute(
        "select public.normalize_phone(%s), public.normalize_phone(public.normalize_phone(%s))", (raw, raw)
    ).fetchone()
    assert once == expected(raw)
    if once is not None:
        assert once.startswith("+") and once[1:].isdigit()
        # libphonenumber itself is not idempotent for a few countries with a 0 national
        # prefix (+49 000000 -> +4900000 -> +490000); the SQL does what it does, and for
        # +7 it is idempotent
        assert twice == expected(once)
        if once.startswith("+7"):
            assert twice == once


def test_corpus_results_are_fixed_points(owner_conn: psycopg.Connection) -> None:
    """normalize_phone(normalize_phone(x)) = normalize_phone(x) for every corpus result."""
    rows = owner_conn.execute(
        """
        select t.y, public.normalize_phone(t.y)
        from (select public.normalize_phone(x) as y from unnest(%s::text[]) as x) as t
        where t.y is not null
        """,
        (samples(CORPUS_SIZE),),
    ).fetchall()
    assert len(rows) > CORPUS_SIZE // 2
    assert [(y, again) for y, again in rows if again != y] == []


# --- the function's declaration and who may call it ----------------------------------------


def test_declared_immutable_strict_parallel_safe(owner_conn: psycopg.Connection) -> None:
    # PL/pgSQL since 20261122100000 (docs/phone.md, "Performance"): a SQL function with the
    # required SET clause is never inlined and was ~3x slower; immutable + strict + parallel
    # safe keeps it usable in expression indexes and generated columns.
    row = owner_conn.execute(
        """
        select p.provolatile, p.proparallel, p.proisstrict, l.lanname, p.proconfig, p.prosecdef,
               pg_catalog.obj_description(p.oid, 'pg_proc')
        from pg_catalog.pg_proc as p
        join pg_catalog.pg_language as l on l.oid = p.prolang
        where p.oid = 'public.normalize_phone(text)'::regprocedure
        """
    ).fetchone()
    volatile, parallel, strict, language, config, secdef, comment = row
    assert (volatile, parallel, strict, language, secdef) == ("i", "s", True, "plpgsql", False)
    assert config == ['search_path=""']
    assert comment and "E.164" in comment


def test_callable_by_signed_in_users(api: PostgrestSession, cast: Cast) -> None:
    for actor in (cast.student, cast.targetologist, cast.sales_manager, cast.admin):
        rows = api.rpc(actor, "normalize_phone", p_phone="8 701 123 45 67")
        assert rows == [{"normalize_phone": "+77011234567"}]


def test_anon_may_not_call_it(api: PostgrestSession) -> None:
    with pytest.raises(ApiError) as err:
        api.rpc(ANON, "normalize_phone", p_phone="8 701 123 45 67")
    assert err.value.code == "42501"
    assert err.value.status == 401


# --- the generated migration -----------------------------------------------------------------


def test_migration_is_the_generator_output() -> None:
    committed = (find_project_dir() / phone_metadata.MIGRATION).read_text()
    assert committed == phone_metadata.render(), (
        f"{phone_metadata.MIGRATION} is not what the generator renders now (phonenumbers upgraded, or a Python with"
        " newer Unicode data?): render"
        " into a NEW migration and point phone_metadata.MIGRATION at it (docs/phone.md, Regenerating);"
        " applied migrations are never edited"
    )


def test_generator_sources_are_in_the_package() -> None:
    assert Path(phone_metadata.TEMPLATE_PATH).is_file()


def test_cc7_prefix_rules_match_phonenumbers() -> None:
    assert phone_metadata.check_cc7_prefix_rules() == []


def test_fast_steps_match_the_prefix_rules() -> None:
    assert phone_metadata.check_nsn_by_length() == []


def test_cc7_validity_table_is_the_pattern() -> None:
    """The +7 validity table against the metadata's pattern: every ten-digit number by its
    first six digits (no pattern looks deeper) with two different tails, and the
    fourteen-digit ones by their first five."""
    pattern = re.compile(phone_metadata.cc7_valid_regex())
    table = phone_metadata.cc7_valid_table()
    assert set(table) == {10, 14}
    for length, depth in ((10, 6), (14, 5)):
        buckets = digit_language.buckets(table[length])
        wrong = [
            nsn
            for head in range(10**depth)
            for nsn in (f"{head:0{depth}d}".ljust(length, tail) for tail in "09")
            if bool(pattern.match(nsn)) != digit_language.in_buckets(buckets, nsn)
        ]
        assert wrong == []


# The shortcuts of the generated body next to each other: labels (with full-width digits,
# which are not a label), trailing punctuation (after unicode separators too), the 7 / 8 /
# 8 10 / 00 prefixes before RU and KZ numbers, and inputs with nothing left after trimming.
EDGE_INPUTS = [
    f"{label}{prefix}{number}{trailer}"
    for label in ("", "tel:", "Тел. ", "\t", "(моб) ", "１ ", "x", "#", "№ ", "+ ", "\u200b")
    for prefix in ("", "+7 ", "8 ", "7 ", "8 10 7 ", "00 7 ", "+8 ", "810", "+")
    for number in (
        "701 123 45 67",
        "727 272 12 34",
        "916 123-45-67",
        "495 123 45 67",
        "811 234 56 78",
        "８７０１２３４５６７",
        "996 555 123 456",
        "70112345",
        "7011234567 8",
    )
    for trailer in ("", ";", " )", ".\u00a0", "\u00a0;", " доб. 12", "!", "-", "Айгуль")
] + ["", " ", "()", "-", "---", "+", "tel:", ";", "8", "+7", "7 ", "８", "тел. ;"]


def test_same_results_as_the_first_plain_sql_version(owner_conn: psycopg.Connection) -> None:
    """The generated body replaced the plain SQL one of the first migration (frozen, like
    every applied migration): both, side by side, over a corpus larger than the oracle's
    and the edge cases of the shortcuts."""
    first = (find_project_dir() / phone_metadata.FIRST_MIGRATION).read_text()
    body = first[first.index("create or replace function") : first.index("comment on function")]
    owner_conn.execute(body.replace("public.normalize_phone(", "pg_temp.normalize_phone_first("))
    owner_conn.execute("create temporary table phone_inputs (x text)")
    assert len(EDGE_INPUTS) > 7_000
    with owner_conn.cursor().copy("copy phone_inputs (x) from stdin") as copy:
        for value in [*samples(60_000, seed=7), *EDGE_INPUTS]:
            copy.write_row((value,))
    differ = owner_conn.execute(
        """
        select x, public.normalize_phone(x), pg_temp.normalize_phone_first(x)
        from phone_inputs
        where public.normalize_phone(x) is distinct from pg_temp.normalize_phone_first(x)
        limit 50
        """
    ).fetchall()
    assert differ == []


DOC_ROW = re.compile(r"^\| `([^`]*)`[^|]*\| (?:`([^`]*)`|NULL)")


def test_docs_examples(owner_conn: psycopg.Connection) -> None:
    """Every example row of docs/phone.md, against the function and the oracle."""
    rows = [
        m.groups()
        for line in (find_project_dir() / "docs/phone.md").read_text().splitlines()
        if (m := DOC_ROW.match(line))
    ]
    assert len(rows) >= 30
    inputs = [raw for raw, _ in rows]
    got = normalize_many(owner_conn, inputs)
    assert [(raw, want) for raw, want in rows] == [(raw, expected(raw)) for raw in inputs]
    assert [(raw, want) for raw, want in rows] == list(zip(inputs, got, strict=True))
