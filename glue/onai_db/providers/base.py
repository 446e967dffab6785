"""Outcomes of a provider call and the HTTP helpers every client shares."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
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


def request(client: httpx.Client, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send one request; network failures and timeouts become :class:`TransientError`.

    The message names the service and the failure class only: httpx's own messages can
    contain the URL, and some providers put the API key or bot token in it.
    """
    try:
        return client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise TransientError(f"{service}: timeout ({type(exc).__name__})") from None
    except httpx.TransportError as exc:
        raise TransientError(f"{service}: network error ({type(exc).__name__})") from None
    except httpx.HTTPError as exc:  # an answer that cannot be read (a gzip header over a plain
        # body, too many redirects): it escaped, and a token refresh kept its lease (found by review)
        raise TransientError(f"{service}: unreadable answer ({type(exc).__name__})") from None


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
