"""What the worker does per job kind: build the request from the payload and call the
provider. Handlers return a :class:`Delivery` or raise a :class:`ProviderError`; the
worker turns that into complete / fail on the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from .errors import ConfigError
from .integration_tokens import Token, TokenGrant, TokenStore
from .outbox import KINDS, Job
from .providers import email_templates
from .providers.amocrm import AmoCrmClient, AmoCrmConfig
from .providers.base import Delivery, PermanentError, TransientError
from .providers.mobizon import DEFAULT_URL as MOBIZON_URL
from .providers.mobizon import MobizonClient
from .providers.resend import DEFAULT_URL as RESEND_URL
from .providers.resend import ResendClient
from .providers.supabase_auth import SupabaseAuthClient
from .providers.telegram import DEFAULT_URL as TELEGRAM_URL
from .providers.telegram import ChatGoneError, ChatMigratedError, TelegramClient
from .redact import redact
from .settings import Settings

BOTS = ("leads", "admin", "mentor")
DEFAULT_FROM = "onAI Academy <platform@onai.academy>"
DEFAULT_PLATFORM_URL = "https://expresscourse.onai.academy/login"


@dataclass(frozen=True)
class ProviderConfig:
    """Provider endpoints and credentials, from the environment (seed names accepted)."""

    resend_api_url: str = RESEND_URL
    resend_api_key: str | None = None
    resend_from: str = DEFAULT_FROM
    supabase_url: str | None = None
    supabase_service_key: str | None = None
    platform_url: str = DEFAULT_PLATFORM_URL
    set_password_redirect: str | None = None
    mobizon_api_url: str = MOBIZON_URL
    mobizon_api_key: str | None = None
    mobizon_sender: str | None = None
    telegram_api_url: str = TELEGRAM_URL
    telegram_bot_tokens: dict[str, str] = field(default_factory=dict)
    amocrm: AmoCrmConfig | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> ProviderConfig:
        base = s.get("AMOCRM_BASE_URL")
        sub = s.get("AMOCRM_SUBDOMAIN")
        if not base and sub:
            base = f"https://{sub}.amocrm.ru"
        stages = {n: v for n in (1, 2, 3) if (v := s.integer(f"AMOCRM_STAGE_LESSON_{n}")) is not None}
        supabase_url, supabase_key = s.supabase_project()
        amo = (
            AmoCrmConfig(
                base_url=base,
                client_id=s.get("AMOCRM_CLIENT_ID"),
                client_secret=s.get("AMOCRM_CLIENT_SECRET"),
                redirect_uri=s.get("AMOCRM_REDIRECT_URI"),
                pipeline_id=s.integer("AMOCRM_PIPELINE_ID"),
                lesson_stages=stages,
            )
            if base
            else None
        )
        return cls(
            resend_api_url=s.get("RESEND_API_URL", RESEND_URL) or RESEND_URL,
            resend_api_key=s.get("RESEND_API_KEY"),
            resend_from=s.get("RESEND_FROM_EMAIL", DEFAULT_FROM) or DEFAULT_FROM,
            supabase_url=supabase_url,
            supabase_service_key=supabase_key,
            platform_url=s.get("PLATFORM_URL", DEFAULT_PLATFORM_URL) or DEFAULT_PLATFORM_URL,
            set_password_redirect=s.get("SET_PASSWORD_REDIRECT_URL"),
            mobizon_api_url=s.get("MOBIZON_API_URL", MOBIZON_URL) or MOBIZON_URL,
            mobizon_api_key=s.get("MOBIZON_API_KEY"),
            mobizon_sender=s.get("MOBIZON_SENDER"),
            telegram_api_url=s.get("TELEGRAM_API_URL", TELEGRAM_URL) or TELEGRAM_URL,
            telegram_bot_tokens={b: t for b in BOTS if (t := s.get(f"TELEGRAM_{b.upper()}_BOT_TOKEN"))},
            amocrm=amo,
        )

    def missing(self, kind: str) -> list[str]:
        """Setting names a kind still needs (empty = the kind can run)."""
        need: list[str] = []
        if kind == "email":
            if not self.resend_api_key:
                need.append("RESEND_API_KEY")
            if not (self.supabase_url and self.supabase_service_key):
                need.append(
                    "TRAFFIC_SUPABASE_URL + TRAFFIC_SERVICE_ROLE_KEY (or SUPABASE_URL + SUPABASE_SERVICE_ROLE_KEY;"
                    " set-password links)"
                )
        elif kind == "sms" and not self.mobizon_api_key:
            need.append("MOBIZON_API_KEY")
        elif kind == "telegram" and not self.telegram_bot_tokens:
            need.append("TELEGRAM_LEADS_BOT_TOKEN (or _ADMIN_ / _MENTOR_)")
        elif kind == "amocrm" and self.amocrm is None:
            need.append("AMOCRM_BASE_URL or AMOCRM_SUBDOMAIN")
        return need

    def urls(self, kind: str) -> dict[str, str | None]:
        """The URLs a kind calls or writes into its messages, by the setting that gives each."""
        if kind == "email":
            return {
                "RESEND_API_URL": self.resend_api_url,
                "TRAFFIC_SUPABASE_URL (or SUPABASE_URL)": self.supabase_url,
                "PLATFORM_URL": self.platform_url,
                "SET_PASSWORD_REDIRECT_URL": self.set_password_redirect,
            }
        if kind == "sms":
            return {"MOBIZON_API_URL": self.mobizon_api_url}
        if kind == "telegram":
            return {"TELEGRAM_API_URL": self.telegram_api_url}
        if kind == "amocrm" and self.amocrm is not None:
            return {"AMOCRM_BASE_URL (or AMOCRM_SUBDOMAIN)": self.amocrm.base_url}
        return {}

    def bad_urls(self, kind: str) -> list[str]:
        """Settings of a kind whose value is not an absolute http(s) URL."""
        return [
            f"{name}={value!r}"
            for name, value in self.urls(kind).items()
            if value and not _is_http_url(value)
        ]

    def secrets(self) -> list[str]:
        """Every credential, for redaction of error texts."""
        values = [self.resend_api_key, self.supabase_service_key, self.mobizon_api_key]
        values += list(self.telegram_bot_tokens.values())
        if self.amocrm:
            values.append(self.amocrm.client_secret)
        return [v for v in values if v]

    def for_dry_run(self) -> ProviderConfig:
        """Placeholders for every missing credential: a dry run talks to no provider."""
        placeholder = "dry-run"
        amo = self.amocrm or AmoCrmConfig(
            base_url="https://dry-run.invalid", pipeline_id=1, lesson_stages={1: 1, 2: 2, 3: 3}
        )
        return replace(
            self,
            resend_api_key=self.resend_api_key or placeholder,
            supabase_url=self.supabase_url or "https://dry-run.invalid",
            supabase_service_key=self.supabase_service_key or placeholder,
            mobizon_api_key=self.mobizon_api_key or placeholder,
            telegram_bot_tokens={b: placeholder for b in BOTS} | self.telegram_bot_tokens,
            amocrm=amo,
        )

    def configured_kinds(self) -> list[str]:
        return [k for k in KINDS if not self.missing(k)]


class StaticTokens:
    """Token source for dry runs: a fixed fake token, never refreshed."""

    def load(self) -> Token:
        return Token("dry-run", None, None, 1)

    def refresh(self, seen: Token, do_refresh: Callable[[str], TokenGrant]) -> Token:
        return seen


@dataclass
class HandlerContext:
    conn: psycopg.Connection
    worker: str
    http_timeout_seconds: float = 10.0
    # a new connection like ``conn`` (service_role), for what must be stored after a
    # provider call although ``conn`` was lost during it (an AmoCRM deal's id)
    reconnect: Callable[[], psycopg.Connection] | None = None

    @property
    def token_lease_seconds(self) -> float:
        """How long a token refresh may hold its lease: longer than its one HTTP call can take
        (httpx's timeout is per phase: connect, write, read, pool). A fixed 30 s let a second
        worker spend the single-use refresh token again under a slow token endpoint."""
        return max(30.0, 4 * self.http_timeout_seconds + 5)


class Handlers:
    """Dispatch a job to its provider; one instance per worker thread."""

    def __init__(
        self, config: ProviderConfig, http: httpx.Client, ctx: HandlerContext, dry_run: bool = False
    ) -> None:
        self.config = config
        self.http = http
        self.ctx = ctx
        self.dry_run = dry_run
        self._amocrm_client: AmoCrmClient | None = None

    def handle(self, job: Job) -> Delivery:
        method = getattr(self, f"_{job.kind}", None)
        if method is None:
            raise PermanentError(f"no handler for job kind {job.kind}")
        return method(job)

    # -- email --------------------------------------------------------------------------

    def _email(self, job: Job) -> Delivery:
        cfg = self.config
        payload = job.payload
        template = str(payload.get("template") or "")
        to = payload.get("to")
        if not to:
            raise PermanentError("email job without a recipient")
        if template not in email_templates.TEMPLATES:
            raise PermanentError(f"unknown e-mail template {template!r}")
        link = None
        if template == "tripwire_welcome":
            if not (cfg.supabase_url and cfg.supabase_service_key):
                raise TransientError(
                    "supabase_auth: TRAFFIC_SUPABASE_URL / TRAFFIC_SERVICE_ROLE_KEY (or SUPABASE_*) not set"
                )
            auth = SupabaseAuthClient(self.http, cfg.supabase_url, cfg.supabase_service_key)
            link = auth.recovery_link(str(to), cfg.set_password_redirect)
        email = email_templates.render(
            template, payload, platform_url=cfg.platform_url, set_password_link=link
        )
        if not cfg.resend_api_key:
            raise TransientError("resend: RESEND_API_KEY not set")
        client = ResendClient(self.http, cfg.resend_api_key, cfg.resend_from, cfg.resend_api_url)
        return client.send(str(to), email, job.idempotency_key, single_use_link=link is not None)

    # -- sms ----------------------------------------------------------------------------

    def _sms(self, job: Job) -> Delivery:
        to, text = job.payload.get("to"), job.payload.get("text")
        if not to or not text:
            raise PermanentError("sms job needs 'to' and 'text'")
        if not self.config.mobizon_api_key:
            raise TransientError("mobizon: MOBIZON_API_KEY not set")
        client = MobizonClient(
            self.http, self.config.mobizon_api_key, self.config.mobizon_api_url, self.config.mobizon_sender
        )
        return client.send(str(to), str(text))

    # -- telegram -----------------------------------------------------------------------

    def _telegram(self, job: Job) -> Delivery:
        p = job.payload
        try:
            chat_id = int(p["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise PermanentError("telegram job without a numeric chat_id") from None
        group_type = p.get("group_type")
        text = str(p.get("text") or "")
        bot = str(p.get("bot") or "leads")
        token = self.config.telegram_bot_tokens.get(bot)
        if not token:
            raise TransientError(f"telegram: TELEGRAM_{bot.upper()}_BOT_TOKEN not set")
        if group_type is not None:
            row = self.ctx.conn.execute(
                "select is_active from public.telegram_groups where chat_id = %s and group_type = %s",
                (chat_id, group_type),
            ).fetchone()
            if row is not None and not row[0]:
                return Delivery(skipped=True, note="telegram group is deactivated")
        client = TelegramClient(self.http, self.config.telegram_api_url)
        try:
            return client.send_message(token, chat_id, text)
        except ChatMigratedError as moved:
            self.ctx.conn.execute("select public.move_telegram_chat(%s, %s)", (chat_id, moved.new_chat_id))
            try:
                return client.send_message(token, moved.new_chat_id, text)
            except ChatGoneError as gone:  # migrated, and this bot is not in the supergroup
                return self._chat_gone(moved.new_chat_id, bot, gone)
        except ChatGoneError as gone:
            return self._chat_gone(chat_id, bot, gone)

    def _chat_gone(self, chat_id: int, bot: str, gone: ChatGoneError) -> Delivery:
        """Telegram refused this bot the chat: its groups there are switched off (other bots'
        groups of the chat stay), and the job is done, not delivered."""
        # Telegram's own words, redacted as the job's error is (found by review: stored as
        # they came, so a credential an answer echoed reached the table)
        reason = redact(gone.message, self.config.secrets())
        self.ctx.conn.execute(
            "select public.deactivate_telegram_group(%s, %s, %s)", (chat_id, reason[:500], bot)
        )
        return Delivery(failed=True, note=f"group deactivated: {gone.message}")

    # -- amocrm -------------------------------------------------------------------------

    def amocrm_client(self) -> AmoCrmClient:
        if self._amocrm_client is None:
            cfg = self.config.amocrm
            if cfg is None:
                raise TransientError("amocrm: AMOCRM_BASE_URL / AMOCRM_SUBDOMAIN not set")
            tokens: Any = (
                StaticTokens()
                if self.dry_run
                else TokenStore(
                    self.ctx.conn,
                    "amocrm",
                    self.ctx.worker,
                    lease_seconds=self.ctx.token_lease_seconds,
                    wait_seconds=self.ctx.token_lease_seconds,
                    reconnect=self.ctx.reconnect,
                )
            )
            self._amocrm_client = AmoCrmClient(self.http, cfg, tokens)
        return self._amocrm_client

    def _amocrm(self, job: Job) -> Delivery:
        action = job.payload.get("action") or "sync_lead"
        client = self.amocrm_client()
        if action == "move_stage":
            try:
                lead_id, lesson = int(job.payload["amocrm_lead_id"]), int(job.payload["lesson"])
            except (KeyError, TypeError, ValueError):
                raise PermanentError("move_stage needs amocrm_lead_id and lesson") from None
            return self._move_stage(job, client, lead_id, lesson)
        if action == "sync_lead":
            return self._sync_lead(job, client)
        raise PermanentError(f"unknown amocrm action {action!r}")

    def _move_stage(self, job: Job, client: AmoCrmClient, deal_id: int, lesson: int) -> Delivery:
        """One move of a deal at a time: two lessons' moves running at once could both pass the
        check below and reach AmoCRM in the wrong order, leaving the deal at the earlier lesson
        (left from last stop's list). The other waits a few seconds, then sees the later move."""
        from .amocrm_sync import one_at_a_time

        with one_at_a_time(
            self.ctx.conn, f"deal/{deal_id}", f"deal {deal_id} is being moved by another worker"
        ):
            later = self._later_lesson_moved(job.id, deal_id, lesson)
            if later is not None:
                return Delivery(skipped=True, note=f"deal {deal_id} was moved to lesson {later} already")
            client.move_lead_stage(deal_id, lesson)
            return Delivery(provider_ref=str(deal_id))

    def _later_lesson_moved(self, job_id: int, deal_id: int, lesson: int) -> int | None:
        """The highest later lesson whose move of this deal is done or under way. A retried
        earlier lesson (after a 5xx, a 429 snooze) must not move the deal back (found by
        review). Exact keys, so the unique index answers; done jobs keep their keys."""
        later = [f"amocrm_stage/{deal_id}/{n}" for n in range(lesson + 1, 4)]
        row = self.ctx.conn.execute(
            "select max(pg_catalog.split_part(j.idempotency_key, '/', 3)::integer)"
            " from public.outbox_jobs as j"
            " where j.idempotency_key = any(%s) and j.status in ('done', 'running') and j.id <> %s",
            (later, job_id),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else None

    def _sync_lead(self, job: Job, client: AmoCrmClient) -> Delivery:
        from .amocrm_sync import sync_lead

        return sync_lead(self.ctx.conn, client, job.payload, reconnect=self.ctx.reconnect)


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in value)


def require_kinds(config: ProviderConfig, kinds: list[str], dry_run: bool) -> None:
    """ConfigError naming what is missing, or not a URL, for any requested kind."""
    bad = [u for k in kinds for u in config.bad_urls(k)]
    if bad:
        raise ConfigError(f"not an absolute http(s) URL: {', '.join(bad)}")
    if dry_run:
        return
    gaps = {k: config.missing(k) for k in kinds}
    gaps = {k: v for k, v in gaps.items() if v}
    if gaps:
        detail = "; ".join(f"{k}: {', '.join(v)}" for k, v in gaps.items())
        raise ConfigError(
            f"cannot run {', '.join(gaps)} jobs, settings missing ({detail}); use --services to pick others"
        )
