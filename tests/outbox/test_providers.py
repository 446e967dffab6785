"""Each provider client against its documented answers: success, 4xx, 5xx, timeout, 429
(and the provider-specific cases: Resend idempotency conflicts, Mobizon result codes,
Telegram chat gone / migrated, GoTrue links, AmoCRM problem+json)."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Iterator

import httpx
import pytest

from onai_db.providers.base import (
    Delivery,
    PermanentError,
    ProviderError,
    RateLimitedError,
    TransientError,
    retry_after_header,
)
from onai_db.providers.email_templates import render
from onai_db.providers.mobizon import MobizonClient
from onai_db.providers.resend import ResendClient
from onai_db.providers.supabase_auth import SupabaseAuthClient
from onai_db.providers.telegram import ChatGoneError, ChatMigratedError, TelegramClient
from onai_db.redact import redact
from support.fake_providers import LEADS_BOT, MOBIZON_KEY, RESEND_KEY, SERVICE_KEY, FakeProviders, Reply

TIMEOUT = 0.3


@pytest.fixture()
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as client:
        yield client


def resend_call(fake: FakeProviders, http: httpx.Client) -> Delivery:
    email = render("password_changed", {"to": "a@example.kz"}, platform_url="https://x")
    return ResendClient(http, RESEND_KEY, "onAI <p@onai.academy>", fake.url).send(
        "a@example.kz", email, "pw/1"
    )


def mobizon_call(fake: FakeProviders, http: httpx.Client) -> Delivery:
    return MobizonClient(http, MOBIZON_KEY, fake.url).send("+7 701 123 45 67", "Ваша комиссия 5000 KZT")


def telegram_call(fake: FakeProviders, http: httpx.Client) -> Delivery:
    return TelegramClient(http, fake.url).send_message(LEADS_BOT, -1001234567890, "Новый лид")


def gotrue_call(fake: FakeProviders, http: httpx.Client) -> str:
    return SupabaseAuthClient(http, fake.url, SERVICE_KEY).recovery_link("a@example.kz")


CALLS: dict[str, tuple[str, Callable]] = {
    "resend": ("resend", resend_call),
    "mobizon": ("mobizon", mobizon_call),
    "telegram": ("telegram", telegram_call),
    "gotrue": ("gotrue", gotrue_call),
}

FOUR_XX = {
    "resend": Reply(422, {"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field."}),
    "mobizon": Reply(
        200, {"code": 1, "data": {"recipient": "Неверный номер"}, "message": "Ошибка валидации"}
    ),
    "telegram": Reply(
        400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"}
    ),
    "gotrue": Reply(
        422, {"code": 422, "error_code": "validation_failed", "msg": "Unable to validate email address"}
    ),
}
FIVE_XX = {
    "resend": Reply(500, {"statusCode": 500, "name": "internal_server_error", "message": "Unexpected error"}),
    "mobizon": Reply(502, raw=b"<html>502 Bad Gateway</html>"),
    "telegram": Reply(502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}),
    "gotrue": Reply(500, {"code": 500, "error_code": "unexpected_failure", "msg": "Internal Server Error"}),
}
TOO_MANY = {
    "resend": Reply(
        429,
        {"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests."},
        {"retry-after": "2", "ratelimit-limit": "2", "ratelimit-remaining": "0", "ratelimit-reset": "2"},
    ),
    "mobizon": Reply(429, raw=b"Too Many Requests", headers={"retry-after": "3"}),
    "telegram": Reply(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 5",
            "parameters": {"retry_after": 5},
        },
    ),
    "gotrue": Reply(
        429, {"code": 429, "error_code": "over_request_rate_limit", "msg": "Rate limit"}, {"retry-after": "4"}
    ),
}
RETRY_AFTER = {"resend": 2, "mobizon": 3, "telegram": 5, "gotrue": 4}


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_success(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    result = call(fake, http)
    (req,) = fake.calls(route)
    if provider == "gotrue":
        assert result == fake.links[0]
        assert req.json() == {"type": "recovery", "email": "a@example.kz"}
        assert (
            req.headers["apikey"] == SERVICE_KEY and req.headers["Authorization"] == f"Bearer {SERVICE_KEY}"
        )
        return
    assert isinstance(result, Delivery) and result.provider_ref and not result.skipped
    if provider == "resend":
        assert req.headers["Idempotency-Key"] == "pw/1"
        assert req.headers["Authorization"] == f"Bearer {RESEND_KEY}"
        assert req.json()["to"] == ["a@example.kz"]
    if provider == "mobizon":
        assert req.query["apiKey"] == [MOBIZON_KEY] and req.query["output"] == ["json"]
        assert req.form()["recipient"] == ["77011234567"]
    if provider == "telegram":
        assert req.path == f"/bot{LEADS_BOT}/sendMessage" and req.json()["chat_id"] == -1001234567890


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_4xx_is_permanent(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    fake.script(route, FOUR_XX[provider])
    with pytest.raises(PermanentError) as err:
        call(fake, http)
    assert not err.value.retry


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_5xx_is_transient(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    fake.script(route, FIVE_XX[provider])
    with pytest.raises(TransientError) as err:
        call(fake, http)
    assert err.value.retry and "5" in str(err.value)


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_timeout_is_transient_and_says_so(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    fake.script(route, Reply(200, {"ok": True}, delay=TIMEOUT * 3))
    with pytest.raises(TransientError, match="timeout"):
        call(fake, http)


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_429_says_when_to_retry(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    fake.script(route, TOO_MANY[provider])
    with pytest.raises(RateLimitedError) as err:
        call(fake, http)
    assert err.value.retry_after == RETRY_AFTER[provider]


@pytest.mark.parametrize("provider", sorted(CALLS))
def test_errors_never_carry_credentials(fake: FakeProviders, http: httpx.Client, provider: str) -> None:
    route, call = CALLS[provider]
    for reply in (FOUR_XX[provider], FIVE_XX[provider], TOO_MANY[provider], Reply(200, delay=TIMEOUT * 3)):
        fake.script(route, reply)
        with pytest.raises(Exception) as err:
            call(fake, http)
        text = str(err.value)
        for secret in (RESEND_KEY, MOBIZON_KEY, LEADS_BOT, SERVICE_KEY, fake.url):
            assert secret not in text


def test_resend_idempotency_conflicts(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(
        "resend",
        Reply(409, {"statusCode": 409, "name": "concurrent_idempotent_requests", "message": "in progress"}),
        Reply(409, {"statusCode": 409, "name": "invalid_idempotent_request", "message": "different payload"}),
    )
    with pytest.raises(TransientError, match="concurrent_idempotent_requests"):
        resend_call(fake, http)
    delivered = resend_call(fake, http)
    assert delivered.skipped and "earlier attempt" in (delivered.note or "")


def test_resend_daily_quota_waits_long_without_a_header(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("resend", Reply(429, {"statusCode": 429, "name": "daily_quota_exceeded", "message": "quota"}))
    with pytest.raises(RateLimitedError) as err:
        resend_call(fake, http)
    assert err.value.retry_after == 3600


def test_mobizon_other_codes_are_retried_and_bad_numbers_refused(
    fake: FakeProviders, http: httpx.Client
) -> None:
    fake.script("mobizon", Reply(200, {"code": 8, "data": [], "message": "Недостаточно средств"}))
    with pytest.raises(TransientError, match="code 8"):
        mobizon_call(fake, http)
    with pytest.raises(PermanentError):
        MobizonClient(http, MOBIZON_KEY, fake.url).send("12", "x")
    assert len(fake.calls("mobizon")) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(
            403,
            {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was kicked from the supergroup chat",
            },
        ),
        Reply(403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
        Reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}),
    ],
    ids=["kicked", "blocked", "chat-not-found"],
)
def test_telegram_chat_gone(fake: FakeProviders, http: httpx.Client, reply: Reply) -> None:
    fake.script("telegram", reply)
    with pytest.raises(ChatGoneError) as err:
        telegram_call(fake, http)
    assert not err.value.retry and reply.json["description"] in str(err.value)


def test_telegram_group_upgraded_to_supergroup(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(
        "telegram",
        Reply(
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: group chat was upgraded to a supergroup chat",
                "parameters": {"migrate_to_chat_id": -1009876543210},
            },
        ),
    )
    with pytest.raises(ChatMigratedError) as err:
        telegram_call(fake, http)
    assert err.value.new_chat_id == -1009876543210


def test_redact_removes_known_and_pattern_secrets() -> None:
    text = (
        f"GET https://api.telegram.org/bot{LEADS_BOT}/sendMessage?apiKey={MOBIZON_KEY} "
        f"Bearer abc.def token=xyz {RESEND_KEY} https://p.supabase.co/auth/v1/verify?token=1&type=recovery"
    )
    out = redact(text, [MOBIZON_KEY])
    for secret in (LEADS_BOT, MOBIZON_KEY, "abc.def", "token=xyz", RESEND_KEY, "verify?token=1"):
        assert secret not in out
    # as JSON and as "key: value" (they passed through, found by review)
    quoted = redact('{"access_token": "eyJhbGciOi.x.y", "refresh_token":"def50200ab", "expires_in": 86400}')
    assert "eyJ" not in quoted and "def50200ab" not in quoted and '"expires_in": 86400' in quoted
    assert quoted.startswith('{"access_token": <redacted>')
    spoken = redact("api_key: sk_live_123456, password: hunter2; client_secret: s3cr3t} Secret: x")
    for secret in ("sk_live_123456", "hunter2", "s3cr3t", "Secret: x"):
        assert secret not in spoken
    assert redact("status: 400, detail: bad") == "status: 400, detail: bad"
    # an escaped quote inside a JSON value, hyphenated key names, an Authorization header
    for text, secret in (
        ('{"password":"a\\"b secret"}', "b secret"),
        ("X-Api-Key: abc123", "abc123"),
        ('"api-key": "zzz-key"', "zzz-key"),
        ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ):
        assert secret not in redact(text), text


def test_redact_takes_a_bot_tokens_whole_tail_and_secrets_of_four_characters() -> None:
    """A token's tail may hold ``_`` and ``-``: the pattern takes all of it, not a part that
    ends before them; a known secret of four characters is redacted, a shorter one is not
    (it would turn up in ordinary words). Both went unpinned (mutation review)."""
    out = redact("GET /bot1234567:AA-x_y-Zz_9/sendMessage failed")
    assert out == "GET /bot<redacted>/sendMessage failed"
    assert redact("key k3y! used", ["k3y!"]) == "key <redacted> used"
    assert redact("the key abc", ["abc"]) == "the key abc"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("0", 1.0),  # at least a second: "Retry-After: 0" must not spin --once on the provider
        ("1e13", 86400.0),  # at most a day: a huge wait overflowed the job's timestamp
        ("nan", 7.0),
        ("soon", 7.0),
    ],
)
def test_retry_after_is_read_and_bounded(header: str, expected: float) -> None:
    response = httpx.Response(429, headers={"retry-after": header})
    assert RateLimitedError("x", retry_after_header(response, 7.0)).retry_after == expected


def test_retry_after_may_be_an_http_date() -> None:
    when = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=600), usegmt=True)
    waited = retry_after_header(httpx.Response(429, headers={"retry-after": when}), 1.0)
    assert 590 <= waited <= 600


REFUSED_KEY = {
    "resend": [
        Reply(401, {"statusCode": 401, "name": "missing_api_key", "message": "Missing API key"}),
        Reply(403, {"statusCode": 403, "name": "invalid_api_key", "message": "API key is invalid"}),
    ],
    "mobizon": [Reply(401, raw=b"Unauthorized")],
    "gotrue": [Reply(401, {"code": 401, "error_code": "bad_jwt", "msg": "invalid JWT"})],
}


@pytest.mark.parametrize("provider", sorted(REFUSED_KEY))
def test_a_refused_api_key_is_retried_not_dead(
    fake: FakeProviders, http: httpx.Client, provider: str
) -> None:
    """A wrong or rotated key made every e-mail queued meanwhile dead at once (an operator
    had to requeue them), where Telegram's bad bot token was retried (found by review)."""
    route, call = CALLS[provider]
    for reply in REFUSED_KEY[provider]:
        fake.script(route, reply)
        with pytest.raises(TransientError, match="check the API key") as err:
            call(fake, http)
        assert err.value.retry


