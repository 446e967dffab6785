"""Outcomes of a provider call and the HTTP helpers every client shares."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
import time
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Delivery:
    """A call that needs no retry: sent (``provider_ref`` = the provider's id) or skipped."""

    provider_ref: str | None = None
    skipped: bool = False
    failed: bool = False  # handled for good but not delivered (e.g. a deactivated chat)
    note: str | None = None


class ProviderError(Exception):
    """A failed call. ``str()`` is safe to log; subclasses say whether to retry."""

    retry = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TransientError(ProviderError):
    """5xx, timeouts, network errors, odd answers: retry with backoff."""


class PermanentError(ProviderError):
    """The request itself is wrong (4xx validation, unknown recipient): do not retry."""

    retry = False


MIN_RATE_LIMIT_WAIT = 1.0
MAX_RATE_LIMIT_WAIT = 86400.0


class RateLimitedError(ProviderError):
    """429: retry after ``retry_after`` seconds without spending an attempt."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        # at least a second (a 429 with "Retry-After: 0" made --once call the provider again
        # and again, the attempt not being counted), at most a day (a huge value overflowed the
        # job's timestamp and stopped the worker)
        self.retry_after = min(max(MIN_RATE_LIMIT_WAIT, retry_after), MAX_RATE_LIMIT_WAIT)


class AuthExpiredError(ProviderError):
    """401 from an OAuth API: refresh the token and try once more."""


def body_json(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError):
        return None


def retry_after_header(response: httpx.Response, default: float) -> float:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110)."""
    value = response.headers.get("retry-after")
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        if when.tzinfo is None:  # an HTTP date is GMT
            when = when.replace(tzinfo=dt.UTC)
        return (when - dt.datetime.now(dt.UTC)).total_seconds()
    return seconds if math.isfinite(seconds) else default


# Provider answers are small JSON documents; a bigger one is a proxy's page or worse.
MAX_ANSWER_BYTES = 1 << 20
# The whole answer must arrive within this many HTTP timeouts (found by review: httpx bounds
# each read, so a provider trickling its body kept the job running, its lease extended, for
# as long as it liked; a token refresh outlived its lease). The last read may add one more.
ANSWER_DEADLINE_TIMEOUTS = 2


def request(client: httpx.Client, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send one request; network failures and timeouts become :class:`TransientError`.

    The answer is read whole here, decoded, within :data:`ANSWER_DEADLINE_TIMEOUTS` times the
    client's longest timeout and at most :data:`MAX_ANSWER_BYTES` (a body past either is a
    :class:`TransientError`, nothing more is read). The message names the service and the
    failure class only: httpx's own messages can contain the URL, and some providers put the
    API key or bot token in it.
    """
    deadline = time.monotonic() + ANSWER_DEADLINE_TIMEOUTS * _longest_timeout(client)
    try:
        with client.stream(method, url, **kwargs) as streamed:
            body = _read_bounded(service, streamed, deadline)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{service}: timeout ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise TransientError(f"{service}: network error ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:  # an answer that cannot be read (a gzip header over a plain
        # body, too many redirects): it escaped, and a token refresh kept its lease (found by review)
        raise TransientError(f"{service}: unreadable answer ({type(exc).__name__})") from None
    headers = streamed.headers.copy()
    for name in ("content-encoding", "content-length", "transfer-encoding"):
        headers.pop(name, None)  # the body is decoded and whole
    return httpx.Response(streamed.status_code, headers=headers, content=body, request=streamed.request)


def _longest_timeout(client: httpx.Client) -> float:
    timeout = client.timeout
    parts = [timeout.connect, timeout.read, timeout.write, timeout.pool]
    return max((part for part in parts if part is not None), default=30.0)


def _read_bounded(service: str, streamed: httpx.Response, deadline: float) -> bytes:
    chunks: list[bytes] = []
    size = 0
    for chunk in streamed.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise TransientError(
                f"{service}: HTTP {streamed.status_code} answer larger than {MAX_ANSWER_BYTES // 1024} KiB (not read)"
            )
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise TransientError(
                f"{service}: HTTP {streamed.status_code} answer still arriving after"
                f" {ANSWER_DEADLINE_TIMEOUTS} HTTP timeouts (not read)"
            )
    return b"".join(chunks)


def classify_status(service: str, response: httpx.Response, detail: str) -> ProviderError:
    """The generic mapping: 429 rate limit, 5xx transient, 401/403 transient (the API key is
    wrong or was rotated: fixable configuration, as for Telegram's bot token; found by review:
    every e-mail queued while Resend's key was wrong went dead at once), other 4xx permanent."""
    status = response.status_code
    text = f"{service}: HTTP {status}{' ' + detail if detail else ''}"
    if status == 429:
        return RateLimitedError(text, retry_after_header(response, 1.0))
    if status in (401, 403):
        return TransientError(f"{text} (refused credentials: check the API key; retried with backoff)")
    if status >= 500 or status in (408, 409, 423, 425):
        return TransientError(text)
    return PermanentError(text)


def seconds_field(value: object) -> float | None:
    """A provider's "seconds to wait" field when it is a finite, non-negative number (a JSON
    number or a numeric string), else None (found by review: "5s" raised ValueError and the
    job went dead on a rate limit)."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
