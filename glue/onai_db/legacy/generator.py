"""Realistic messy Landing data at any scale, deterministic for a seed.

The same person shows up across landing_leads, lead_tracking and unified_lead_tracking
with differently formatted phones, email case and whitespace, the ``proftest``
spelling, missing UTMs, Cyrillic and Kazakh names (some mojibake), NULLs, exact
duplicate rows, journey rows pointing at missing leads and notifications.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

FIRST_NAMES = (
    "Айгерим", "Нурлан", "Әлібек", "Жанар", "Ерлан", "Дәулет", "Гүлнар", "Асель", "Мұхтар",
    "Ольга", "Сергей", "Анна", "Дмитрий", "Madina", "Arman", "Dana", "Қуаныш", "Өмірзақ",
)  # fmt: skip
LAST_NAMES = (
    "Ким", "Сейтқали", "Нұрланова", "Иванов", "Петрова", "Жұмабаев", "Омарова", "Tokayev",
    "Abenova", "Серікбай", "Ахметов", "Бекова",
)  # fmt: skip
LATIN = {
    "Айгерим": "aigerim", "Нурлан": "nurlan", "Әлібек": "alibek", "Жанар": "zhanar", "Ерлан": "erlan",
    "Дәулет": "daulet", "Гүлнар": "gulnar", "Асель": "asel", "Мұхтар": "mukhtar", "Ольга": "olga",
    "Сергей": "sergey", "Анна": "anna", "Дмитрий": "dmitry", "Madina": "madina", "Arman": "arman",
    "Dana": "dana", "Қуаныш": "kuanysh", "Өмірзақ": "omirzak",
}  # fmt: skip
DOMAINS = ("mail.ru", "gmail.com", "inbox.kz", "yandex.kz", "bk.ru")
PREFIXES = ("700", "701", "702", "705", "707", "708", "747", "771", "775", "776", "777", "778")
SOURCES = (
    "proftest",
    "proftest",
    "ProfTest",
    "profitest",
    "proftest ",
    "expresscourse",
    "Express Course",
    None,
)
# utm_source values as landing pages sent them (case and whitespace vary); the demo
# seeding gives the first five an owner, "google_brand" and "partner_x" have none.
UTM_SOURCES = (
    "fb_arystan", "FB_Arystan", "ig_arystan", "fb_muha", " fb_muha", "fb_kenesary", "fb_traft4",
    "google_brand", "partner_x",
)  # fmt: skip
UTM_MEDIUMS = ("cpc", "paid_social", "stories", "reels")
CAMPAIGNS = ("proftest_autumn", "expresscourse_kz", "retarget_warm", "lookalike_1pct")
STAGES = (
    "proftest_submitted", "expresscourse_clicked", "expresscourse_submitted", "payment_initiated",
    "payment_succeeded", "payment_failed",
)  # fmt: skip
MESSY_STAGES = ("ExpressCourse-Clicked", " proftest_submitted ", "Payment Succeeded", "???")
ABSURD_PHONES = ("звонить вечером", "123", "+7 (000) 000", "8-800-SHOP", "0", "+1 555 01 ext 7")
INVALID_EMAILS = ("n/a", "aigerim@", "test@@mail.ru", "нет почты", "user@localhost")
BASE_TIME = datetime(2025, 1, 6, tzinfo=UTC)

LEAD_TABLES = ("landing_leads", "unified_lead_tracking", "lead_tracking")
TABLE_WEIGHTS = (0.5, 0.4, 0.1)


@dataclass
class GeneratedCounts:
    """Rows written per legacy table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def lead_rows(self) -> int:
        return sum(self.rows.get(t, 0) for t in LEAD_TABLES)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1251: how a broken form handler stored some names."""
    return text.encode("utf-8").decode("cp1251", errors="replace")


def _phone_variant(rng: random.Random, digits: str) -> str:
    """``digits`` = 10 national digits; one of the formats landing pages produced."""
    a, b, c, d = digits[:3], digits[3:6], digits[6:8], digits[8:]
    return rng.choice(
        (
            f"+7{digits}",
            f"8{digits}",
            f"+7 ({a}) {b}-{c}-{d}",
            f"8 {a} {b} {c} {d}",
            f"7{digits}",
            f"{digits}",
            f" +7-{a}-{b}-{c}{d} ",
        )
    )


def _email_variant(rng: random.Random, email: str) -> str:
    roll = rng.random()
    if roll < 0.2:
        return email.upper()
    if roll < 0.35:
        return email[0].upper() + email[1:]
    if roll < 0.45:
        return f" {email} "
    return email


@dataclass
class _Person:
    name: str | None
    phone_digits: str | None
    email: str | None
    mode: str  # both | phone | email | split | none


def _person(rng: random.Random, n: int) -> _Person:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    roll = rng.random()
    mode = (
        "both" if roll < 0.85 else "phone" if roll < 0.90 else "email" if roll < 0.94 else "split"
        if roll < 0.98 else "none"
    )  # fmt: skip
    digits = rng.choice(PREFIXES) + f"{n % 10_000_000:07d}"
    email = f"{LATIN.get(first, 'lead')}.{n}@{rng.choice(DOMAINS)}"
    return _Person(name=f"{first} {last}", phone_digits=digits, email=email, mode=mode)


def _lead_values(rng: random.Random, p: _Person, index: int) -> tuple[str | None, str | None, str | None]:
    """(name, email, phone) of one row of person ``p`` (``index``-th row)."""
    name: str | None = p.name
    roll = rng.random()
    if roll < 0.06:
        name = None
    elif roll < 0.09 and name:
        name = _mojibake(name)
    elif roll < 0.12 and name:
        name = name.upper()
    phone = _phone_variant(rng, p.phone_digits) if p.phone_digits else None
    email = _email_variant(rng, p.email) if p.email else None
    if p.mode == "phone":
        email = None if rng.random() < 0.7 else rng.choice(INVALID_EMAILS)
    elif p.mode == "email":
        phone = None if rng.random() < 0.7 else rng.choice(ABSURD_PHONES)
    elif p.mode == "split":
        if index % 3 == 0:
            email = None
        elif index % 3 == 1:
            phone = None
    elif p.mode == "none":
        phone = rng.choice((*ABSURD_PHONES, None))
        email = rng.choice((*INVALID_EMAILS, None))
        if rng.random() < 0.3:
            name = None
    return name, email, phone


def _utm(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.35:
        return {}
    utm = {"utm_source": rng.choice(UTM_SOURCES), "utm_medium": rng.choice(UTM_MEDIUMS)}
    if rng.random() < 0.8:
        utm["utm_campaign"] = rng.choice(CAMPAIGNS)
    if rng.random() < 0.3:
        utm["utm_content"] = f"ad_{rng.randint(1, 40)}"
    return utm


def _ts(t: datetime) -> str:
    return t.isoformat()


class _Writer:
    """COPY writers for the five legacy tables on one connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.counts: dict[str, int] = {}

    def copy(self, table: str, columns: tuple[str, ...], rows: Iterator[tuple[object, ...]]) -> None:
        cols = ", ".join(columns)
        with self.conn.cursor() as cur, cur.copy(f"copy public.{table} ({cols}) from stdin") as cp:
            n = 0
            for row in rows:
                cp.write_row(row)
                n += 1
        self.counts[table] = self.counts.get(table, 0) + n


