"""Mobizon SMS API (Kazakhstan): ``POST {MOBIZON_API_URL}/service/message/sendsmsmessage``.

Query ``output=json&api=v1&apiKey=...``, form fields ``recipient`` (international digits,
no ``+``) and ``text`` (optional ``from``). The answer is HTTP 200 with
``{"code": 0, "data": {"campaignId", "messageId", "status"}, "message": ""}``; a non-zero
``code`` is an error: 1 = validation failed (``data`` names the field), 2 = not found —
both permanent; other codes (balance, background work, internal) are retried.
The API key travels in the query string, so error texts never include the URL.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .base import Delivery, PermanentError, TransientError, body_json, classify_status, request

DEFAULT_URL = "https://api.mobizon.kz"
PERMANENT_CODES = {1, 2}


def recipient_digits(phone: str) -> str:
    digits = "".join(ch for ch in phone if ch.isdigit())
    if not 10 <= len(digits) <= 15:
        raise PermanentError("mobizon: recipient is not a full international number")
    return digits


@dataclass
class MobizonClient:
    http: httpx.Client
    api_key: str
    api_url: str = DEFAULT_URL
    sender: str | None = None

    def send(self, phone: str, text: str) -> Delivery:
        form = {"recipient": recipient_digits(phone), "text": text}
        if self.sender:
            form["from"] = self.sender
        response = request(
            self.http,
            "mobizon",
            "POST",
            f"{self.api_url.rstrip('/')}/service/message/sendsmsmessage",
            params={"output": "json", "api": "v1", "apiKey": self.api_key},
            data=form,
        )
        if response.status_code != 200:
            raise classify_status("mobizon", response, "")
        body = body_json(response)
        if not isinstance(body, dict) or "code" not in body:
            raise TransientError("mobizon: HTTP 200 without a JSON result")
        try:
            code = int(body["code"])
        except (TypeError, ValueError):
            raise TransientError("mobizon: unreadable result code") from None
        if code == 0:
            data = body.get("data") or {}
            ref = data.get("messageId") if isinstance(data, dict) else None
            return Delivery(provider_ref=str(ref) if ref is not None else None)
        fields = ""
        if code == 1 and isinstance(body.get("data"), dict):
            fields = " fields: " + ", ".join(sorted(str(k) for k in body["data"]))
        text_msg = f"mobizon: code {code}{fields}"
        raise PermanentError(text_msg) if code in PERMANENT_CODES else TransientError(text_msg)
