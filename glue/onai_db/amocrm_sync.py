"""AmoCRM lead sync: one unified lead -> an AmoCRM contact and lead.

Reads the lead at send time (fresh data; merged leads are skipped), finds or creates the
contact (by phone, then e-mail), records the contact id at once so a retry reuses it,
creates or updates the lead in the pipeline and marks the traffic_lead synced. A contact
that existed before the run is asked for its deals first: an open one of ours with the same
name (made by a run killed before it could store it) is reused, not made again.

One worker at a time syncs a lead (a session advisory lock; another gets a short retry), so
a job run twice after a lost lease updates what the first run created. A merge may still
hand the lead another contact and deal while the calls run: the ids stored first win
(``record_amocrm_sync``), the deal goes to the stored contact, and a deal created in vain
is named in the job's log.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row

from .connection import CONNECTION_LOST
from .errors import OnaiDbError
from .providers.amocrm import AmoCrmClient, FoundContact
from .providers.base import Delivery, PermanentError, RateLimitedError, TransientError

# pg_try_advisory_lock(LOCK_CLASS, hashtext(lead id)): "one sync of this lead at a time"
LOCK_CLASS = 1634561892
BUSY_RETRY_SECONDS = 5.0


@contextmanager
def one_at_a_time(conn: psycopg.Connection, key: str, busy: str) -> Iterator[None]:
    """A session advisory lock on ``key`` for the block; when another worker holds it, a
    retry in a few seconds that spends no attempt (``busy`` says why)."""
    row = conn.execute(
        "select pg_catalog.pg_try_advisory_lock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, key)
    ).fetchone()
    if not (row and row[0]):
        raise RateLimitedError(f"amocrm: {busy}", BUSY_RETRY_SECONDS)
    try:
        yield
    finally:
        if not conn.closed and not conn.broken:  # a lost session has released it already
            conn.execute(
                "select pg_catalog.pg_advisory_unlock(%s, pg_catalog.hashtext(%s))", (LOCK_CLASS, key)
            )


def _record(
    conn: psycopg.Connection, lead_id: str, contact_id: int, deal_id: int | None
) -> tuple[int | None, int | None, bool]:
    """Store the ids (only where the lead has none) and read back what the live lead holds:
    its contact, its deal, and whether it is another lead (this one was merged meanwhile)."""
    conn.execute("select public.record_amocrm_sync(%s, %s, %s)", (lead_id, contact_id, deal_id))
    row = conn.execute(
        "select l.amocrm_contact_id, l.amocrm_lead_id, l.id <> %s from public.traffic_leads as l"
        " where l.id = coalesce((select m.merged_into from public.traffic_leads as m where m.id = %s), %s)",
        (lead_id, lead_id, lead_id),
    ).fetchone()
    return (row[0], row[1], bool(row[2])) if row else (contact_id, deal_id, False)


_RECORD_PAUSES = (1.0, 2.0, 4.0)  # seconds between tries on a new connection


def _record_made(
    conn: psycopg.Connection,
    reconnect: Callable[[], psycopg.Connection] | None,
    lead_id: str,
    contact_id: int,
    deal_id: int | None,
) -> tuple[int | None, int | None, bool]:
    """``_record`` of what AmoCRM has just made. The job's connection may have been lost
    during the call (a restart, a terminated backend): the ids are then stored through a new
    one, else the retry made a second deal and the first was lost without a word (found by
    review). If the database stays away, the error names what was made."""
    try:
        return _record(conn, lead_id, contact_id, deal_id)
    except CONNECTION_LOST as lost:
        error: Exception = lost
    for pause in _RECORD_PAUSES if reconnect else ():
        try:
            with reconnect() as fresh:  # type: ignore[misc]
                return _record(fresh, lead_id, contact_id, deal_id)
        except (*CONNECTION_LOST, OnaiDbError) as again:
            error = again
            time.sleep(pause)
    made = f"deal {deal_id} of contact {contact_id}" if deal_id is not None else f"contact {contact_id}"
    raise TransientError(
        f"amocrm: {made} was made for lead {lead_id} but could not be stored (database unreachable:"
        f" {str(error).splitlines()[0] if str(error) else type(error).__name__}); if the retry makes"
        " another, merge them in AmoCRM"
    )


def _deal_names(lead: dict[str, Any], current: str) -> list[str]:
    """Every name a sync of ``lead`` may have given its deal: the contact's name falls back to
    the phone, then the e-mail, and the source to "лид", and intake fills a lead's gaps."""
    who = [lead["name"], lead["phone_normalized"] or lead["phone"], lead["email"], f"Лид {lead['id']}"]
    what = [lead["source"], "лид"]
    names = [current] + [f"{w} — {s}" for w in who if w for s in what if s]
    return list(dict.fromkeys(names))