def generate(
    conn: psycopg.Connection,
    rows: int,
    seed: int = 1,
    journey_per_lead_row: float = 3.0,
    notifications_per_lead_row: float = 0.1,
) -> GeneratedCounts:
    """Fill the (empty) legacy tables: ``rows`` lead rows over the three lead tables,
    about ``journey_per_lead_row`` journey rows and ``notifications_per_lead_row``
    notifications per lead row. Deterministic for (rows, seed, ratios)."""
    rng = random.Random(seed)
    landing: list[tuple[object, ...]] = []
    tracking: list[tuple[object, ...]] = []
    unified: list[tuple[object, ...]] = []
    landing_meta: list[tuple[str, datetime, str | None]] = []  # id, created_at, email
    made = 0
    n = 0
    tracking_id = 0
    while made < rows:
        n += 1
        p = _person(rng, n)
        k = 1 if rng.random() < 0.72 else 2 if rng.random() < 0.57 else 3
        k = min(k, rows - made)
        t = BASE_TIME + timedelta(seconds=rng.randrange(0, 300 * 86400), microseconds=rng.randrange(10**6))
        start = rng.choices(range(3), TABLE_WEIGHTS)[0]
        landing_id: str | None = None
        for i in range(k):
            table = LEAD_TABLES[(start + i) % 3] if k > 1 else LEAD_TABLES[start]
            name, email, phone = _lead_values(rng, p, i)
            source = rng.choice(SOURCES)
            utm = _utm(rng)
            copies = 2 if rng.random() < 0.03 else 1
            for _ in range(copies):
                if made >= rows:
                    break
                made += 1
                if table == "landing_leads":
                    lid = _uuid(rng)
                    landing_id = landing_id or lid
                    meta = {**utm, "page": rng.choice(("/proftest", "/express", "/"))}
                    synced = rng.random() < 0.4
                    landing.append(
                        (
                            lid, email, name, phone, None, source, json.dumps(meta, ensure_ascii=False),
                            rng.randint(10**7, 10**8) if synced else None,
                            rng.randint(10**7, 10**8) if synced else None,
                            synced, rng.random() < 0.5, rng.random() < 0.3, rng.randint(0, 5),
                            _ts(t), _ts(t),
                        )
                    )  # fmt: skip
                    landing_meta.append((lid, t, email))
                elif table == "lead_tracking":
                    tracking_id += 1
                    tracking.append(
                        (
                            tracking_id, name, email, phone, source, utm.get("utm_source"),
                            utm.get("utm_medium"), utm.get("utm_campaign"), utm.get("utm_content"),
                            utm.get("utm_term"), "https://onai.academy/proftest", _ts(t),
                        )
                    )  # fmt: skip
                else:
                    unified.append(
                        (
                            _uuid(rng), landing_id, name, email, phone, source, utm.get("utm_source"),
                            utm.get("utm_medium"), utm.get("utm_campaign"), utm.get("utm_content"),
                            utm.get("utm_term"), rng.choice(STAGES), "{}", _ts(t), _ts(t),
                        )
                    )  # fmt: skip
            t += timedelta(hours=rng.randint(1, 240), microseconds=rng.randrange(10**6))

    writer = _Writer(conn)
    with conn.transaction():
        writer.copy(
            "landing_leads",
            (
                "id", "email", "name", "phone", "phone_normalized", "source", "metadata", "amocrm_lead_id",
                "amocrm_contact_id", "amocrm_synced", "email_sent", "sms_sent", "click_count", "created_at",
                "updated_at",
            ),
            iter(landing),
        )  # fmt: skip
        writer.copy(
            "lead_tracking",
            (
                "id", "name", "email", "phone", "source", "utm_source", "utm_medium", "utm_campaign",
                "utm_content", "utm_term", "page_url", "created_at",
            ),
            iter(tracking),
        )  # fmt: skip
        writer.copy(
            "unified_lead_tracking",
            (
                "id", "landing_lead_id", "full_name", "email", "phone", "source", "utm_source", "utm_medium",
                "utm_campaign", "utm_content", "utm_term", "current_stage", "metadata", "created_at",
                "updated_at",
            ),
            iter(unified),
        )  # fmt: skip
        conn.execute("select setval('public.lead_tracking_id_seq', greatest(%s, 1))", (tracking_id,))
        journey_total = round(journey_per_lead_row * rows)
        writer.copy(
            "lead_journey",
            ("id", "lead_id", "stage", "source", "metadata", "created_at"),
            _journey(rng, landing_meta, journey_total),
        )
        writer.copy(
            "scheduled_notifications",
            (
                "id", "lead_id", "channel", "recipient", "template", "payload", "scheduled_for", "status",
                "sent_at", "created_at",
            ),
            _notifications(rng, landing_meta, round(notifications_per_lead_row * rows)),
        )  # fmt: skip
        conn.execute("select setval('public.lead_journey_id_seq', greatest(%s, 1))", (journey_total + 1,))
        # Landing goes on scheduling after the fixture is made: its next id must be free (the
        # first insert without an id failed with 23505; found by the generator mutation review)
        notifications = writer.counts.get("scheduled_notifications", 0)
        conn.execute(
            "select setval('public.scheduled_notifications_id_seq', %s, %s)",
            (max(notifications, 1), notifications > 0),
        )
    return GeneratedCounts(rows=dict(writer.counts))


