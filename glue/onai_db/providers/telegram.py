"""Telegram Bot API ``sendMessage``.

``POST {TELEGRAM_API_URL}/bot<token>/sendMessage``; answers ``{"ok": true, "result":
{"message_id", ...}}`` or ``{"ok": false, "error_code", "description", "parameters":
{"retry_after" | "migrate_to_chat_id"}}`` (research §5.3). Telegram may change error codes,
so the description decides: 403 (bot kicked / blocked / user deactivated) and 400 "chat
not found" mean the chat is gone; 400 "upgraded to a supergroup" carries the new chat id;
429 says how long to wait. The bot token is in the URL path, so texts never include it.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from .base import (
    Delivery,
    PermanentError,
    ProviderError,
    RateLimitedError,
    TransientError,
    body_json,
    request,
    retry_after_header,
    seconds_field,
)

DEFAULT_URL = "https://api.telegram.org"


class ChatGoneError(ProviderError):
    """The bot can no longer write to the chat: deactivate the group, do not retry."""

    retry = False


class ChatMigratedError(ProviderError):
    """The group became a supergroup: ``new_chat_id`` is where to send."""

    def __init__(self, message: str, new_chat_id: int) -> None:
        super().__init__(message)
        self.new_chat_id = new_chat_id


def _is_gone(status: int, description: str) -> bool:
    text = description.lower()
    if status == 403:
        return True
    return status == 400 and ("chat not found" in text or "bot was kicked" in text or "not a member" in text)


@dataclass
class TelegramClient:
    http: httpx.Client
    api_url: str = DEFAULT_URL

    def send_message(self, bot_token: str, chat_id: int, text: str) -> Delivery:
        response = request(
            self.http,
            "telegram",
            "POST",
            f"{self.api_url.rstrip('/')}/bot{bot_token}/sendMessage",
            json={"chat_id": chat_id, "text": text, "disable_web_page_preview": True},
        )
        body = body_json(response)
        if response.status_code == 200 and isinstance(body, dict) and body.get("ok") is True:
            result = body.get("result") or {}
            return Delivery(provider_ref=str(result.get("message_id")) if isinstance(result, dict) else None)
        # Telegram's error answers are {"ok": false, "description", "parameters"}; anything
        # else came from somewhere else (a proxy, a WAF) or was cut, and is read by its status
        # only (found by review: an HTML 403 deactivated a group, a 200 without ok:true went
        # dead, an odd parameters field raised and the job went dead or spun)
        error = body if isinstance(body, dict) and body.get("ok") is False else None
        telegram_error = error is not None
        description = str(error.get("description", "")) if error is not None else ""
        raw_params = error.get("parameters") if error is not None else None
        params = raw_params if isinstance(raw_params, dict) else {}
        status = response.status_code
        message = f"telegram: HTTP {status} {description}".rstrip()
        if status == 429:
            wait = seconds_field(params.get("retry_after"))
            raise RateLimitedError(message, wait if wait is not None else retry_after_header(response, 1.0))
        if not telegram_error:
            if status == 200 or status >= 500 or status in (401, 403):
                raise TransientError(f"{message} (not Telegram's answer, or unreadable)")
            raise PermanentError(f"{message} (not Telegram's answer, or unreadable)")
        if status == 400 and params.get("migrate_to_chat_id"):
            new_chat = params["migrate_to_chat_id"]
            if isinstance(new_chat, int) and not isinstance(new_chat, bool):
                raise ChatMigratedError(message, new_chat)
            raise PermanentError(f"{message} (the new chat id is unreadable: update telegram_groups by hand)")
        if _is_gone(status, description):
            raise ChatGoneError(message)
        if status == 200 or status >= 500 or status == 401:
            # 401 = bad bot token: fixable configuration, keep the job for a retry; a 200 with
            # ok:false is no documented answer
            raise TransientError(message)
        raise PermanentError(message)
