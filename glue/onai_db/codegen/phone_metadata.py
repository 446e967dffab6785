"""Generate the migration that defines ``public.normalize_phone`` from libphonenumber metadata.

``python -m onai_db.codegen.phone_metadata > supabase/migrations/<timestamp>_normalize_phone_<what>.sql``
(a new migration, named first in ``MIGRATION`` below; applied migrations are never edited)

Everything the SQL needs to know about numbering plans is read here from the installed
``phonenumbers`` package (the Python port of Google's libphonenumber metadata):

- country code 7 (RU and KZ): the general patterns used when stripping the ``8`` trunk
  prefix, the lengths that keep a stripped number, and whether a national significant
  number (NSN) is *valid* (RU when it starts with 3/4/8/9, KZ when it starts with 7,
  matching one of the region's number types, lengths included) as a table of the first
  digits that make a number of each length valid (``digit_language``: the exact set the
  pattern matches, no sampling), looked up in jsonb by the first three digits;
- every other country code: the code itself, its national prefix for parsing, its general
  pattern, and its *possible* lengths (local-only lengths included, as
  ``is_possible_number`` counts them), as jsonb maps keyed by the code.

The SQL mirrors ``phonenumbers.parse(number, "KZ")`` step by step; see docs/phone.md.
The header of the generated file names the phonenumbers version it came from, and
``tests/test_normalize_phone.py`` fails when the committed migration differs from a fresh
rendering with the installed version.
"""

from __future__ import annotations

import functools
import random
import re
import re._parser as re_parser
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata
from phonenumbers.phonemetadata import PhoneNumberDesc
from phonenumbers.phonenumberutil import (
    ValidationResult,
    _test_number_length,
    region_code_for_country_code,
)

from onai_db.codegen.digit_language import buckets, in_buckets, matches, prefix_table

TEMPLATE_PATH = Path(__file__).with_name("normalize_phone.sql.in")
# The migration that holds the current rendering; a regeneration goes into a new file, named here.
MIGRATION = "supabase/migrations/20261215100000_normalize_phone_bracketed_extensions.sql"
# The first, plain SQL version (frozen like every applied migration; not rendered any more).
FIRST_MIGRATION = "supabase/migrations/20261121110000_normalize_phone.sql"
MAX_NSN = 17  # libphonenumber's _MAX_LENGTH_FOR_NSN
MIN_NSN = 2  # libphonenumber's _MIN_LENGTH_FOR_NSN
LENGTH_PROBE = 30  # lengths 0..LENGTH_PROBE are classified one by one; longer ones like the last
CHUNK = 100_000  # regex literals stay on one line (sqlfluff does not lint inside the $$ body)

# Countries whose national prefix for parsing comes with a transform rule (AR, BR, JP, ...).
# Their prefix is not stripped by the SQL (see docs/phone.md, "Known differences").
TYPE_ATTRS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)