def _journey(
    rng: random.Random, landing: list[tuple[str, datetime, str | None]], total: int
) -> Iterator[tuple[object, ...]]:
    if not landing:
        return
    jid = 0
    while jid < total:
        roll = rng.random()
        lead_id: str | None
        if roll < 0.01:
            lead_id, t = _uuid(rng), BASE_TIME + timedelta(days=rng.randint(0, 300))  # orphan
        elif roll < 0.013:
            lead_id, t = None, BASE_TIME + timedelta(days=rng.randint(0, 300))
        else:
            lead_id, t, _email = landing[rng.randrange(len(landing))]
        t = t + timedelta(minutes=rng.randint(1, 20000), microseconds=rng.randrange(10**6))
        stage = rng.choice(MESSY_STAGES) if rng.random() < 0.01 else rng.choice(STAGES)
        source = rng.choice(SOURCES)
        meta = json.dumps(_utm(rng) if rng.random() < 0.3 else {}, ensure_ascii=False)
        copies = 2 if rng.random() < 0.01 else 1
        for _ in range(copies):
            if jid >= total:
                break
            jid += 1
            yield (jid, lead_id, stage, source, meta, _ts(t))


def _notifications(
    rng: random.Random, landing: list[tuple[str, datetime, str | None]], total: int
) -> Iterator[tuple[object, ...]]:
    if not landing:
        return
    for nid in range(1, total + 1):
        if nid % 25 == 0:  # 4 % point at a lead that does not exist
            lead_id, t, email = _uuid(rng), BASE_TIME, None
        else:
            lead_id, t, email = landing[rng.randrange(len(landing))]
        channel = "email" if rng.random() < 0.7 else "sms"
        status = rng.choice(("pending", "sent", "sent", "failed", "cancelled"))
        when = t + timedelta(days=rng.randint(1, 14))
        payload = json.dumps({"template_vars": {"course": "expresscourse"}}, ensure_ascii=False)
        yield (
            nid, lead_id, channel, email if channel == "email" else None,
            rng.choice(("expresscourse_reminder", "proftest_result", "payment_reminder")),
            payload, _ts(when), status, _ts(when) if status == "sent" else None, _ts(t),
        )  # fmt: skip
