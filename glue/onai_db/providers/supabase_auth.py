"""Supabase Auth (GoTrue) admin API: one-time set-password links.

``POST {SUPABASE_URL}/auth/v1/admin/generate_link`` with ``{"type": "recovery", "email"}``
and the service key (``apikey`` + ``Authorization: Bearer``); the answer is the user
object plus ``action_link``, ``email_otp``, ``hashed_token``, ``verification_type``,
``redirect_to``. The link goes straight into the e-mail and is never stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .base import TransientError, body_json, classify_status, request


@dataclass
class SupabaseAuthClient:
    http: httpx.Client
    url: str
    service_key: str

    def recovery_link(self, email: str, redirect_to: str | None = None) -> str:
        payload: dict[str, str] = {"type": "recovery", "email": email}
        if redirect_to:
            payload["redirect_to"] = redirect_to
        response = request(
            self.http,
            "supabase_auth",
            "POST",
            f"{self.url.rstrip('/')}/auth/v1/admin/generate_link",
            headers={"apikey": self.service_key, "Authorization": f"Bearer {self.service_key}"},
            json=payload,
        )
        body = body_json(response)
        if response.is_success:
            # a success without a link (a proxy's HTML page, a body cut short) is retried like
            # Resend's and Telegram's: as "other 4xx" it sent the welcome e-mail to dead at once
            if isinstance(body, dict):
                link = body.get("action_link") or (body.get("properties") or {}).get("action_link")
                if link:
                    return str(link)
            raise TransientError(
                f"supabase_auth: generate_link answered HTTP {response.status_code} without action_link"
            )
        code = ""
        if isinstance(body, dict):
            code = str(body.get("error_code") or body.get("code") or body.get("error") or "")
        raise classify_status("supabase_auth generate_link", response, code)
