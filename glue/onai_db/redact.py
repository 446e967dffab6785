"""Make error text safe to store: no credentials, no one-time links, no message bodies.

Provider errors are built from the status code and the provider's own error code or
description; this is the last line of defence before text reaches the database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_PATTERNS = (
    (re.compile(r"bot\d+:[A-Za-z0-9_-]+"), "bot<redacted>"),  # Telegram token in a URL path
    (
        re.compile(r"(?i)((?:x-)?api[-_]?key|token|access_token|refresh_token|secret|password)=[^&\s\"']+"),
        r"\1=<redacted>",
    ),
    (  # the same keys as JSON ("access_token": "eyJ…", escaped quotes inside) or as
        # "key: value" in a message or a header (X-Api-Key: …)
        re.compile(
            r"(?i)(\"?(?:(?:x-)?api[-_]?key|token|access_token|refresh_token|client_secret|secret|password)\"?"
            r"\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|[^\s,;}&]+)"
        ),
        r"\1<redacted>",
    ),
    (re.compile(r"(?i)(authorization\s*:\s*)(?:basic|bearer|token)?\s*[^\s,;]+"), r"\1<redacted>"),
    (re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+"), "Bearer <redacted>"),
    (re.compile(r"re_[A-Za-z0-9_]{8,}"), "re_<redacted>"),  # Resend API keys
    (re.compile(r"https?://\S*(?:verify|token|recovery)\S*"), "<link redacted>"),
)
MAX_LEN = 2000


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secret values and secret-looking patterns replaced."""
    out = text
    for value in secrets:
        if value and len(value) >= 4:
            out = out.replace(value, "<redacted>")
    for pattern, repl in _PATTERNS:
        out = pattern.sub(repl, out)
    return out[:MAX_LEN]