def test_resend_monthly_quota_waits_a_day_without_a_header(fake: FakeProviders, http: httpx.Client) -> None:
    """It got the 1 s default: a retry every second until the month's end (found by review)."""
    fake.script(
        "resend", Reply(429, {"statusCode": 429, "name": "monthly_quota_exceeded", "message": "quota"})
    )
    with pytest.raises(RateLimitedError) as err:
        resend_call(fake, http)
    assert err.value.retry_after == 86400


@pytest.mark.parametrize("key", ["password_changed/u1/смена-1", "pw/line\r\nX-Injected: 1", " padded "])
def test_resend_header_carries_any_key_as_the_same_digest_each_time(
    fake: FakeProviders, http: httpx.Client, key: str
) -> None:
    """A Cyrillic event key raised UnicodeEncodeError (the job dead, nothing sent); a CR/LF
    in it was retried until dead (found by review). A key no header can carry is sent as
    its digest, the same for every attempt, so Resend still sees one e-mail."""
    email = render("password_changed", {"to": "a@example.kz"}, platform_url="https://x")
    client = ResendClient(http, RESEND_KEY, "onAI <p@onai.academy>", fake.url)
    first = client.send("a@example.kz", email, key)
    assert first.provider_ref and not first.skipped
    again = client.send("a@example.kz", email, key)
    assert again.provider_ref == first.provider_ref  # the same key: Resend answers the first e-mail
    sent = [c.headers["Idempotency-Key"] for c in fake.calls("resend")]
    assert sent[0] == sent[1] and sent[0].startswith("sha256:") and len(sent[0]) == 71


