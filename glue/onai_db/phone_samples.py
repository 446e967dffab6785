"""Realistic phone inputs, deterministic for a seed: the corpus of the normalize_phone
tests and the data of its benchmark.

Mostly Kazakh mobiles in every format people type (+7, 8, 7, no prefix, 00 7, 8 10 7,
spaces / dashes / brackets / dots, full-width digits, NBSP and unicode dashes, ``tel:``
and other labels, extensions), then Kazakh landlines, Russian mobiles and landlines,
neighbouring countries, and junk (too short / long, letters, vanity, empty, punctuation,
the invalid 703/704 KZ ranges, the "8 7 701..." double prefix, ...).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

KZ_MOBILE_PREFIXES = (
    "700",
    "701",
    "702",
    "705",
    "706",
    "707",
    "708",
    "747",
    "760",
    "761",
    "762",
    "763",
    "764",
    "771",
    "775",
    "776",
    "777",
    "778",
    "785",
)
KZ_INVALID_MOBILE_PREFIXES = ("703", "704", "709", "740", "790")
# area codes with the first subscriber digits that make numbers valid, and some that do not
KZ_LANDLINE_PREFIXES = (
    "7272",
    "7273",
    "7172",
    "7122",
    "7132",
    "7212",
    "7222",
    "7232",
    "7252",
    "7262",
    "7182",
)
RU_MOBILE_PREFIXES = ("900", "903", "905", "912", "916", "925", "926", "950", "977", "985", "999")
RU_LANDLINE_PREFIXES = ("495", "499", "812", "343", "383", "843", "861", "3012", "4012", "8005")


@dataclass(frozen=True)
class Foreign:
    code: str
    starts: tuple[str, ...]  # first digits of realistic NSNs
    nsn_length: int
    national_prefix: str = ""  # what people wrongly keep after the country code


NEIGHBOURS = (
    Foreign("996", ("555", "700", "770", "312", "505"), 9, "0"),  # KG
    Foreign("998", ("90", "91", "93", "94", "97", "99", "71"), 9, "8"),  # UZ
    Foreign("992", ("90", "91", "92", "93", "98", "37"), 9, "8"),  # TJ
    Foreign("993", ("61", "62", "63", "65", "12"), 8, "8"),  # TM
    Foreign("86", ("138", "139", "150", "186", "199", "10", "21"), 11, "0"),  # CN
    Foreign("375", ("29", "33", "44", "25", "17"), 9, "8"),  # BY
    Foreign("380", ("50", "63", "66", "67", "68", "73", "93", "44"), 9, "0"),  # UA
    Foreign("995", ("555", "577", "591", "322"), 9, "0"),  # GE
    Foreign("994", ("50", "51", "55", "70", "77", "12"), 9, "0"),  # AZ
    Foreign("90", ("532", "533", "505", "212", "312"), 10, "0"),  # TR
    Foreign("49", ("151", "160", "171", "30", "89"), 11, "0"),  # DE
    Foreign("1", ("212", "415", "646", "202"), 10, "1"),  # US
    Foreign("44", ("7700", "7911", "20"), 10, "0"),  # GB
    Foreign("971", ("50", "52", "55", "4"), 9, "0"),  # AE
)

FULL_WIDTH = str.maketrans("0123456789+", "０１２３４５６７８９＋")
SPACES = (" ", " ", " ", " ", "\u00a0", "  ", "\u2009", "\u202f")
DASHES = ("-", "-", "-", "\u2011", "\u2013", "\u2014", "\u2212")
LABELS = ("tel:", "tel: ", "Tel.: ", "тел. ", "(моб) ", "моб.", "WhatsApp ", "  ", "\t", "Phone: ")
TRAILERS = (";", " ", ".", ",", "  ", " )", "!")
EXTENSIONS = (" доб. 12", " доб 305", " ext. 12", " ext 4", " x12", " X 7", "#5", ";ext=77", " Доб.12")


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def group_ten(nsn: str, rng: random.Random) -> str:
    """A 10-digit KZ/RU national number the way people write it."""
    sp, dash = rng.choice(SPACES), rng.choice(DASHES)
    a, b, c, d = nsn[:3], nsn[3:6], nsn[6:8], nsn[8:]
    return rng.choice(
        (
            f"{a}{sp}{b}{sp}{c}{sp}{d}",
            f"{a}{dash}{b}{dash}{c}{dash}{d}",
            f"({a}){sp}{b}{dash}{c}{dash}{d}",
            f"({a}){b}{c}{d}",
            f"({a}) {b} {c}{d}",
            f"{a}.{b}.{c}.{d}",
            nsn,
            f"{a}{sp}{b}{c}{d}",
            f"{a}{sp}{b}{sp}{c}{d}",
            f"{a}{dash}{b}{c}{d}",
            f"{nsn[:4]}{sp}{nsn[4:7]}{sp}{nsn[7:]}",
            f"{a}{sp}{nsn[3:5]}{sp}{nsn[5:7]}{sp}{nsn[7:]}",
        )
    )


def with_prefix(nsn: str, rng: random.Random) -> str:
    """A +7 number with the prefixes people use: +7, 8, 7, none, 00 7, 8 10 7."""
    body = group_ten(nsn, rng)
    sp = rng.choice(SPACES)
    prefix = rng.choices(
        ("+7", "+7 ", "8", "8 ", "7", "7 ", "", "007 ", "00 7 ", "8 10 7 ", "810 7 ", "+7-", "8-", "+ 7 "),
        weights=(14, 22, 10, 18, 4, 4, 9, 2, 1, 2, 1, 3, 3, 1),
    )[0]
    return prefix.replace(" ", sp) + body


def dress(number: str, rng: random.Random) -> str:
    """Labels, extensions, trailing punctuation, full-width digits, now and then."""
    if rng.random() < 0.04:
        number = number.translate(FULL_WIDTH)
    if rng.random() < 0.08:
        number = rng.choice(LABELS) + number
    if rng.random() < 0.04:
        number += rng.choice(EXTENSIONS)
    if rng.random() < 0.06:
        number += rng.choice(TRAILERS)
    return number


def kz_mobile(rng: random.Random) -> str:
    return dress(with_prefix(rng.choice(KZ_MOBILE_PREFIXES) + _digits(rng, 7), rng), rng)


def kz_landline(rng: random.Random) -> str:
    prefix = rng.choice(KZ_LANDLINE_PREFIXES)
    return dress(with_prefix(prefix + _digits(rng, 10 - len(prefix)), rng), rng)


def ru_mobile(rng: random.Random) -> str:
    return dress(with_prefix(rng.choice(RU_MOBILE_PREFIXES) + _digits(rng, 7), rng), rng)


def ru_landline(rng: random.Random) -> str:
    prefix = rng.choice(RU_LANDLINE_PREFIXES)
    return dress(with_prefix(prefix + _digits(rng, 10 - len(prefix)), rng), rng)


def foreign(rng: random.Random) -> str:
    country = rng.choice(NEIGHBOURS)
    start = rng.choice(country.starts)
    nsn = start + _digits(rng, country.nsn_length - len(start))
    sp = rng.choice(SPACES)
    cut = rng.randint(2, max(2, len(nsn) - 4))
    body = rng.choice((nsn, f"{nsn[:cut]}{sp}{nsn[cut:]}", f"({nsn[:cut]}){sp}{nsn[cut:]}"))
    if country.national_prefix and rng.random() < 0.1:
        body = rng.choice((country.national_prefix, f"({country.national_prefix})")) + sp + body
    prefix = rng.choices(("+", "00", "8 10 ", "810", ""), weights=(80, 8, 4, 2, 6))[0]
    number = f"{prefix}{country.code}{sp}{body}"
    if rng.random() < 0.05:
        number = number[:-1]  # one digit short
    elif rng.random() < 0.05:
        number += str(rng.randint(0, 9))  # one digit too many
    return dress(number, rng)


def junk(rng: random.Random) -> str:
    nsn = rng.choice(KZ_MOBILE_PREFIXES) + _digits(rng, 7)
    kinds: tuple[Callable[[], str], ...] = (
        lambda: with_prefix(rng.choice(KZ_INVALID_MOBILE_PREFIXES) + _digits(rng, 7), rng),  # 703/704
        lambda: "8 7" + nsn if rng.random() < 0.5 else "87" + nsn,  # 8 and 7 both
        lambda: "+8 " + group_ten(nsn, rng),  # + with the trunk prefix
        lambda: "+7 6" + _digits(rng, 9),  # +7 6xx: neither RU nor KZ
        lambda: with_prefix(nsn[:-1], rng),  # one digit short
        lambda: with_prefix(nsn + _digits(rng, 1), rng),  # one digit too many
        lambda: _digits(rng, rng.randint(1, 6)),  # far too short
        lambda: _digits(rng, rng.randint(13, 22)),  # far too long
        lambda: "+7 " + nsn[:3] + " " + rng.choice(("ABC", "CALL", "MTS", "Ж12")) + " " + nsn[6:],  # vanity
        lambda: "+7 701 O12 3456",  # a letter O for a zero
        lambda: rng.choice(("", " ", "нет", "n/a", "-", "+", "()", "---", "null", "телефон", "?", "0")),
        lambda: rng.choice(("+7 (000) 000-00-00", "8 000 000 00 00", "0000000000", "1111111111")),
        lambda: "".join(rng.choice("()+-. #*") for _ in range(rng.randint(1, 8))),  # punctuation only
        lambda: (
            f"{with_prefix(nsn, rng)}, {with_prefix(rng.choice(KZ_MOBILE_PREFIXES) + _digits(rng, 7), rng)}"
        ),
        lambda: "7 + " + group_ten(nsn, rng),  # a plus in the middle
        lambda: "+" + _digits(rng, rng.randint(1, 3)),
        lambda: with_prefix(nsn, rng) + " Айгуль",  # a name after the number
        lambda: "+0 " + group_ten(nsn, rng),
        lambda: "8 (727) " + _digits(rng, 3) + "-" + _digits(rng, 2),  # a 5-digit local number
    )
    return rng.choice(kinds)()


CATEGORIES: tuple[tuple[Callable[[random.Random], str], int], ...] = (
    (kz_mobile, 62),
    (kz_landline, 7),
    (ru_mobile, 6),
    (ru_landline, 3),
    (foreign, 10),
    (junk, 12),
)


def samples(n: int, seed: int = 20261121) -> list[str]:
    """``n`` realistic inputs; the same list for the same (n, seed)."""
    rng = random.Random(seed)
    makers = [m for m, _ in CATEGORIES]
    weights = [w for _, w in CATEGORIES]
    return [rng.choices(makers, weights)[0](rng) for _ in range(n)]
