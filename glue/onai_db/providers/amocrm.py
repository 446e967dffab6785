"""AmoCRM (Kommo) API v4: contacts, leads, stage moves, OAuth refresh.

Base ``https://<subdomain>.amocrm.ru`` (``AMOCRM_BASE_URL`` or ``AMOCRM_SUBDOMAIN``).
Requests carry ``Authorization: Bearer <access token>`` from ``integration_tokens``; a
401 refreshes the token through the single-flight lease and retries once. Errors are
``application/problem+json`` ``{title, type, status, detail, validation-errors?}``;
429 = too many requests (7 rps per account is the commonly cited limit).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..integration_tokens import EXPIRY_MARGIN_S, Token, TokenGrant, TokenStore
from .base import (
    AuthExpiredError,
    PermanentError,
    RateLimitedError,
    TransientError,
    body_json,
    request,
    retry_after_header,
)


def _dict(value: object) -> dict:
    """``value`` when it is a JSON object, else an empty one: an answer of another shape than
    documented is read as saying nothing there, not raised from (found by review: a 503 whose
    ``validation-errors`` was a number raised TypeError, and the job went dead at once)."""
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list:
    """``value`` when it is a JSON array, else an empty one (see :func:`_dict`)."""
    return value if isinstance(value, list) else []


def _error(response: httpx.Response, what: str) -> Exception:
    body = _dict(body_json(response))
    detail = str(body.get("detail") or body.get("title") or "")
    for item in _list(body.get("validation-errors")):
        for err in _list(_dict(item).get("errors")):
            err = _dict(err)
            detail += f" [{err.get('path', '?')}: {err.get('code', '?')}]"
    status = response.status_code
    message = f"amocrm {what}: HTTP {status} {detail}".rstrip()
    if status == 401:
        return AuthExpiredError(message)
    if status == 429:
        return RateLimitedError(message, retry_after_header(response, 1.0))
    if status >= 500:
        return TransientError(message)
    return PermanentError(message)


@dataclass
class AmoCrmConfig:
    base_url: str
    client_id: str | None = None
    client_secret: str | None = None
    redirect_uri: str | None = None
    pipeline_id: int | None = None
    lesson_stages: dict[int, int] | None = None  # lesson number -> status id


@dataclass(frozen=True)
class FoundContact:
    id: int
    fields: list[dict] = field(default_factory=list)  # custom_fields_values as AmoCRM sent them
    deal_ids: list[int] = field(default_factory=list)  # the deals linked to it (``with=leads``)


# AmoCRM's system stages, the same in every pipeline: "successfully realised" and "closed and
# not realised". A closed deal is never reused for a new lead.
CLOSED_STATUSES = frozenset({142, 143})


def _linked_deals(contact: dict) -> list[int]:
    leads = (contact.get("_embedded") or {}).get("leads") or []
    return [int(d["id"]) for d in leads if isinstance(d, dict) and "id" in d]


def _phone_key(value: str) -> str:
    """The last ten digits: +7 701 123 45 67, 8 (701) 123-45-67 and 77011234567 are one number."""
    return re.sub(r"\D", "", value)[-10:]


def _values(fields: list[dict], code: str) -> list[dict]:
    for item in fields:
        if (item or {}).get("field_code") == code:
            return [v for v in (item.get("values") or []) if isinstance(v, dict) and v.get("value")]
    return []


def _holds(fields: list[dict], code: str, wanted: str | None, key: Any) -> bool:
    return bool(wanted) and any(key(str(v["value"])) == key(str(wanted)) for v in _values(fields, code))


def _merged_fields(existing: list[dict], phone: str | None, email: str | None) -> list[dict]:
    """PHONE and EMAIL with the contact's values first and ours added when missing."""
    out = []
    for code, ours, key in (("PHONE", phone, _phone_key), ("EMAIL", email, str.casefold)):
        values = [
            {k: v[k] for k in ("value", "enum_id", "enum_code") if k in v} for v in _values(existing, code)
        ]
        if ours and not any(key(str(v["value"])) == key(ours) for v in values):
            values.append({"value": ours, "enum_code": "WORK"})
        if values:
            out.append({"field_code": code, "values": values})
    return out


