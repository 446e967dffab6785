"""The test oracle of normalize_phone: libphonenumber with the documented pre-processing.

Written independently of the SQL (and of its generator) from docs/phone.md:

1. NULL -> NULL.
2. Fold full-width digits and plus, unicode spaces, dashes and brackets to ASCII; drop
   zero-width characters and the soft hyphen. A digit of any other script gives NULL.
3. The folded input must read: a label without digits or '+' (anything, letters too),
   the number (leading '+' signs, digits and the separators space ( ) . [ ] / -, ending
   with a digit), an optional extension (ext, extn, extension, x, #, доб, добавочный, then
   1-10 digits; it may open with a bracket), trailing punctuation. Otherwise NULL (letters
   in or after the number, two numbers, other symbols).
4. A leading 00 (no '+') is an international prefix: it becomes '+'.
5. ``phonenumbers.parse(number, "KZ")``; for country code 7 the E.164 form when
   ``is_valid_number``, for other codes when ``is_possible_number``; NULL otherwise.
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

_FOLD = {ord(c): str(i) for i, c in enumerate("０１２３４５６７８９")}
_FOLD.update({ord("＋"): "+", ord("（"): "(", ord("）"): ")", ord("［"): "[", ord("］"): "]"})
_FOLD.update({ord("．"): ".", ord("／"): "/"})
_FOLD.update({ord(c): " " for c in "\u00a0\u1680\u202f\u205f\u3000\t\n\r\x0b\x0c"})
_FOLD.update({cp: " " for cp in range(0x2000, 0x200B)})
_FOLD.update({ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"})
_FOLD.update({ord(c): None for c in "\u200b\u200c\u200d\u2060\ufeff\u00ad"})
# bidirectional marks a phone's "copy number" wraps a number in (found by review)
_FOLD.update({ord(c): None for c in "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"})

_SEP = r" ().\[\]/\-"
_EXT = r"(?:[ ,;]*|[ ]*[(\[][ ]*)(?:[eE][xX][tT](?:[nN]|[eE][nN][sS][iI][oO][nN])?|[xX]|#|доб|Доб|ДОБ|добавочный)[.:= ]*[0-9]{1,10}"
_INPUT = re.compile(rf"[^0-9+]*(?P<number>\+*[0-9{_SEP}]*[0-9])(?:{_EXT})?[{_SEP},;:!?#*'\"]*")


def preprocess(raw: str | None) -> str | None:
    """The string handed to libphonenumber, or None when the input is rejected before."""
    if raw is None:
        return None
    folded = raw.translate(_FOLD)
    # digits of other scripts are not read (docs/phone.md, rule 1): the label class below
    # took them for a label, as the SQL did before 20261214100200 (found by review)
    if any(c.isdecimal() and not c.isascii() for c in folded):
        return None
    m = _INPUT.fullmatch(folded)
    if m is None:
        return None
    number = m.group("number")
    digits = re.sub(r"[^0-9]", "", number)
    if not number.startswith("+") and digits.startswith("00"):
        number = "+" + number.replace("0", "", 2)
    return number


def expected(raw: str | None) -> str | None:
    number = preprocess(raw)
    if number is None:
        return None
    try:
        parsed = phonenumbers.parse(number, "KZ")
    except NumberParseException:
        return None
    if parsed.country_code == 7:
        ok = phonenumbers.is_valid_number(parsed)
    else:
        ok = phonenumbers.is_possible_number(parsed)
    return phonenumbers.format_number(parsed, PhoneNumberFormat.E164) if ok else None