@pytest.mark.parametrize(
    ("reply", "error", "needle"),
    [
        (
            Reply(429, {"ok": False, "error_code": 429, "description": "Too Many Requests", "parameters": {"retry_after": "5s"}}, {"retry-after": "7"}),
            RateLimitedError,
            "429",
        ),
        (Reply(429, raw=b"slow down", headers={"retry-after": "30"}), RateLimitedError, "429"),
        (
            Reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat", "parameters": {"migrate_to_chat_id": "-100x"}}),
            PermanentError,
            "new chat id is unreadable",
        ),
        (
            Reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: x", "parameters": ["odd"]}),
            PermanentError,
            "Bad Request: x",
        ),
        (Reply(403, raw=b"<html>Access denied by the firewall</html>"), TransientError, "not Telegram's answer"),
        (Reply(200, {"ok": False}), TransientError, "HTTP 200"),
        (Reply(200, raw=b"{not json"), TransientError, "not Telegram's answer"),
    ],
    ids=["retry-after-5s", "header-only", "bad-migrate-id", "parameters-list", "html-403", "200-ok-false", "200-garbage"],
)  # fmt: skip
def test_telegram_answers_of_other_shapes_are_read_by_their_status(
    fake: FakeProviders, http: httpx.Client, reply: Reply, error: type, needle: str
) -> None:
    """An odd `retry_after` or chat id raised ValueError and the job went dead on a rate
    limit; `parameters` as a list raised AttributeError; a proxy's HTML 403 deactivated the
    group; a 200 without ok:true went dead (found by review)."""
    fake.script("telegram", reply)
    with pytest.raises(ProviderError) as err:
        telegram_call(fake, http)
    assert type(err.value) is error and needle in str(err.value), err.value
    if isinstance(err.value, RateLimitedError):
        assert err.value.retry_after == float(reply.headers["retry-after"])