class AmoCrmClient:
    def __init__(self, http: httpx.Client, config: AmoCrmConfig, tokens: TokenStore) -> None:
        self.http = http
        self.config = config
        self.tokens = tokens
        self._token: Token | None = None

    # -- OAuth --------------------------------------------------------------------------

    def _refresh_grant(self, refresh_token: str) -> TokenGrant:
        cfg = self.config
        if not (cfg.client_id and cfg.client_secret):
            raise TransientError("amocrm: AMOCRM_CLIENT_ID / AMOCRM_CLIENT_SECRET are not set")
        response = request(
            self.http,
            "amocrm",
            "POST",
            f"{cfg.base_url.rstrip('/')}/oauth2/access_token",
            json={
                "client_id": cfg.client_id,
                "client_secret": cfg.client_secret,
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "redirect_uri": cfg.redirect_uri or "",
            },
        )
        body = _dict(body_json(response))
        access, refresh = _text(body.get("access_token")), _text(body.get("refresh_token"))
        if response.status_code == 200 and access:
            return TokenGrant(access, refresh, _lifetime(body.get("expires_in")))
        if response.status_code == 200 and refresh:
            # a new refresh token without an access token: AmoCRM rotated, and the new one is
            # the only one that works now (found by review: it was dropped and the integration
            # needed a new consent). Stored with an access token that has expired, so the next
            # call refreshes with it.
            return TokenGrant(NO_ACCESS_TOKEN, refresh, 0.0)
        if response.status_code == 200:
            # a 200 that is no token answer (a proxy's page, a body without access_token) is
            # no rejection of the refresh token: it said "re-authorize" and the job went dead
            # (found by review); tried again, the stored pair unchanged
            raise TransientError(
                "amocrm token refresh: HTTP 200 without an access token in its answer"
                " (a proxy or a changed API?); the stored pair is kept and tried again"
            )
        err = _error(response, "token refresh")
        # a rejected refresh token will not start working by itself: say so plainly
        if isinstance(err, (PermanentError, AuthExpiredError)):
            raise PermanentError(f"{err} (refresh token rejected: re-authorize the integration)")
        raise err

    def _current(self) -> Token:
        token = self._token or self.tokens.load()
        if token.expiring():
            token = self.tokens.refresh(token, self._refresh_grant)
        self._token = token
        return token

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> httpx.Response:
        """One API call; a 401 refreshes the token (once, across all workers) and retries."""
        for attempt in (1, 2):
            token = self._current()
            response = request(
                self.http,
                "amocrm",
                method,
                f"{self.config.base_url.rstrip('/')}{path}",
                headers={"Authorization": f"Bearer {token.access_token}"},
                **kwargs,
            )
            if response.status_code in (200, 201, 204):
                return response
            err = _error(response, what)
            if isinstance(err, AuthExpiredError) and attempt == 1:
                self._token = self.tokens.refresh(token, self._refresh_grant)
                continue
            raise err
        raise AssertionError("unreachable")

    # -- entities -----------------------------------------------------------------------

    def find_contact(self, query: str, phone: str | None, email: str | None) -> FoundContact | None:
        """The first contact AmoCRM's full-text search finds that really holds this phone
        (the same last ten digits, however typed) or e-mail (any case). The search matches
        parts of any field, so its first hit could be another person's contact (found by
        review); no exact match means a new contact."""
        response = self.call(
            "GET", "/api/v4/contacts", "contact search", params={"query": query, "limit": 10, "with": "leads"}
        )
        if response.status_code == 204:
            return None
        contacts = ((body_json(response) or {}).get("_embedded") or {}).get("contacts") or []
        for contact in contacts:
            fields = contact.get("custom_fields_values") or []
            if _holds(fields, "PHONE", phone, _phone_key) or _holds(fields, "EMAIL", email, str.casefold):
                return FoundContact(int(contact["id"]), fields, _linked_deals(contact))
        return None

    def read_contact(self, contact_id: int) -> FoundContact:
        """The contact's phone, e-mail and other fields as AmoCRM holds them now, and its deals."""
        response = self.call(
            "GET", f"/api/v4/contacts/{contact_id}", "contact read", params={"with": "leads"}
        )
        contact = (body_json(response) or {}) if response.status_code != 204 else {}
        return FoundContact(
            contact_id, list(contact.get("custom_fields_values") or []), _linked_deals(contact)
        )

    def find_open_deal(self, deal_ids: list[int], names: Collection[str]) -> int | None:
        """Among a contact's deals, an open one in our pipeline with exactly one of these names:
        the deal an earlier run made before it could store it (a worker killed after ``POST
        /leads``; its name may be one the lead had then), or one made for the person before.
        Reusing it is what keeps a retry from a second deal."""
        if not deal_ids:
            return None
        ids = sorted(set(deal_ids))[-50:]  # the newest 50: AmoCRM's page
        response = self.call(
            "GET", "/api/v4/leads", "deal read", params=[("filter[id][]", str(i)) for i in ids]
        )
        if response.status_code == 204:
            return None
        deals = ((body_json(response) or {}).get("_embedded") or {}).get("leads") or []
        matching = [
            int(d["id"])
            for d in deals
            if isinstance(d, dict)
            and d.get("name") in names
            and d.get("status_id") not in CLOSED_STATUSES
            and (not self.config.pipeline_id or d.get("pipeline_id") == self.config.pipeline_id)
        ]
        return max(matching, default=None)

    def upsert_contact(
        self,
        contact_id: int | None,
        name: str,
        phone: str | None,
        email: str | None,
        existing: list[dict] | None = None,
    ) -> int:
        """Create the contact, or update it keeping what it holds: a PATCH replaces a field's
        whole list of values, so the phones and e-mails the contact has (``existing``, as
        AmoCRM sent them) are sent back with ours added (sales' second number was lost)."""
        if contact_id is not None:
            fields = _merged_fields(existing or [], phone, email)
            self.call(
                "PATCH", f"/api/v4/contacts/{contact_id}", "contact update",
                json={"name": name, "custom_fields_values": fields},
            )  # fmt: skip
            return contact_id
        body = {"name": name, "custom_fields_values": _merged_fields([], phone, email)}
        response = self.call("POST", "/api/v4/contacts", "contact create", json=[body])
        return _first_id(response, "contacts")

    def upsert_lead(self, lead_id: int | None, name: str, contact_id: int, tags: list[str]) -> int:
        """Create the deal in our pipeline, or update it where sales may have worked on it:
        an update adds our tags (``tags_to_add``; ``_embedded.tags`` would replace the deal's
        whole list) and leaves its pipeline and stage alone (``pipeline_id`` would pull a
        deal sales had moved to another pipeline back into ours)."""
        tag_list = [{"name": t} for t in tags]
        if lead_id is not None:
            update: dict[str, Any] = {"name": name}
            if tag_list:
                update["tags_to_add"] = tag_list
            self.call("PATCH", f"/api/v4/leads/{lead_id}", "lead update", json=update)
            return lead_id
        body: dict[str, Any] = {"name": name, "_embedded": {"contacts": [{"id": contact_id}]}}
        if self.config.pipeline_id:
            body["pipeline_id"] = self.config.pipeline_id
        if tag_list:
            body["_embedded"]["tags"] = tag_list
        response = self.call("POST", "/api/v4/leads", "lead create", json=[body])
        return _first_id(response, "leads")

    def move_lead_stage(self, lead_id: int, lesson: int) -> None:
        stages = self.config.lesson_stages or {}
        status_id = stages.get(lesson)
        if status_id is None:
            raise PermanentError(
                f"amocrm: no stage configured for lesson {lesson} (AMOCRM_STAGE_LESSON_{lesson})"
            )
        body: dict[str, Any] = {"status_id": status_id}
        if self.config.pipeline_id:
            body["pipeline_id"] = self.config.pipeline_id
        self.call("PATCH", f"/api/v4/leads/{lead_id}", "stage move", json=body)


