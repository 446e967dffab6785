"""Fake provider APIs on 127.0.0.1, answering with their documented shapes.

One threaded HTTP server plays Resend, Supabase Auth (GoTrue admin generate_link),
Mobizon, the Telegram Bot API and AmoCRM v4 (+ its OAuth token endpoint). Tests queue
replies per route with :meth:`FakeProviders.script`; with nothing queued a route gives
the provider's success answer. Every request is recorded. Resend keeps its documented
idempotency: a key seen with the same body answers the first e-mail's id again, with
another body ``409 invalid_idempotent_request``. Worker subprocesses reach it
through the URLs in :meth:`FakeProviders.env`.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

RESEND_KEY = "re_test_0123456789abcdef"
MOBIZON_KEY = "kz_test_mobizon_key_0123456789"
LEADS_BOT = "1234567:AAtestLeadsBotToken_abcdefghijk"
ADMIN_BOT = "7654321:AAtestAdminBotToken_abcdefghijk"
SERVICE_KEY = "service-role-key-for-tests-0123456789"
AMO_CLIENT_SECRET = "amo-client-secret-0123456789"


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    raw: bytes | None = None  # a non-JSON body
    # Resend only: the e-mail was accepted (its idempotency key is taken) though this reply
    # says otherwise: a response lost on the way back
    accepted: bool = False
    usual: bool = False  # the route's usual answer, after ``delay`` (a slow provider)
    trickle: float = 0.0  # seconds between the body's bytes (each read within any timeout)


@dataclass
class Recorded:
    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


ROUTES = (
    ("gotrue", re.compile(r"^/auth/v1/admin/generate_link$")),
    ("resend", re.compile(r"^/emails$")),
    ("mobizon", re.compile(r"^/service/message/sendsmsmessage$", re.I)),
    ("telegram", re.compile(r"^/bot[^/]+/sendMessage$")),
    ("amocrm_token", re.compile(r"^/oauth2/access_token$")),
    ("amocrm_contacts", re.compile(r"^/api/v4/contacts(/\d+)?$")),
    ("amocrm_leads", re.compile(r"^/api/v4/leads(/\d+)?$")),
)


class FakeProviders:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.queued: dict[str, deque[Reply]] = defaultdict(deque)
        self.links: list[str] = []  # every set-password link handed out
        self.resend_keys: dict[str, tuple[bytes, str]] = {}  # Idempotency-Key -> (body, e-mail id)
        self.ids = itertools.count(5000)
        # AmoCRM OAuth state: the one valid access token and the one valid refresh token
        self.amo_access = "amo-access-1"
        self.amo_refresh = "amo-refresh-1"
        self.amo_refreshes = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                route = next((name for name, rx in ROUTES if rx.match(parts.path)), "unknown")
                rec = Recorded(
                    route, self.command, parts.path, parse_qs(parts.query), dict(self.headers), body
                )
                with fake.lock:
                    fake.requests.append(rec)
                    scripted = fake.queued[route].popleft() if fake.queued[route] else None
                reply = fake.default(rec) if scripted is None else scripted
                if scripted is not None and scripted.usual:
                    reply = replace(fake.default(rec), delay=scripted.delay)
                elif scripted is not None and scripted.accepted:
                    fake.default(rec)
                if reply.delay:
                    time.sleep(reply.delay)
                data = (
                    reply.raw
                    if reply.raw is not None
                    else (b"" if reply.json is None else json.dumps(reply.json).encode())
                )
                try:
                    self.send_response(reply.status)
                    ctype = "application/json" if reply.raw is None else "text/html"
                    self.send_header("content-type", ctype)
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    if reply.trickle:
                        for i in range(len(data)):
                            self.wfile.write(data[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle)
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.queued.clear()
            self.links.clear()
            self.resend_keys.clear()
            self.amo_access, self.amo_refresh, self.amo_refreshes = "amo-access-1", "amo-refresh-1", 0

    def script(self, route: str, *replies: Reply) -> None:
        with self.lock:
            self.queued[route].extend(replies)

    def calls(self, route: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.route == route]

    def env(self) -> dict[str, str]:
        """Settings that point a worker at this server (names as the seeds use them)."""
        return {
            "RESEND_API_URL": self.url,
            "RESEND_API_KEY": RESEND_KEY,
            "RESEND_FROM_EMAIL": "onAI Academy <platform@onai.academy>",
            "SUPABASE_URL": self.url,
            "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY,
            "MOBIZON_API_URL": self.url,
            "MOBIZON_API_KEY": MOBIZON_KEY,
            "TELEGRAM_API_URL": self.url,
            "TELEGRAM_LEADS_BOT_TOKEN": LEADS_BOT,
            "TELEGRAM_ADMIN_BOT_TOKEN": ADMIN_BOT,
            "AMOCRM_BASE_URL": self.url,
            "AMOCRM_CLIENT_ID": "amo-client-id",
            "AMOCRM_CLIENT_SECRET": AMO_CLIENT_SECRET,
            "AMOCRM_REDIRECT_URI": "https://onai.academy/amocrm/callback",
            "AMOCRM_PIPELINE_ID": "7001",
            "AMOCRM_STAGE_LESSON_1": "101",
            "AMOCRM_STAGE_LESSON_2": "102",
            "AMOCRM_STAGE_LESSON_3": "103",
        }

    # -- documented success answers --------------------------------------------------------

    def default(self, rec: Recorded) -> Reply:
        n = next(self.ids)
        if rec.route == "resend":
            return self._resend(rec, f"49a3999c-0ce1-4ea6-ab68-afcd6dc{n:05d}")
        if rec.route == "gotrue":
            email = rec.json().get("email")
            token = secrets.token_hex(16)
            link = f"{self.url}/auth/v1/verify?token={token}&type=recovery&redirect_to=https://expresscourse.onai.academy"
            with self.lock:
                self.links.append(link)
            return Reply(
                200,
                {
                    "id": "b7d2c9e0-0000-4000-8000-000000000001",
                    "aud": "authenticated",
                    "role": "authenticated",
                    "email": email,
                    "action_link": link,
                    "email_otp": "123456",
                    "hashed_token": token,
                    "verification_type": "recovery",
                    "redirect_to": "https://expresscourse.onai.academy",
                },
            )
        if rec.route == "mobizon":
            return Reply(
                200,
                {
                    "code": 0,
                    "data": {"campaignId": str(n), "messageId": str(n + 1), "status": 1},
                    "message": "",
                },
            )
        if rec.route == "telegram":
            chat = rec.json().get("chat_id")
            return Reply(
                200,
                {
                    "ok": True,
                    "result": {
                        "message_id": n,
                        "chat": {"id": chat, "type": "supergroup"},
                        "date": int(time.time()),
                    },
                },
            )
        if rec.route == "amocrm_token":
            return self._refresh(rec)
        if rec.route.startswith("amocrm_"):
            auth = rec.headers.get("Authorization") or rec.headers.get("authorization") or ""
            if auth != f"Bearer {self.amo_access}":
                return Reply(
                    401,
                    {
                        "title": "Unauthorized",
                        "type": "https://httpstatus.es/401",
                        "status": 401,
                        "detail": "Unauthorized",
                    },
                )
            entity = "contacts" if rec.route == "amocrm_contacts" else "leads"
            if rec.method == "GET":
                return Reply(204)
            if rec.method == "PATCH":
                return Reply(200, {"id": int(rec.path.rsplit("/", 1)[1]), "updated_at": int(time.time())})
            return Reply(200, {"_embedded": {entity: [{"id": n, "request_id": "0"}]}})
        return Reply(404, {"error": "unknown route"})

    def _resend(self, rec: Recorded, new_id: str) -> Reply:
        key = rec.headers.get("Idempotency-Key")
        if key is None:
            return Reply(200, {"id": new_id})
        with self.lock:
            body, email_id = self.resend_keys.setdefault(key, (rec.body, new_id))
        if body != rec.body:
            return Reply(
                409,
                {
                    "statusCode": 409,
                    "name": "invalid_idempotent_request",
                    "message": "Same idempotency key used with a different request payload. Change your idempotency key or payload.",
                },
            )
        return Reply(200, {"id": email_id})

    def _refresh(self, rec: Recorded) -> Reply:
        body = rec.json()
        with self.lock:
            if body.get("grant_type") != "refresh_token" or body.get("refresh_token") != self.amo_refresh:
                return Reply(
                    400,
                    {
                        "hint": "Token has been revoked",
                        "title": "Incorrect data",
                        "type": "https://httpstatus.es/400",
                        "status": 400,
                        "detail": "Incorrect data",
                    },
                )
            self.amo_refreshes += 1
            k = self.amo_refreshes + 1
            self.amo_access, self.amo_refresh = f"amo-access-{k}", f"amo-refresh-{k}"
            return Reply(
                200,
                {
                    "token_type": "Bearer",
                    "expires_in": 86400,
                    "access_token": self.amo_access,
                    "refresh_token": self.amo_refresh,
                },
            )