# Characters folded before parsing: full-width digits and plus, unicode spaces, dashes
# and brackets become their ASCII forms; zero-width characters and the soft hyphen are
# dropped, as are the bidirectional marks a phone's "copy number" wraps a number in (U+202A
# or U+202D ... U+202C, U+200E, U+2066-U+2069; found by review: such a number was NULL, and
# each submission a new lead) (translate() deletes characters that have no counterpart).
FOLD_FROM = (
    "０１２３４５６７８９＋（）［］．／"
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000\t\n\r\u000b\u000c"
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
    "\u200b\u200c\u200d\u2060\ufeff\u00ad"
    "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
FOLD_TO = "0123456789+()[]./" + " " * 21 + "-" * 10

# The whole (folded) input: a label without digits or '+', the number (optional leading
# '+' signs, then digits and separators, ending with a digit), an optional extension,
# trailing punctuation. Group 1 is the number.
SEPARATORS = r" ().\[\]/"  # and "-", which goes last in a bracket expression
# An extension may be opened by a bracket, "(доб. 12)" (its closing one is trailing
# punctuation): libphonenumber reads it, and the number was NULL before 20261215100000.
EXTENSION = (
    r"(?:(?:[ ,;]*|[ ]*[(\[][ ]*)"
    r"(?:[eE][xX][tT](?:[nN]|[eE][nN][sS][iI][oO][nN])?|[xX]|#|доб|Доб|ДОБ|добавочный)"
    r"[.:= ]*[0-9]{1,10})"
)
TRAILING = SEPARATORS + r",;:!?#*'\""
# The same characters, plainly (for rtrim): the punctuation that may follow a number.
TRAILING_CHARS = " ().[]/,;:!?#*'\"-"
CORE_PATTERN = rf"^[^0-9+]*(\+*[0-9{SEPARATORS}-]*[0-9]){EXTENSION}?[{TRAILING}-]*$"
# The SQL tests the whole shape without a capture (captures are slow in PostgreSQL's
# matcher), then removes the label (^[^0-9+]+) and what follows the number (CORE_TAIL:
# its leftmost match is the extension and punctuation, as the number ends with a digit
# and neither may contain one before the extension's keyword).
CORE_MATCH = CORE_PATTERN.replace("(\\+*", "(?:\\+*", 1)
CORE_TAIL = rf"{EXTENSION}?[{TRAILING}-]*$"


# The separators the fast path of the function removes with replace() (cheaper than any
# regular expression): the ASCII ones and the unicode spaces and dashes that numbers
# copied from documents and web pages carry most. Every one of them is in
# simple_input_regex, so the fast path sees exactly the digits the general path would.
FAST_SEPARATORS = " -().\u00a0\u2009\u202f\u2011\u2013\u2014\u2212"


def nested_replace_sql(argument: str, chars: str, by: str = "") -> str:
    """Nested replace() calls turning each of ``chars`` in ``argument`` into ``by``
    (cheaper in PostgreSQL than one translate() or regexp_replace())."""
    expr = argument
    for ch in chars:
        expr = f"pg_catalog.replace({expr}, {unicode_literal(ch)}, '{by}')"
    return expr


def fast_strip_sql(argument: str) -> str:
    """Nested replace() calls removing FAST_SEPARATORS from ``argument``."""
    simple = re.compile(simple_input_regex())
    for ch in FAST_SEPARATORS:
        assert simple.match(ch), f"{ch!r} is not a separator of simple_input_regex"
    return nested_replace_sql(argument, FAST_SEPARATORS)


def _right(s: str, n: int) -> str:
    """PostgreSQL's right(s, n): the last n characters, or all of a shorter string."""
    return s[-n:] if len(s) >= n else s


def _left_drop(s: str, n: int) -> str:
    """PostgreSQL's left(s, -n): all but the last n characters ('' when shorter)."""
    return s[: len(s) - n] if len(s) > n else ""


def fast_cc7_shape(digits: str) -> bool:
    """The SQL's step 1 test without its validity lookup: ten digits at the end, after
    +7, 8, nothing, or 7 when they start with 7 or 8. check_nsn_by_length proves that for
    every such key the general steps take exactly those ten digits as the NSN."""
    return (
        len(digits) >= 10
        and _right(digits, 10).lstrip("0123456789") == ""
        and (_left_drop(digits, 10) in ("", "+7", "8") or _left_drop(digits, 9) in ("77", "78"))
    )


FAST_CC7_SQL = """if pg_catalog.length(v_digits) >= 10
  and pg_catalog.ltrim(pg_catalog.right(v_digits, 10), '0123456789') = ''
  and (pg_catalog.left(v_digits, -10) in ('', '+7', '8') or pg_catalog.left(v_digits, -9) in ('77', '78'))
  and {valid} then
  return '+7' || pg_catalog.right(v_digits, 10);
end if;"""


def fast_cc7_sql(indent: int) -> str:
    """Step 1's test (fast_cc7_shape and a valid ten-digit NSN), indented."""
    table = cc7_valid_table()
    assert 10 in table, "no valid ten-digit +7 numbers?"
    sql = FAST_CC7_SQL.format(valid=bucket_test_sql(buckets(table[10]), "pg_catalog.right(v_digits, 10)", 4))
    return "\n".join(" " * indent + line for line in sql.splitlines())


def nsn_by_length(key: str) -> str:
    """The SQL's step 3 (the key after the international prefixes became '+'): the usual
    lengths by hand, the others by the prefix rules. check_nsn_by_length proves it equal
    to strip_cc7_prefix."""
    if len(key) == 12 and key.startswith("+7"):
        return key[2:]
    if len(key) == 11 and key.startswith(("8", "77", "78")):
        return key[1:]
    if len(key) == 10 and not key.startswith("+"):
        return key
    return strip_cc7_prefix(key)


def international_key(key: str) -> str:
    """The SQL's '+' rule: '+' signs, a leading 00 or 8 10 (not followed by 0)."""
    if key.startswith("+"):
        return "+" + key.lstrip("+")
    if key.startswith("00"):
        return "+" + key[2:]
    if re.match("810[1-9]", key):
        return "+" + key[3:]
    return key


def check_nsn_by_length() -> list[str]:
    """Keys where nsn_by_length and strip_cc7_prefix differ, or where the fast path's
    shape (fast_cc7_shape) holds but the general steps would take another NSN than the
    last ten digits. Every first four digits and every length from 1 to 16, with and
    without '+7' (parse() looks at no more than the first digits and the length)."""
    valid = cc7_valid_table()[10]
    wrong = []
    for length in range(1, 17):
        for head in range(10_000):
            digits = (f"{head:04d}" + "5" * 20)[:length]
            for key in (digits, "+7" + digits):
                general = international_key(key)
                if general.startswith("+") and not general.startswith("+7"):
                    nsn = None
                else:
                    nsn = strip_cc7_prefix(general)
                    if nsn_by_length(general) != nsn:
                        wrong.append(key)
                # the exceptions (a leading 00 or 8 10 taken as international) start
                # NSNs that are never valid, so the validity lookup keeps them out
                if fast_cc7_shape(key) and nsn != key[-10:]:
                    known = digits[max(len(digits) - 10, 0) : 4]  # the NSN's digits from head
                    if any(p.startswith(known) or known.startswith(p) for p in valid):
                        wrong.append(key)
    return wrong


def fold_ascii_sql(argument: str) -> str:
    """FOLD_FROM / FOLD_TO for ASCII input: only the control characters change."""
    folded = [
        (src, dst)
        for src, dst in zip(FOLD_FROM, FOLD_TO.ljust(len(FOLD_FROM)), strict=True)
        if ord(src) < 128
    ]
    assert all(src in "\t\n\r\x0b\x0c" and dst == " " for src, dst in folded), folded
    return nested_replace_sql(argument, "".join(src for src, _ in folded), " ")


def number_strip_sql(argument: str) -> str:
    """Nested replace() calls removing the separators a number part may hold."""
    return nested_replace_sql(argument, SEPARATORS.replace("\\", "") + "-")


def other_digits_regex() -> str:
    """A bracket expression of every decimal digit (Unicode category Nd) that is neither an
    ASCII nor a full-width digit (those are read): Arabic-Indic, Persian, Devanagari,
    mathematical bold, ... An input holding one is no number. Before 20261214100200 a label
    was anything before the first digit it knew, so the "001" of "٠٠١ 415 555 2671" was
    dropped as a label and the rest read as the Russian +7 415 555 26 71 (found by review)."""
    known = set("0123456789０１２３４５６７８９")
    digits = [
        cp
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) == "Nd" and chr(cp) not in known
    ]
    ranges: list[tuple[int, int]] = []
    for cp in digits:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1] = (ranges[-1][0], cp)
        else:
            ranges.append((cp, cp))
    return "[" + "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges) + "]"


