"""AmoCRM lead sync: one unified lead -> an AmoCRM contact and lead.

Reads the lead at send time (fresh data; merged leads are skipped), finds or creates the
contact (by phone, then e-mail), records the contact id at once so a retry reuses it,
creates or updates the lead in the pipeline and marks the traffic_lead synced.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from .providers.amocrm import AmoCrmClient
from .providers.base import Delivery, PermanentError


def sync_lead(conn: psycopg.Connection, client: AmoCrmClient, payload: dict[str, Any]) -> Delivery:
    lead_id = payload.get("lead_id")
    if not lead_id:
        raise PermanentError("sync_lead job without lead_id")
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "select id, name, email, phone, phone_normalized, source, first_utm_source,"
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
    email = lead["email"]
    name = lead["name"] or phone or email or f"Лид {lead['id']}"
    contact_id = lead["amocrm_contact_id"]
    if contact_id is None:
        for query in (phone, email):
            if query and contact_id is None:
                contact_id = client.find_contact(str(query))
    contact_id = client.upsert_contact(contact_id, name, phone, email)
    conn.execute("select public.record_amocrm_sync(%s, %s, null)", (lead["id"], contact_id))
    tags = [t for t in (lead["source"], lead["first_utm_source"]) if t]
    amo_lead = client.upsert_lead(
        lead["amocrm_lead_id"], f"{name} — {lead['source'] or 'лид'}", contact_id, tags
    )
    conn.execute("select public.record_amocrm_sync(%s, %s, %s)", (lead["id"], contact_id, amo_lead))
    return Delivery(provider_ref=str(amo_lead))