def _first_id(response: httpx.Response, entity: str) -> int:
    items = _list(_dict(_dict(body_json(response)).get("_embedded")).get(entity))
    if not items or "id" not in _dict(items[0]):
        raise TransientError(f"amocrm: {entity} answer without an id")
    return int(items[0]["id"])


def _lifetime(expires_in: object) -> float:
    """A token's lifetime in seconds from the token endpoint's ``expires_in``: AmoCRM's default
    (a day) when it is missing, no positive number (found by review: a ValueError escaped
    the refresh, and the issued pair was lost with it) or longer than MAX_LIFETIME_S (found by
    review: 1e13 s is out of timestamp's range, so the pair could never be stored, and 1e12 s
    stored a time no client can read back)."""
    if isinstance(expires_in, bool):  # JSON true is no number of seconds
        return 86400.0
    try:
        seconds = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):  # an integer past float's range (found by review)
        return 86400.0
    return seconds if math.isfinite(seconds) and MIN_LIFETIME_S < seconds <= MAX_LIFETIME_S else 86400.0


def _text(value: object) -> str | None:
    """A token from the token endpoint's answer: a non-empty string, else None (found by
    review: an empty refresh token was stored over the working one, a number as its digits)."""
    return value if isinstance(value, str) and value else None


# AmoCRM's access tokens live a day; anything past a year is no lifetime this code can trust,
# and one within the margin a token is refreshed ahead of its end would be refreshed before
# every call (each refresh rotates the pair: another chance to lose it)
MAX_LIFETIME_S = 366 * 86400.0
MIN_LIFETIME_S = EXPIRY_MARGIN_S
# stored for a refresh answer that had a refresh token and no access token: expired at once
NO_ACCESS_TOKEN = "(none: the refresh answer had no access token)"