def label_regex() -> str:
    """A label before the number, on the unfolded input: every character up to the first
    one that is, or folds to, a digit or '+' (what the general steps drop as a label)."""
    to_number = "".join(c for c, to in zip(FOLD_FROM, FOLD_TO, strict=False) if to in "0123456789+")
    assert to_number == "０１２３４５６７８９＋", to_number
    return "^[^0-9+" + to_number + "]+"


def trimmed_strip_sql(argument: str) -> str:
    """The fast strip of ``argument`` without its label and trailing punctuation."""
    trailing = re.compile(f"[{TRAILING}-]")
    assert {chr(c) for c in range(128) if trailing.fullmatch(chr(c))} == set(TRAILING_CHARS)
    label = unicode_literal(label_regex())
    inner = f"pg_catalog.rtrim(pg_catalog.regexp_replace({argument}, {label}, ''), {sql_literal(TRAILING_CHARS, 0)})"
    return fast_strip_sql(inner)


DIGITS_ONLY_SQL = (
    "pg_catalog.ltrim(v_digits, '0123456789') = ''\n{pad}or (v_digits like '+%' and"
    " pg_catalog.ltrim(pg_catalog.substr(v_digits, 2), '0123456789') = '')"
)
# international_key for a key that is digits with at most one leading '+'
INTERNATIONAL_DIGITS_SQL = """case
{pad}  when v_digits like '00%' then '+' || pg_catalog.substr(v_digits, 3)
{pad}  when v_digits like '810_%' and v_digits not like '8100%' then '+' || pg_catalog.substr(v_digits, 4)
{pad}  else v_digits
{pad}end"""
# international_key: '+' signs, a leading 00, or the 8 10 international prefix (not
# followed by 0) mean '+'
INTERNATIONAL_KEY_SQL = """case
{pad}  when v_key like '+%' then '+' || pg_catalog.ltrim(v_key, '+')
{pad}  when v_key like '00%' then '+' || pg_catalog.substr(v_key, 3)
{pad}  when v_key like '810_%' and v_key not like '8100%' then '+' || pg_catalog.substr(v_key, 4)
{pad}  else v_key
{pad}end"""