def sync_lead(
    conn: psycopg.Connection,
    client: AmoCrmClient,
    payload: dict[str, Any],
    reconnect: Callable[[], psycopg.Connection] | None = None,
) -> Delivery:
    lead_id = payload.get("lead_id")
    if not lead_id:
        raise PermanentError("sync_lead job without lead_id")
    with one_at_a_time(conn, str(lead_id), f"lead {lead_id} is being synced by another worker"):
        return _sync(conn, client, str(lead_id), reconnect)


def _sync(
    conn: psycopg.Connection,
    client: AmoCrmClient,
    lead_id: str,
    reconnect: Callable[[], psycopg.Connection] | None = None,
) -> Delivery:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select id, name, email, email_normalized, phone, phone_normalized, source, first_utm_source,"
            " amocrm_lead_id, amocrm_contact_id, amocrm_synced, merged_into"
            " from public.traffic_leads where id = %s",
            (lead_id,),
        )
        lead = cur.fetchone()
    if lead is None:
        return Delivery(skipped=True, note="lead no longer exists")
    if lead["merged_into"] is not None:
        return Delivery(skipped=True, note="lead was merged into another lead")
    phone = lead["phone_normalized"] or lead["phone"]
    # the address as read, like the phone: a merge may keep a pasted 'mailto:a@b.kz.' (found by review)
    email = lead["email_normalized"] or lead["email"]
    name = lead["name"] or phone or email or f"Лид {lead['id']}"
    contact_id = lead["amocrm_contact_id"]
    found: FoundContact | None = None
    if contact_id is None:
        for query in (phone, email):
            if query and found is None:
                found = client.find_contact(str(query), phone, email)
    else:
        found = client.read_contact(contact_id)  # an update must keep what sales added
    contact_id = client.upsert_contact(
        found.id if found else None, name, phone, email, found.fields if found else None
    )
    notes: list[str] = []
    stored_contact, stored_deal, merged = _record_made(conn, reconnect, lead_id, contact_id, None)
    if merged and stored_deal is not None:  # the lead it was merged into has its deal: leave it be
        return Delivery(
            skipped=True, note=f"lead was merged during the sync; the surviving lead has deal {stored_deal}"
        )
    if stored_contact is not None and stored_contact != contact_id:
        notes.append(f"contact {contact_id} made while a merge gave the lead contact {stored_contact}")
        contact_id = stored_contact
    tags = [t for t in (lead["source"], lead["first_utm_source"]) if t]
    deal_name = f"{name} — {lead['source'] or 'лид'}"
    deal = stored_deal or lead["amocrm_lead_id"]
    if deal is None and found is not None and found.id == contact_id:
        # a contact that existed before this run may hold the deal an earlier run made and was
        # killed before storing (found by review: the retry made a second deal)
        # (under any name the lead has given a deal: intake may have filled its name or source
        # since, found by review)
        deal = client.find_open_deal(found.deal_ids, _deal_names(lead, deal_name))
    amo_lead = client.upsert_lead(deal, deal_name, contact_id, tags)
    _, kept, _ = _record_made(conn, reconnect, lead_id, contact_id, amo_lead)
    if kept is not None and kept != amo_lead:
        notes.append(f"deal {amo_lead} made while a merge gave the lead deal {kept}")
        amo_lead = kept
    note = f"amocrm: {'; '.join(notes)}: merge the duplicates in AmoCRM" if notes else None
    return Delivery(provider_ref=str(amo_lead), note=note)
