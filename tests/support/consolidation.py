"""Consolidation fixtures: fresh target databases, legacy sources, and a person-level
snapshot used to compare two consolidated databases (or one with a replay)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from onai_db.consolidate import ConsolidationOptions, Report, run_consolidation
from onai_db.legacy import create_landing_db
from onai_db.local import LocalStack

# a second checkout's tests (with ONAI_DB_TEST_DB naming a test database of their own) get
# scratch databases of their own too: with fixed names, two checkouts' runs dropped and made
# each other's databases, the template included (found by a mutation review). The prefix is a
# plain identifier of at most 24 characters (a long name is shortened with a hash of it), so
# every scratch name stays distinct and needs no quoting (found by review: names cut to 63
# characters collided, and a '-' broke the tests' ALTER DATABASE)
_NAMESPACE = os.environ.get("ONAI_DB_TEST_DB", "onai_test")


def _prefix(namespace: str) -> str:
    plain = re.sub(r"[^a-z0-9_]", "_", namespace.lower())
    if plain == namespace and len(plain) <= 24:
        return plain
    return f"{plain[:15]}_{hashlib.sha256(namespace.encode()).hexdigest()[:8]}"


def scratch_db(name: str) -> str:
    """The name of a test's scratch database in this checkout's namespace (remembered, so that
    a passing session drops it at the end: ``scratch_databases``)."""
    scratch = name if _NAMESPACE == "onai_test" else f"{_prefix(_NAMESPACE)}_{name}"
    assert len(scratch) <= 63, f"scratch database name {scratch!r} is too long: shorten {name!r}"
    _named.add(scratch)
    return scratch


_named: set[str] = set()


def scratch_databases() -> list[str]:
    """Every scratch database name this session has used."""
    return sorted(_named)


TEMPLATE_DB = scratch_db("onai_cons_tpl")
_template_built: list[bool] = []


def fresh_target(stack: LocalStack, name: str) -> str:
    """A new database with every migration (copied from a template built once)."""
    name = scratch_db(name)
    if not _template_built:
        stack.up(TEMPLATE_DB, fresh=True)
        _template_built.append(True)
    with stack.admin_connect(stack.maintenance_db(name)) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}" template "{TEMPLATE_DB}" owner postgres')
    return stack.database_url(name)


def fresh_source(stack: LocalStack, name: str, rows: int, seed: int) -> str:
    """A generated legacy Landing database (the test's own name: whatever was there goes)."""
    name = scratch_db(name)
    stack.create_database(name, drop=True)  # also a fixture made before fixtures were marked
    url, _counts = create_landing_db(stack, name, rows=rows, seed=seed)
    return url


def consolidate(source: str, target: str, tmp: Path, batch_size: int = 100, **kw: Any) -> Report:
    return run_consolidation(
        ConsolidationOptions(source, target, backup_dir=tmp / "backup", batch_size=batch_size, **kw)
    )


LEAD_VALUES = """
  l.name, l.phone, l.email, l.source, l.source_raw,
  l.first_utm_source, l.first_utm_medium, l.first_utm_campaign, l.first_utm_content, l.first_utm_term,
  l.first_touch_at, l.last_utm_source, l.last_utm_medium, l.last_utm_campaign, l.last_utm_content,
  l.last_utm_term, l.last_touch_at, l.stages, l.created_at, l.metadata,
  (select array_agg(i.kind || ':' || i.value order by i.kind, i.value)
   from private.traffic_lead_identifiers as i where i.lead_id = l.id) as identifiers
"""


def persons_from_map(conn: psycopg.Connection) -> dict[frozenset[str], tuple[Any, ...]]:
    """Consolidated DB: live lead -> (its legacy rows) and values."""
    rows = conn.execute(
        f"""
        with k as (
          select private.live_lead(m.lead_id) as id, array_agg(m.source_table || ':' || m.legacy_id) as keys
          from private.legacy_lead_map as m group by 1
        )
        select k.keys, {LEAD_VALUES} from k join public.traffic_leads as l on l.id = k.id
        """
    ).fetchall()
    return {frozenset(r[0]): tuple(r[1:]) for r in rows}


def persons_from_replay(conn: psycopg.Connection) -> dict[frozenset[str], tuple[Any, ...]]:
    """Replayed DB: live lead -> (legacy rows recorded as its lead_captured events) and values."""
    rows = conn.execute(
        f"""
        with k as (
          select j.lead_id as id, array_agg(substr(j.event_key, 8)) as keys
          from public.traffic_lead_journey as j
          where j.stage = 'lead_captured' and j.event_key like 'legacy:%%'
          group by 1
        )
        select k.keys, {LEAD_VALUES} from k join public.traffic_leads as l on l.id = k.id
        """
    ).fetchall()
    return {frozenset(r[0]): tuple(r[1:]) for r in rows}


def snapshot(conn: psycopg.Connection) -> dict[str, Any]:
    """Everything a consolidation produced, without generated ids and timestamps."""
    persons = persons_from_map(conn)
    key_of = {k: keys for keys in persons for k in keys}
    journey = conn.execute(
        """
        select j.legacy_source_table || ':' || j.legacy_id, j.stage, j.occurred_at, j.source,
          (select array_agg(m.source_table || ':' || m.legacy_id order by m.source_table, m.legacy_id)
           from private.legacy_lead_map as m where m.lead_id = j.lead_id)
        from public.traffic_lead_journey as j where j.legacy_id is not null
        """
    ).fetchall()
    quarantine = conn.execute(
        "select source_table, legacy_id, reason from private.consolidation_quarantine"
    ).fetchall()
    notifications = conn.execute(
        "select n.legacy_id, m.source_table || ':' || m.legacy_id from private.legacy_scheduled_notifications as n "
        "join private.legacy_lead_map as m on m.lead_id = n.lead_id and m.outcome = 'migrated'"
    ).fetchall()
    outcomes = conn.execute("select source_table, legacy_id, outcome from private.legacy_lead_map").fetchall()
    return {
        "persons": persons,
        "journey": {r[0]: r[1:] for r in journey},
        "quarantine": set(quarantine),
        "notifications": {n: key_of.get(k) for n, k in notifications},
        "outcomes": set(outcomes),
        "live_leads": conn.execute(
            "select count(*) from public.traffic_leads where merged_into is null"
        ).fetchone(),
    }


def replay_one_by_one(consolidated: psycopg.Connection, replay: psycopg.Connection) -> int:
    """Replays the staged legacy rows of ``consolidated`` through find_or_create_unified_lead,
    one call per row in created_at order, then the legacy journey, into ``replay``."""
    rows = consolidated.execute(
        "select src, legacy_id, name, email, phone, source, utm_source, utm_medium, utm_campaign, utm_content,"
        " utm_term, metadata, created_at from private.consolidation_stage_leads where problem is null order by ord"
    ).fetchall()
    for src, lid, name, email, phone, source, us, um, uc, uco, ut, meta, at in rows:
        replay.execute(
            "select * from public.find_or_create_unified_lead(p_name => %s, p_email => %s, p_phone => %s,"
            " p_source => %s, p_utm_source => %s, p_utm_medium => %s, p_utm_campaign => %s, p_utm_content => %s,"
            " p_utm_term => %s, p_stage => 'lead_captured', p_metadata => %s, p_event_key => %s,"
            " p_occurred_at => %s)",
            (name, email, phone, source, us, um, uc, uco, ut, psycopg.types.json.Jsonb(meta),
             f"legacy:{src}:{lid}", at),
        )  # fmt: skip
    journey = consolidated.execute(
        "select j.id, j.lead_id, btrim(regexp_replace(lower(btrim(j.stage)), '[^a-z0-9]+', '_', 'g'), '_')"
        " from private.consolidation_raw_lead_journey as j"
    ).fetchall()
    for jid, lead, stage in journey:
        replay.execute(
            "insert into public.traffic_lead_journey (lead_id, stage, event_key)"
            " select private.live_lead(j.lead_id), %s, %s from public.traffic_lead_journey as j"
            " where j.event_key = %s and %s ~ '^[a-z][a-z0-9_]{0,62}$'",
            (stage, f"legacy:lead_journey:{jid}", f"legacy:landing_leads:{lead}", stage),
        )
    return len(rows)


def live_writes_before_the_first_batch(monkeypatch: Any, target: str, phones: Sequence[str]) -> list[str]:
    """Makes the next run call find_or_create_unified_lead (name 'App') once per phone on the
    target right before its first batch, as a live Traffic would; returns the phones written."""
    from onai_db.consolidate import apply

    original = apply.apply_batch
    written: list[str] = []

    def first_batch_after_live_writes(conn: psycopg.Connection, run_id: int, batch: int) -> apply.BatchResult:
        if not written:
            with psycopg.connect(target, autocommit=True) as live:
                for phone in phones:
                    live.execute(
                        "select public.find_or_create_unified_lead(p_phone => %s, p_name => 'App')", (phone,)
                    )
                    written.append(phone)
        return original(conn, run_id, batch)

    monkeypatch.setattr(apply, "apply_batch", first_batch_after_live_writes)
    return written
