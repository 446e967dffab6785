"""onai_db.codegen.digit_language: the exact language of a finite digit pattern."""

from __future__ import annotations

import itertools
import re

import pytest

from onai_db.codegen.digit_language import buckets, in_buckets, language, matches, prefix_table

PATTERNS = [
    r"^(?:9(?:[0-24-9]\d{2}|3(?:0[15]|[1-9]\d))\d)$",
    r"^(?:7(?:0[0-25-8]|47)\d{2}|8\d{2,4})$",
    r"^(?:[2-4]\d?|5(?:1|2\d{2})|60{2}[1-3]?)$",
    r"^\d{4}$",
]


def every_digit_string(max_length: int) -> list[str]:
    return ["".join(d) for n in range(max_length + 1) for d in itertools.product("0123456789", repeat=n)]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_the_table_says_what_the_pattern_says_for_every_string(pattern: str) -> None:
    compiled = re.compile(pattern)
    table = prefix_table(pattern)
    grouped = {length: buckets(prefixes) for length, prefixes in table.items()}
    for digits in every_digit_string(5):
        want = bool(compiled.match(digits))
        assert matches(table, digits) == want, digits
        if len(digits) >= 3:
            assert in_buckets(grouped.get(len(digits), {}), digits) == want, digits


def test_the_prefixes_are_the_shortest() -> None:
    table = prefix_table(r"^(?:7(?:0[0-9]|1[0-4])\d{3}|8\d{5})$")
    assert table == {6: ["70", "710", "711", "712", "713", "714", "8"]}
    assert buckets(table[6]) == {
        **{f"70{d}": "" for d in "0123456789"},
        **{f"71{d}": "" for d in "01234"},
        **{f"8{d}{e}": "" for d in "0123456789" for e in "0123456789"},
    }


def test_deeper_prefixes_are_listed_in_their_bucket() -> None:
    table = prefix_table(r"^(?:93(?:0[15]|12)\d{6}|94\d{8})$")
    assert table == {10: ["9301", "9305", "9312", "94"]}
    grouped = buckets(table[10])
    assert grouped["930"] == ",9301,9305,"
    assert grouped["931"] == ",9312,"
    assert grouped["945"] == ""
    assert in_buckets(grouped, "9305123456") and not in_buckets(grouped, "9302123456")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"^(?=7)\d{10}$", "unsupported regular expression construct"),
        (r"^7\d+$", "unbounded repetition"),
        (r"^[7a]\d{3}$", "non-digit characters"),
        (r"7\d{3}", "anchored"),
    ],
)
def test_what_it_cannot_model_is_refused(pattern: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        language(pattern)
