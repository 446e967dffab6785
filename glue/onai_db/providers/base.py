"""Outcomes of a provider call and the HTTP helpers every client shares."""

from __future__ import annotations

import json
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


class RateLimitedError(ProviderError):
    """429: retry after ``retry_after`` seconds without spending an attempt."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(0.0, retry_after)


class AuthExpiredError(ProviderError):
    """401 from an OAuth API: refresh the token and try once more."""


def body_json(response: httpx.Response) -> Any:
    """The JSON body, or None when there is none or it is not JSON."""
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError):
        return None


def retry_after_header(response: httpx.Response, default: float) -> float:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else default
    except ValueError:
        return default


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


def classify_status(service: str, response: httpx.Response, detail: str) -> ProviderError:
    """The generic mapping: 429 rate limit, 5xx transient, other 4xx permanent."""
    status = response.status_code
    text = f"{service}: HTTP {status}{' ' + detail if detail else ''}"
    if status == 429:
        return RateLimitedError(text, retry_after_header(response, 1.0))
    if status >= 500 or status in (408, 409, 423, 425):
        return TransientError(text)
    return PermanentError(text)