def simple_input_regex() -> str:
    """Inputs that are only digits and separators after an optional '+': the ASCII
    separators and every character that folds to one (or is dropped by the fold)."""
    folded = dict(zip(FOLD_FROM, FOLD_TO.ljust(len(FOLD_FROM), " "), strict=True))
    extra = sorted(c for c, to in folded.items() if to in " -" and ord(c) > 127)
    return "^[+]?[0-9 ()." + "".join(extra) + "-]*$"


@dataclass(frozen=True)
class Country:
    code: int
    region: str
    metadata: PhoneMetadata

    @property
    def prefix_for_parsing(self) -> str | None:
        npfp = self.metadata.national_prefix_for_parsing
        if not npfp or self.metadata.national_prefix_transform_rule:
            return None
        return non_capturing(npfp)


def non_capturing(pattern: str) -> str:
    """Turn capturing groups into non-capturing ones (the SQL needs only the match)."""
    return re.sub(r"\((?!\?)", "(?:", pattern)


def countries() -> list[Country]:
    found = []
    for code in sorted(COUNTRY_CODE_TO_REGION_CODE):
        region = region_code_for_country_code(code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        assert metadata is not None, f"no metadata for +{code}"
        found.append(Country(code, region, metadata))
    codes = [str(c.code) for c in found]
    assert not [(a, b) for a in codes for b in codes if a != b and b.startswith(a)], "codes not prefix-free"
    return found


def transform_rule_codes() -> list[int]:
    return [c.code for c in countries() if c.metadata.national_prefix_transform_rule]


def lengths_where(metadata: PhoneMetadata, results: Iterable[int]) -> tuple[list[int], bool]:
    """NSN lengths whose _test_number_length result is in ``results``; and whether every
    length above LENGTH_PROBE is too (they all classify like LENGTH_PROBE)."""
    wanted = set(results)
    hits = [n for n in range(LENGTH_PROBE + 1) if _test_number_length("1" * n, metadata) in wanted]
    return [n for n in hits if n < LENGTH_PROBE], LENGTH_PROBE in hits


def lengths_regex(lengths: list[int], open_ended_from: int | None = None) -> str:
    """``\\d{n}`` alternatives, runs of consecutive lengths as ``\\d{a,b}`` (``\\d{a,}`` when open)."""
    runs: list[list[int]] = []
    for n in sorted(lengths):
        if runs and runs[-1][1] == n - 1:
            runs[-1][1] = n
        else:
            runs.append([n, n])
    if open_ended_from is not None:
        if runs and runs[-1][1] == open_ended_from - 1:
            runs[-1][1] = -1
        else:
            runs.append([open_ended_from, -1])
    parts = []
    for low, high in runs:
        if high == -1:
            parts.append(rf"\d{{{low},}}")
        elif low == high:
            parts.append(rf"\d{{{low}}}")
        else:
            parts.append(rf"\d{{{low},{high}}}")
    return "|".join(parts)


POSSIBLE = (ValidationResult.IS_POSSIBLE, ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
# parse() keeps a stripped national prefix unless the rest is one of these
NOT_KEPT = (
    ValidationResult.TOO_SHORT,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ValidationResult.INVALID_LENGTH,
)
KEPT = tuple(r for r in range(-1, 8) if r not in NOT_KEPT)


def possible_lengths(metadata: PhoneMetadata) -> list[int]:
    lengths, _ = lengths_where(metadata, POSSIBLE)
    return [n for n in lengths if MIN_NSN <= n <= MAX_NSN]


def kept_lengths_regex(metadata: PhoneMetadata) -> str:
    lengths, open_ended = lengths_where(metadata, KEPT)
    return lengths_regex(lengths, LENGTH_PROBE if open_ended else None)


def desc_regex(desc: PhoneNumberDesc) -> str:
    """A number matches the desc: one of its lengths and its pattern (a full match)."""
    lengths = "|".join(rf"\d{{{n}}}" for n in desc.possible_length if n > 0)
    lookahead = f"(?=(?:{lengths})$)" if lengths else ""
    return f"{lookahead}(?:{desc.national_number_pattern})$"


@dataclass(frozen=True)
class Shape:
    """What a digit pattern can match, over-approximated: its first digits and its lengths."""

    first: frozenset[str]
    lengths: frozenset[int]


def _shape_of_items(items: list) -> Shape | None:
    first: set[str] = set()
    lengths = {0}
    for op, arg in items:
        part = _shape_of_item(op, arg)
        if part is None:
            return None
        if 0 in lengths:  # everything so far may be empty: this part's first digits count
            first |= part.first
        lengths = {a + b for a in lengths for b in part.lengths}
    return Shape(frozenset(first), frozenset(lengths))


def _shape_of_item(op: object, arg: Any) -> Shape | None:  # arg: the parser's untyped tuple
    digits = frozenset("0123456789")
    name = str(op)
    if name == "LITERAL":
        return Shape(frozenset({chr(arg)}), frozenset({1}))
    if name == "IN":
        chars: set[str] = set()
        for kind, value in arg:
            if str(kind) == "LITERAL":
                chars.add(chr(value))
            elif str(kind) == "RANGE":
                chars |= {chr(c) for c in range(value[0], value[1] + 1)}
            elif str(kind) == "CATEGORY" and str(value) == "CATEGORY_DIGIT":
                chars |= digits
            else:
                return None
        return Shape(frozenset(chars), frozenset({1}))
    if name == "SUBPATTERN":
        return _shape_of_items(list(arg[3]))
    if name == "BRANCH":
        parts = [_shape_of_items(list(b)) for b in arg[1]]
        if any(p is None for p in parts):
            return None
        return Shape(
            frozenset().union(*(p.first for p in parts if p)),
            frozenset().union(*(p.lengths for p in parts if p)),
        )
    if name in ("MAX_REPEAT", "MIN_REPEAT"):
        low, high, items = arg
        inner = _shape_of_items(list(items))
        if inner is None or high > LENGTH_PROBE:
            return None
        lengths = {0}
        total: set[int] = {0} if low == 0 else set()
        for k in range(1, high + 1):
            lengths = {a + b for a in lengths for b in inner.lengths}
            if k >= low:
                total |= lengths
        return Shape(inner.first, frozenset(total))
    return None


def shape(pattern: str) -> Shape | None:
    return _shape_of_items(list(re_parser.parse(pattern)))


def general_branches(desc: PhoneNumberDesc) -> list[Shape] | None:
    """The general pattern as ``[first digits]\\d{n}`` branches, when it has that form."""
    tree = list(re_parser.parse(desc.national_number_pattern))
    branches = [list(b) for b in tree[0][1][1]] if len(tree) == 1 and str(tree[0][0]) == "BRANCH" else [tree]
    found = []
    for branch in branches:
        if len(branch) != 2:
            return None
        head, tail = _shape_of_items(branch[:1]), _shape_of_items(branch[1:])
        if head is None or tail is None or head.lengths != {1} or len(tail.lengths) != 1:
            return None
        if tail.first != frozenset("0123456789"):
            return None
        found.append(Shape(head.first, frozenset(1 + n for n in tail.lengths)))
    return found


def covered(part: Shape, general: list[Shape], general_lengths: tuple[int, ...]) -> bool:
    """Every string of ``part`` also matches the general desc (pattern and lengths)."""
    return part.lengths <= set(general_lengths) and all(
        any(c in g.first and n in g.lengths for g in general) for c in part.first for n in part.lengths
    )


def general_desc(metadata: PhoneMetadata) -> PhoneNumberDesc:
    """A region's general description (every region in libphonenumber's metadata has one)."""
    desc = metadata.general_desc
    assert desc is not None and desc.national_number_pattern, metadata.id
    return desc


def region_metadata(region: str) -> PhoneMetadata:
    md = PhoneMetadata.metadata_for_region(region)
    assert md is not None, region
    return md


def valid_regex_for(metadata: PhoneMetadata, leading: str) -> str:
    """NSNs valid for the region among those starting with ``leading`` (its leading digits).

    A number is valid when it matches the general desc and one of the type descs, lengths
    included. Lookaheads are slow in PostgreSQL, so a length or general-desc lookahead is
    written only when the shape of the type pattern does not already imply it, and a type
    none of whose numbers starts with the leading digits is left out."""
    lead = shape(leading)
    assert lead is not None and lead.lengths == {1}
    whole = general_desc(metadata)
    general = general_branches(whole)
    alternatives = []
    for attr in TYPE_ATTRS:
        desc = getattr(metadata, attr)
        if desc is None or not desc.national_number_pattern:
            continue
        part = shape(desc.national_number_pattern)
        if part is not None and not (part.first & lead.first):
            continue  # starts elsewhere: belongs to the other region of +7
        pieces = []
        if part is None or not part.first <= lead.first:
            pieces.append(f"(?={leading})")
        if part is None or general is None or not covered(part, general, whole.possible_length):
            pieces.append(f"(?={desc_regex(whole)})")
        if part is None or not part.lengths <= set(desc.possible_length):
            lengths = "|".join(rf"\d{{{n}}}" for n in desc.possible_length if n > 0)
            pieces.append(f"(?=(?:{lengths})$)")
        pieces.append(f"(?:{desc.national_number_pattern})")
        alternatives.append("".join(pieces))
    return "|".join(alternatives)


def cc7_metadata() -> tuple[PhoneMetadata, PhoneMetadata]:
    assert COUNTRY_CODE_TO_REGION_CODE[7] == ("RU", "KZ"), COUNTRY_CODE_TO_REGION_CODE[7]
    ru = region_metadata("RU")
    kz = region_metadata("KZ")
    for md in (ru, kz):
        # the SQL hard-codes these (8 trunk prefix, 8~10 international prefix)
        assert md.national_prefix_for_parsing == "8" and not md.national_prefix_transform_rule
        assert md.international_prefix == "810"
    assert ru.leading_digits == "[3489]" and kz.leading_digits == "7"
    return ru, kz


def cc7_valid_regex() -> str:
    """NSN valid for +7: RU when it starts with RU's leading digits, KZ likewise."""
    ru, kz = cc7_metadata()
    assert ru.leading_digits and kz.leading_digits
    return f"^(?:{valid_regex_for(ru, ru.leading_digits)}|{valid_regex_for(kz, kz.leading_digits)})$"


# What parse(number, "KZ") strips before the national significant number of a +7 number,
# as alternatives of one anchored pattern (PostgreSQL takes the longest that matches; the
# alternatives are written so that at most one does). Derived by hand from the metadata
# facts asserted in cc7_prefix_regex and checked against phonenumbers by
# check_cc7_prefix_rules for every first three digits and every length up to 20:
CC7_PREFIX_RULES = (
    # +7 then an 8 trunk prefix, which parse() strips when the rest has 10 or 14+ digits
    r"[+]7(?:8(?=\d{10}$|\d{14,}$))?",
    # national: the 8 trunk prefix, under the same condition
    r"8(?=\d{10}$|\d{14,}$)",
    # national 7...: taken as the country code when the rest is then viable for KZ
    # ([78] + 9 digits, after an 8 trunk prefix is stripped) or the whole is too long
    r"7(?=[78]\d{9}$)",
    r"78(?=[78]\d{9}$)",
    r"7(?=\d{14}$)",
    r"7(?=[0-79]\d{14,}$)",
    r"78(?=\d{14}$)",
    r"788(?=\d{14,}$)",
    r"78(?=[0-79]\d{14,}$)",
)


@functools.cache
def cc7_valid_table() -> dict[int, list[str]]:
    """cc7_valid_regex as a prefix table (digit_language.prefix_table: exact), checked
    against the pattern over 100,000 numbers, mostly the table's own prefixes and near
    misses of them, of every length from 8 to 15."""
    pattern = cc7_valid_regex()
    table = prefix_table(pattern)
    compiled = re.compile(pattern)
    heads = [p for prefixes in table.values() for p in prefixes]
    tables = {length: buckets(prefixes) for length, prefixes in table.items()}
    rng = random.Random(11)
    for _ in range(100_000):
        head = rng.choice(heads) if rng.random() < 0.8 else ""
        if head and rng.random() < 0.3:  # one digit changed: a near miss
            i = rng.randrange(len(head))
            head = head[:i] + rng.choice("0123456789") + head[i + 1 :]
        length = rng.choice((*table, *range(8, 16)))
        nsn = (head + "".join(rng.choice("0123456789") for _ in range(length)))[:length]
        want = bool(compiled.match(nsn))
        assert matches(table, nsn) == want, nsn
        assert in_buckets(tables.get(len(nsn), {}), nsn) == want, nsn
    return table


def bucket_test_sql(table: dict[str, str], argument: str, indent: int) -> str:
    """SQL true when ``argument`` (all digits) is in the bucket table (see
    digit_language.buckets), NULL when its first three digits are not."""
    literal = sql_literal(json_literal(table), indent) + "::jsonb"
    lookup = f"{literal} ->> pg_catalog.left({argument}, 3)"
    depths = sorted({len(p) for value in table.values() for p in value.strip(",").split(",") if p})
    if not depths:
        return f"({lookup}) = ''"
    deeper = " + ".join(
        f"pg_catalog.strpos({lookup}, ',' || pg_catalog.left({argument}, {n}) || ',')" for n in depths
    )
    return f"(({lookup}) = '' or {deeper} > 0)"


def cc7_valid_nsn_sql() -> str:
    """Step 3's validity test of v_nsn (all digits by then): the table for its length."""
    whens = "\n".join(
        f"      when {length} then {bucket_test_sql(buckets(prefixes), 'v_nsn', 8)}"
        for length, prefixes in cc7_valid_table().items()
    )
    return f"(\n      case pg_catalog.length(v_nsn)\n{whens}\n      else false\n      end\n    )"


def cc7_prefix_regex() -> str:
    ru, kz = cc7_metadata()
    # the facts the rules rely on
    kz_general, ru_general = general_desc(kz), general_desc(ru)
    assert kz_general.national_number_pattern == r"8\d{13}|[78]\d{9}"
    assert ru_general.national_number_pattern == r"8\d{13}|[347-9]\d{9}"
    assert tuple(kz_general.possible_length) == tuple(ru_general.possible_length) == (10, 14)
    assert tuple(kz_general.possible_length_local_only) == (5, 6, 7)
    assert tuple(ru_general.possible_length_local_only) == (7,)
    return "^(?:" + "|".join(CC7_PREFIX_RULES) + ")"


def strip_cc7_prefix(key: str) -> str:
    """What the SQL does with cc7_prefix_regex: remove the longest matching alternative."""
    matches = [m.end() for rule in CC7_PREFIX_RULES if (m := re.match(rule, key))]
    assert len(matches) <= 1, (key, matches)
    return key[matches[0] :] if matches else key


def check_cc7_prefix_rules() -> list[str]:
    """Keys ('+' + digits or national digits) where the rules and parse() disagree on the NSN.

    parse() looks at no more than the first three digits and the length of a +7 or KZ
    national number, so digits after the third are filled with 5."""
    wrong = []
    for length in range(1, 21):
        for head in range(1000):
            digits = (f"{head:03d}" + "5" * 20)[: max(length, 0)]
            if len(digits) < length:
                continue
            keys = [digits, "+7" + digits[: max(0, length - 2)]]
            for key in keys:
                if not key.startswith("+") and (key.startswith("00") or re.match("810[1-9]", key)):
                    continue  # international: the SQL turns these into '+' first
                try:
                    parsed = phonenumbers.parse(key, "KZ")
                except phonenumbers.NumberParseException:
                    continue  # no number: the NSN below is then never valid (too short or long)
                if parsed.country_code != 7:
                    continue
                if phonenumbers.national_significant_number(parsed) != strip_cc7_prefix(key):
                    wrong.append(key)
    return wrong


def other_countries() -> list[Country]:
    return [c for c in countries() if c.code != 7]


def split_top_level(pattern: str) -> list[str]:
    """The alternatives of a pattern at parenthesis depth 0."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(pattern):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
    return [*parts, pattern[start:]]


def balanced(pattern: str) -> bool:
    depth = 0
    for ch in pattern:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def exact_prefix(pattern: str) -> str:
    """The national prefix pattern rewritten so that it matches exactly what Python's
    re.match takes (greedy, first alternative first) and nothing shorter, whatever
    follows: a trailing optional part ``A(?:X)?`` / ``Ax?`` becomes ``A(?:X)|A(?!X)``.
    Needed because the SQL adds conditions after the prefix, and PostgreSQL would
    otherwise settle for a shorter prefix that satisfies them."""
    out = []
    for alt in split_top_level(pattern):
        group = re.fullmatch(r"(.*?)\(\?:(.*)\)\?", alt)
        single = re.fullmatch(r"(.*?)(\\d|\[[^\]]*\]|[0-9])\?", alt)
        if group and balanced(group.group(2)) and "(" not in group.group(1):
            head, tail = group.group(1), group.group(2)
            out.append(f"{head}(?:{tail})|{head}(?!{tail})")
        elif single and "(" not in single.group(1):
            head, tail = single.group(1), single.group(2)
            out.append(f"{head}{tail}|{head}(?!{tail})")
        else:
            assert "?" not in alt.replace("(?:", "").replace("(?!", ""), f"optional part left in {pattern!r}"
            out.append(alt)
    return "|".join(out)


def check_exact_prefixes(samples: int = 1000, seed: int = 5) -> list[tuple[int, str]]:
    """(code, digits) where exact_prefix and Python's re.match take different prefixes,
    over random digit strings (PostgreSQL's longest match is emulated by trying every
    length)."""
    import random

    rng = random.Random(seed)
    wrong = []
    for country in other_countries():
        npfp = country.prefix_for_parsing
        if not npfp:
            continue
        exact = exact_prefix(npfp)
        python = re.compile(npfp)
        for _ in range(samples):
            digits = "".join(rng.choice("0123456789" if rng.random() < 0.5 else "0118") for _ in range(8))
            want = m.end() if (m := python.match(digits)) else None
            ends = {
                n
                for n in range(len(digits) + 1)
                if re.match(rf"(?:{exact})(?=\d{{{len(digits) - n}}}$)", digits)
            }
            got = max(ends) if ends else None
            if len(ends) > 1 or got != want:
                wrong.append((country.code, digits))
    return wrong


def json_literal(value: object) -> str:
    import json

    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), sort_keys=True)


def country_lengths() -> dict[str, str]:
    """Every other country code -> its possible NSN lengths as ",n,m," (empty: none)."""
    return {
        str(c.code): "," + ",".join(str(n) for n in possible_lengths(c.metadata)) + ","
        for c in other_countries()
    }


def country_prefixes() -> dict[str, list[str]]:
    """Country code -> [the first digits of its national prefix (a cheap first test),
    the pattern that removes the prefix when parse() would]."""
    found = {}
    for country in other_countries():
        npfp = country.prefix_for_parsing
        kept = kept_lengths_regex(country.metadata)
        if not npfp or not kept:
            continue
        general = general_desc(country.metadata).national_number_pattern
        prefix = exact_prefix(npfp)
        first = shape(npfp)
        found[str(country.code)] = [
            "".join(sorted(first.first)) if first is not None else "0123456789",
            f"^(?:(?!(?:{general})$)(?:{prefix})(?=(?:{kept})$)|(?:{prefix})(?=(?:{general})$)(?=(?:{kept})$))",
        ]
    return found


def sql_literal(value: str, indent: int) -> str:
    """A string literal split into concatenated pieces of at most CHUNK characters."""
    pieces = [value[i : i + CHUNK] for i in range(0, len(value), CHUNK)] or [""]
    pad = " " * indent
    joined = f"\n{pad}|| ".join("'" + p.replace("'", "''") + "'" for p in pieces)
    return joined if len(pieces) == 1 else f"({joined})"


def unicode_literal(value: str) -> str:
    """A U&'' literal with every non-ASCII or control character escaped."""
    out = []
    for ch in value:
        if 32 <= ord(ch) < 127 and ch not in "\\'":
            out.append(ch)
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\{ord(ch):04X}")
        else:
            out.append(f"\\+{ord(ch):06X}")
    return "U&'" + "".join(out) + "'"


def render() -> str:
    wrong_prefixes = check_exact_prefixes()
    assert not wrong_prefixes, f"exact_prefix differs from re.match: {wrong_prefixes[:20]}"
    wrong = check_cc7_prefix_rules()
    assert not wrong, f"CC7_PREFIX_RULES disagree with phonenumbers {phonenumbers.__version__}: {wrong[:20]}"
    wrong = check_nsn_by_length()
    assert not wrong, f"the fast +7 steps differ from the prefix rules: {wrong[:20]}"
    template = TEMPLATE_PATH.read_text()
    values = {
        "version": phonenumbers.__version__,
        "migration": MIGRATION,
        "fast_strip": fast_strip_sql("p_phone"),
        "fast_cc7": fast_cc7_sql(2),
        "fast_cc7_indented": fast_cc7_sql(4),
        "digits_only": DIGITS_ONLY_SQL.replace("{pad}", "    "),
        "international_digits": INTERNATIONAL_DIGITS_SQL.replace("{pad}", "    "),
        "international_key": INTERNATIONAL_KEY_SQL.replace("{pad}", "      "),
        "trimmed_strip": trimmed_strip_sql("p_phone"),
        "transform_codes": ", ".join(f"+{c}" for c in transform_rule_codes()),
        "fold_from": unicode_literal(FOLD_FROM),
        "simple_input": unicode_literal(simple_input_regex()),
        "other_digits": unicode_literal(other_digits_regex()),
        "unicode_version": unicodedata.unidata_version,
        "fold_to": unicode_literal(FOLD_TO),
        "core": sql_literal(CORE_MATCH, 6),
        "cc7_valid_nsn": cc7_valid_nsn_sql(),
        "cc7_prefix": sql_literal(cc7_prefix_regex(), 4),
        "country_lengths": sql_literal(json_literal(country_lengths()), 4),
        "country_prefixes": sql_literal(json_literal(country_prefixes()), 4),
        "fold_ascii": fold_ascii_sql("p_phone"),
        "core_tail": sql_literal(CORE_TAIL, 6),
        "number_strip": number_strip_sql("v_key"),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    assert "{{" not in template, "unfilled placeholder"
    return template


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