# --- found by the mutation review: each case fails on one plausible bug the suite missed ---


@pytest.mark.parametrize("status", [408, 409, 423, 425])
def test_a_retryable_4xx_is_transient(fake: FakeProviders, http: httpx.Client, status: int) -> None:
    """Request timeout, conflict, locked, too early: the same request may succeed later, so
    a dead letter for one lost the message (the generic mapping, here through Mobizon)."""
    fake.script("mobizon", Reply(status, raw=b"try again later"))
    with pytest.raises(TransientError, match=f"HTTP {status}"):
        mobizon_call(fake, http)


def test_telegram_a_bot_that_is_not_a_member_is_chat_gone(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script(
        "telegram",
        Reply(
            400,
            {
                "ok": False,
                "error_code": 400,
                "description": "Bad Request: bot is not a member of the channel chat",
            },
        ),
    )
    with pytest.raises(ChatGoneError):
        telegram_call(fake, http)


def test_telegram_a_refused_bot_token_is_retried(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("telegram", Reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"}))
    with pytest.raises(TransientError) as err:
        telegram_call(fake, http)
    assert not isinstance(err.value, ChatGoneError)


def test_mobizon_code_2_is_permanent(fake: FakeProviders, http: httpx.Client) -> None:
    """Mobizon's documented result code 2 (the parameters cannot be processed) is not retried."""
    fake.script("mobizon", Reply(200, {"code": 2, "data": [], "message": "Bad request"}))
    with pytest.raises(PermanentError, match="code 2"):
        mobizon_call(fake, http)


def test_resend_200_without_an_id_is_transient(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("resend", Reply(200, {"object": "email"}))
    with pytest.raises(TransientError, match="without an e-mail id"):
        resend_call(fake, http)


@pytest.mark.parametrize(
    ("value", "expected"), [(5, 5.0), ("5", 5.0), (-1, None), ("-3", None), (True, None)]
)
def test_a_seconds_field_is_a_finite_non_negative_number(value: object, expected: float | None) -> None:
    from onai_db.providers.base import seconds_field

    assert seconds_field(value) == expected


@pytest.mark.parametrize(
    ("phone", "ok"), [("7011234567", True), ("+7 701 123 45 67", True), ("701123456", False)]
)
def test_mobizon_recipient_lengths(phone: str, ok: bool) -> None:
    from onai_db.providers.mobizon import recipient_digits

    if ok:
        assert recipient_digits(phone) == "".join(c for c in phone if c.isdigit())
    else:
        with pytest.raises(PermanentError):
            recipient_digits(phone)


# --- found by the second mutation review (request shapes, the dry run, GoTrue's link) ---


def test_resend_sends_the_whole_email_from_the_configured_sender(
    fake: FakeProviders, http: httpx.Client
) -> None:
    """The body Resend gets: sender, recipient, subject, html and text each from its own field."""
    email = render("password_changed", {"to": "a@example.kz"}, platform_url="https://x")
    ResendClient(http, RESEND_KEY, "onAI <p@onai.academy>", fake.url).send("a@example.kz", email, "pw/1")
    (req,) = fake.calls("resend")
    assert req.json() == {
        "from": "onAI <p@onai.academy>",
        "to": ["a@example.kz"],
        "subject": email.subject,
        "html": email.html,
        "text": email.text,
    }


def test_resend_each_new_link_after_a_lost_answer_gets_a_key_of_its_own(
    fake: FakeProviders, http: httpx.Client
) -> None:
    """Two lost answers in a row: the third attempt's e-mail (a third link, the only live one)
    must still go out; a digest of less than the whole body gave it the second's key, and
    it was skipped as "both idempotency keys used", leaving the user a cancelled link."""
    client = ResendClient(http, RESEND_KEY, "onAI <p@onai.academy>", fake.url)
    sent = []
    for n in range(3):
        email = render(
            "tripwire_welcome", {"to": "a@example.kz", "name": "A"}, platform_url="https://x",
            set_password_link=f"https://x/verify?token=t{n}",
        )  # fmt: skip
        sent.append(client.send("a@example.kz", email, "tripwire_welcome/u1", single_use_link=True))
    assert all(d.provider_ref and not d.skipped for d in sent), sent
    keys = [c.headers["Idempotency-Key"] for c in fake.calls("resend")]
    assert keys[0] == "tripwire_welcome/u1" and len(set(keys[1:])) == 3, keys  # k; k, k/d1; k, k/d2


def test_mobizon_request_carries_every_field_and_answers_the_message_id(
    fake: FakeProviders, http: httpx.Client
) -> None:
    text = "Ваша комиссия 5000 KZT. " * 10  # longer than one SMS part: sent whole
    fake.script(
        "mobizon",
        Reply(200, {"code": 0, "data": {"campaignId": "77", "messageId": "78", "status": 1}, "message": ""}),
    )
    delivered = MobizonClient(http, MOBIZON_KEY, fake.url, sender="onAI").send("+7 701 123 45 67", text)
    assert delivered.provider_ref == "78"  # the message's id, not the campaign's
    MobizonClient(http, MOBIZON_KEY, fake.url).send("+7 701 123 45 67", "x")
    first, second = fake.calls("mobizon")
    assert first.query == {"output": ["json"], "api": ["v1"], "apiKey": [MOBIZON_KEY]}
    assert first.form() == {"recipient": ["77011234567"], "text": [text], "from": ["onAI"]}
    assert second.form() == {"recipient": ["77011234567"], "text": ["x"]}  # no sender: no from


def test_telegram_request_body_and_the_message_id(fake: FakeProviders, http: httpx.Client) -> None:
    text = "Новый лид\n" + "x" * 3000
    fake.script(
        "telegram",
        Reply(200, {"ok": True, "result": {"message_id": 4242, "chat": {"id": -1001234567890}, "date": 1}}),
    )
    delivered = TelegramClient(http, fake.url).send_message(LEADS_BOT, -1001234567890, text)
    (req,) = fake.calls("telegram")
    assert req.json() == {"chat_id": -1001234567890, "text": text, "disable_web_page_preview": True}
    assert delivered.provider_ref == "4242"


def test_gotrue_link_may_come_under_properties(fake: FakeProviders, http: httpx.Client) -> None:
    """GoTrue versions answer generate_link with the link at the top or under ``properties``."""
    link = "https://p.supabase.co/auth/v1/verify?token=abc&type=recovery"
    fake.script("gotrue", Reply(200, {"id": "u", "properties": {"action_link": link, "email_otp": "1"}}))
    assert gotrue_call(fake, http) == link


@pytest.mark.parametrize(
    "body", [{"id": "u"}, {"id": "u", "properties": None}, {"action_link": "", "properties": {}}]
)
def test_gotrue_200_without_a_link_is_transient_and_sends_no_link(
    fake: FakeProviders, http: httpx.Client, body: object
) -> None:
    """A 200 without any action_link must not become a link ("None" in the e-mail)."""
    fake.script("gotrue", Reply(200, body))
    with pytest.raises(TransientError):
        gotrue_call(fake, http)


def test_gotrue_200_that_is_no_json_object_is_transient(fake: FakeProviders, http: httpx.Client) -> None:
    """A proxy's HTML page with 200 was "other 4xx": the welcome e-mail went dead at once
    (found by the second mutation review)."""
    for reply in (Reply(200, raw=b"<html>maintenance</html>"), Reply(200, ["not", "an", "object"])):
        fake.script("gotrue", reply)
        with pytest.raises(TransientError, match="HTTP 200 without action_link"):
            gotrue_call(fake, http)


def test_gotrue_error_names_its_error_code(fake: FakeProviders, http: httpx.Client) -> None:
    fake.script("gotrue", Reply(404, {"code": 404, "error_code": "user_not_found", "msg": "User not found"}))
    with pytest.raises(PermanentError, match="user_not_found"):
        gotrue_call(fake, http)
    fake.script("gotrue", Reply(400, {"error": "invalid_request", "error_description": "x"}))
    with pytest.raises(PermanentError, match="invalid_request"):
        gotrue_call(fake, http)


def test_every_client_succeeds_on_the_dry_run_transport() -> None:
    """`worker --dry-run` answers each provider with its success shape: each client reads it
    as a delivery (found by review: only e-mail, Telegram and AmoCRM were run by a test)."""
    from onai_db.providers.dryrun import transport

    with httpx.Client(transport=transport()) as http:
        email = render("password_changed", {"to": "a@example.kz"}, platform_url="https://x")
        assert ResendClient(http, "k", "f@x", "https://dry").send("a@example.kz", email, "k").provider_ref
        link = SupabaseAuthClient(http, "https://dry", "k").recovery_link("a@example.kz")
        assert link.startswith("https://example.invalid/")
        sms = MobizonClient(http, "k", "https://dry").send("+77011234567", "x")
        assert sms.provider_ref and not sms.skipped
        tg = TelegramClient(http, "https://dry").send_message("1:x", -1, "x")
        assert tg.provider_ref and not tg.skipped


def test_a_compressed_answer_is_read_once(fake: FakeProviders, http: httpx.Client) -> None:
    """Real providers gzip their answers (httpx asks for it): the body is decoded while it is
    read, so the response handed on must not say it is still compressed."""
    import gzip
    import json as _json

    body = gzip.compress(_json.dumps({"id": "gz-1"}).encode())
    fake.script("resend", Reply(200, raw=body, headers={"content-encoding": "gzip"}))
    assert resend_call(fake, http).provider_ref == "gz-1"
