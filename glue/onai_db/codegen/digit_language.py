"""The exact set of digit strings a finite regular expression matches, as prefix tables.

libphonenumber says whether a national number is valid with patterns such as
``9(?:[0-24-9]\\d{4}|3(?:0(?:05|[124579]\\d)|[1-9]\\d{3}))\\d{4}``: alternatives of
digit classes and fixed repetitions, no loops. Such a pattern matches a finite set of
strings, and that set is a union of *products*: one set of digits per position. Once
a product's remaining positions all allow every digit, only its first digits matter, so
the whole pattern is equivalent to a table "length -> the prefixes that make a number of
that length valid". PostgreSQL looks such a table up (jsonb) several times faster than it
runs the pattern.

The expansion below is exact, not sampled: it follows the parse tree that Python's
``re`` builds and refuses any construct it does not model (lookarounds, unbounded
repetition, non-digit characters), so a future metadata version that needs one fails
loudly at generation time instead of producing a wrong table.
"""

from __future__ import annotations

import itertools
import re._constants as re_constants
import re._parser as re_parser
from typing import Any

DIGITS = frozenset("0123456789")
MAX_LENGTH = 17  # libphonenumber's longest national significant number

Product = tuple[frozenset[str], ...]


def _items(items: list) -> list[Product]:
    out: list[Product] = [()]
    for op, arg in items:
        part = _item(op, arg)
        out = [a + b for a in out for b in part if len(a) + len(b) <= MAX_LENGTH]
    return out


def _class(arg: list) -> frozenset[str]:
    chars: set[str] = set()
    for kind, value in arg:
        if kind is re_constants.LITERAL:
            chars.add(chr(value))
        elif kind is re_constants.RANGE:
            chars |= {chr(c) for c in range(value[0], value[1] + 1)}
        elif kind is re_constants.CATEGORY and value is re_constants.CATEGORY_DIGIT:
            chars |= DIGITS
        else:
            raise ValueError(f"unsupported character class item {kind} {value}")
    if not chars <= DIGITS:
        raise ValueError(f"non-digit characters in a class: {sorted(chars - DIGITS)}")
    return frozenset(chars)


def _item(op: object, arg: Any) -> list[Product]:  # arg: the parser's untyped tuple
    if op is re_constants.LITERAL:
        return [(_class([(op, arg)]),)]
    if op is re_constants.IN:
        return [(_class(arg),)]
    if op is re_constants.SUBPATTERN:
        return _items(list(arg[3]))
    if op is re_constants.BRANCH:
        return [p for branch in arg[1] for p in _items(list(branch))]
    if op is re_constants.MAX_REPEAT:
        low, high, items = arg
        if high > MAX_LENGTH:
            raise ValueError("unbounded repetition")
        inner = _items(list(items))
        out: list[Product] = [()] if low == 0 else []
        run: list[Product] = [()]
        for count in range(1, high + 1):
            run = [a + b for a in run for b in inner if len(a) + len(b) <= MAX_LENGTH]
            if count >= low:
                out += run
        return out
    raise ValueError(f"unsupported regular expression construct {op}")


def language(pattern: str) -> list[Product]:
    """The strings ``^pattern$`` matches, as a union of products (possibly overlapping)."""
    items = list(re_parser.parse(pattern))
    begin, end = (re_constants.AT, re_constants.AT_BEGINNING), (re_constants.AT, re_constants.AT_END)
    if len(items) < 2 or items[0] != begin or items[-1] != end:
        raise ValueError("the pattern must be anchored: ^...$")
    return _items(items[1:-1])


def prefix_table(pattern: str) -> dict[int, list[str]]:
    """Length -> the shortest prefixes such that a digit string of that length matches
    ``pattern`` exactly when it starts with one of them."""
    found: dict[int, set[str]] = {}
    for product in language(pattern):
        last = max((i for i, s in enumerate(product) if s != DIGITS), default=-1)
        heads = itertools.product(*(sorted(s) for s in product[: last + 1]))
        found.setdefault(len(product), set()).update("".join(h) for h in heads)
    return {
        length: sorted(p for p in prefixes if not any(p[:i] in prefixes for i in range(len(p))))
        for length, prefixes in sorted(found.items())
    }


def matches(table: dict[int, list[str]], digits: str) -> bool:
    """What the table says about one digit string (the reference for the SQL lookup)."""
    prefixes = table.get(len(digits), ())
    return any(digits.startswith(p) for p in prefixes)


def buckets(prefixes: list[str], width: int = 3) -> dict[str, str]:
    """The prefixes regrouped by their first ``width`` digits, for one jsonb lookup:
    ``""`` when every number with those digits is in, otherwise the longer prefixes as
    ``",p1,p2,"``. Shorter prefixes are spelled out to ``width`` digits."""
    table: dict[str, str] = {}
    for prefix in prefixes:
        if len(prefix) <= width:
            for tail in itertools.product("0123456789", repeat=width - len(prefix)):
                table[prefix + "".join(tail)] = ""
    for prefix in prefixes:
        head = prefix[:width]
        if len(prefix) > width and table.get(head) != "":
            table[head] = (table.get(head) or ",") + prefix + ","
    return dict(sorted(table.items()))


def in_buckets(table: dict[str, str], digits: str, width: int = 3) -> bool:
    """The SQL test over a bucket table, in Python (see ``buckets``)."""
    value = table.get(digits[:width])
    if value is None:
        return False
    return value == "" or any(f",{digits[:n]}," in value for n in range(width + 1, len(digits) + 1))
