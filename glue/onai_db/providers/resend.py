"""Resend e-mail API: ``POST {RESEND_API_URL}/emails`` with an ``Idempotency-Key``.

Errors (resend.com/docs/api-reference/errors): JSON ``{statusCode, name, message}``.
429 ``rate_limit_exceeded`` / ``daily_quota_exceeded`` carry ``retry-after``; 409
``concurrent_idempotent_requests`` means the first request is still running (retry);
409 ``invalid_idempotent_request`` means the key was already used with another body —
for our jobs that is an earlier attempt that went through (the body differs only by the
fresh set-password link), so the e-mail counts as sent.
"""

from __future__ import annotations

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


@dataclass
class ResendClient:
    http: httpx.Client
    api_key: str
    from_email: str
    api_url: str = DEFAULT_URL

    def send(self, to: str, email: Email, idempotency_key: str) -> Delivery:
        response = request(
            self.http,
            "resend",
            "POST",
            f"{self.api_url.rstrip('/')}/emails",
            headers={"Authorization": f"Bearer {self.api_key}", "Idempotency-Key": idempotency_key[:256]},
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
            return Delivery(
                skipped=True, note="resend: already sent by an earlier attempt (idempotency key used)"
            )
        if response.status_code == 409 and name == "concurrent_idempotent_requests":
            raise TransientError("resend: HTTP 409 concurrent_idempotent_requests")
        if response.status_code == 429:
            default = 3600.0 if name == "daily_quota_exceeded" else 1.0
            raise RateLimitedError(f"resend: HTTP 429 {name}".rstrip(), retry_after_header(response, default))
        if response.status_code == 200:
            raise TransientError("resend: HTTP 200 without an e-mail id")
        err = classify_status("resend", response, name)
        if isinstance(err, PermanentError) and name == "":
            err = PermanentError(f"resend: HTTP {response.status_code}")
        raise err
