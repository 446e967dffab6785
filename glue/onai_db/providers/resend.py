"""Resend e-mail API: ``POST {RESEND_API_URL}/emails`` with an ``Idempotency-Key``.

Errors (resend.com/docs/api-reference/errors): JSON ``{statusCode, name, message}``.
429 ``rate_limit_exceeded`` / ``daily_quota_exceeded`` carry ``retry-after``; 409
``concurrent_idempotent_requests`` means the first request is still running (retry);
409 ``invalid_idempotent_request`` means the key was already used with another body: an
earlier attempt of the job went through though its answer was lost. Most e-mails then count
as sent. An e-mail carrying a one-time link (``single_use_link``) is sent again under a key
of its own: making this attempt's link cancelled the one the earlier e-mail carries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import httpx

from .base import (
    Delivery,
    PermanentError,
    RateLimitedError,
    TransientError,
    body_json,
    classify_status,
    request,
    retry_after_header,
)
from .email_templates import Email

DEFAULT_URL = "https://api.resend.com"


_HEADER_KEY = re.compile(r"[\x21-\x7e]([\x20-\x7e]{0,254}[\x21-\x7e])?")


def header_key(key: str) -> str:
    """The Idempotency-Key header for a job's key: the key itself when an HTTP header can
    carry it (printable ASCII, at most 256 characters: Resend's limit), else a digest of it,
    the same for every attempt (found by review: a Cyrillic event key raised
    UnicodeEncodeError and the job went dead; a CR/LF in it was retried until dead)."""
    if _HEADER_KEY.fullmatch(key):
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass
class ResendClient:
    http: httpx.Client
    api_key: str
    from_email: str
    api_url: str = DEFAULT_URL

    def send(self, to: str, email: Email, idempotency_key: str, single_use_link: bool = False) -> Delivery:
        """Send once per key. ``single_use_link``: the e-mail carries a link that cancels the
        one in any earlier e-mail of this job, so a key already used by one is no reason to
        stop; the e-mail goes under the key plus a digest of this body."""
        delivery = self._post(to, email, idempotency_key[:256])
        if delivery is not None:
            return delivery
        if not single_use_link:
            return Delivery(
                skipped=True, note="resend: already sent by an earlier attempt (idempotency key used)"
            )
        digest = hashlib.sha256(f"{email.subject}\0{email.html}\0{email.text}".encode()).hexdigest()[:24]
        again = self._post(to, email, f"{idempotency_key[:231]}/{digest}")
        if again is None:  # the digest's key taken by another body: not expected to happen
            return Delivery(skipped=True, note="resend: both idempotency keys used with other bodies")
        note = "resend: sent again with a new link (an earlier attempt's e-mail carries a cancelled one)"
        return Delivery(provider_ref=again.provider_ref, note=note)

    def _post(self, to: str, email: Email, key: str) -> Delivery | None:
        """The e-mail's id, or None when Resend says the key was used with another body."""
        response = request(
            self.http,
            "resend",
            "POST",
            f"{self.api_url.rstrip('/')}/emails",
            headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": header_key(key)},
            json={
                "from": self.from_email,
                "to": [to],
                "subject": email.subject,
                "html": email.html,
                "text": email.text,
            },
        )
        body = body_json(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("id"):
            return Delivery(provider_ref=str(body["id"]))
        name = str(body.get("name")) if isinstance(body, dict) and body.get("name") else ""
        if response.status_code == 409 and name == "invalid_idempotent_request":
            return None
        if response.status_code == 409 and name == "concurrent_idempotent_requests":
            raise TransientError("resend: HTTP 409 concurrent_idempotent_requests")
        if response.status_code == 429:
            # the quotas last until the day's (month's) end: no retry each second till then
            # (found by review: monthly_quota_exceeded got the 1 s default)
            default = {"daily_quota_exceeded": 3600.0, "monthly_quota_exceeded": 86400.0}.get(name, 1.0)
            raise RateLimitedError(f"resend: HTTP 429 {name}".rstrip(), retry_after_header(response, default))
        if response.status_code == 200:
            raise TransientError("resend: HTTP 200 without an e-mail id")
        err = classify_status("resend", response, name)
        if isinstance(err, PermanentError) and name == "":
            err = PermanentError(f"resend: HTTP {response.status_code}")
        raise err
