"""A transport that answers every provider call with its documented success shape and
sends nothing: ``onai-db worker --dry-run`` and the demo use it."""

from __future__ import annotations

import itertools
import json

import httpx

_ids = itertools.count(1000)


def _handler(request: httpx.Request) -> httpx.Response:
    path = request.url.path
    n = next(_ids)
    if path.endswith("/emails"):
        return httpx.Response(200, json={"id": f"dry-run-{n}"})
    if path.endswith("/auth/v1/admin/generate_link"):
        email = json.loads(request.content or b"{}").get("email", "")
        return httpx.Response(
            200,
            json={
                "id": "00000000-0000-0000-0000-000000000000",
                "email": email,
                "action_link": f"https://example.invalid/auth/v1/verify?type=recovery&token=dry-run-{n}",
                "email_otp": "000000",
                "hashed_token": f"dry-run-{n}",
                "verification_type": "recovery",
                "redirect_to": "https://example.invalid",
            },
        )
    if path.endswith("/sendsmsmessage"):
        return httpx.Response(
            200, json={"code": 0, "data": {"campaignId": n, "messageId": n, "status": 1}, "message": ""}
        )
    if path.endswith("/sendMessage"):
        return httpx.Response(200, json={"ok": True, "result": {"message_id": n, "chat": {}, "date": 0}})
    if "/api/v4/contacts" in path:
        if request.method == "GET":
            return httpx.Response(204)
        return httpx.Response(200, json={"_embedded": {"contacts": [{"id": n, "request_id": "0"}]}})
    if "/api/v4/leads" in path:
        return httpx.Response(200, json={"_embedded": {"leads": [{"id": n, "request_id": "0"}]}})
    return httpx.Response(404, json={"error": "not handled by the dry-run transport"})


def transport() -> httpx.MockTransport:
    return httpx.MockTransport(_handler)
