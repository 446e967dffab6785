"""Verification: every source row accounted for, journey links, UTM attribution, data quality."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from .apply import _live_of
from .connect import UTM_FIELDS
from .load import EXTRA_TOO_BIG, blank_null, journey_row_md5, json_object, lead_row_md5, parse_json, raw_table

LEAD_TABLES = ("landing_leads", "lead_tracking", "unified_lead_tracking")


@dataclass
class TableCheck:
    table: str
    source_rows: int
    migrated: int  # imported as itself (created the surviving lead / the journey row / the notification)
    merged: int  # folded into a lead created by another row (or an existing lead)
    quarantined: int
    unaccounted: int
    target_rows: int  # what it became in the target (distinct live leads, journey rows, notifications)
    target_table: str
    # imported by an earlier run and deleted in Landing since: kept in Traffic, not in source_rows
    deleted_in_landing: int = 0
    # imported by an earlier run and changed in Landing since: kept as imported, not re-applied
    # (compared by the fingerprint stored at import; rows imported before fingerprints: never)
    changed_in_landing: int = 0
    # quarantined by an earlier run and deleted in Landing since: kept in the quarantine, not in
    # source_rows nor in quarantined (nor among the report's quarantine reasons)
    quarantined_deleted_in_landing: int = 0


@dataclass
class Report:
    """Outcome of a consolidation run (also stored in private.consolidation_runs.report)."""

    run_id: int
    dry_run: bool
    resumed_from: int | None
    backup_dir: str | None
    fingerprint: str
    tables: list[TableCheck] = field(default_factory=list)
    changes: dict[str, int] = field(default_factory=dict)
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    journey_links_checked: int = 0
    journey_links_broken: int = 0
    journey_links_changed_in_landing: int = 0  # lead_id edited in Landing after the row's import
    leads_consolidated: int = 0
    leads_with_utm: int = 0
    leads_attributed: int = 0
    data_quality: dict[str, int] = field(default_factory=dict)
    # source columns the import does not read, with a value in some rows: "table.column" ->
    # {"rows_with_value": n, "kept_in": "traffic_leads.metadata" or "backup only"}
    extra_columns: dict[str, dict[str, object]] = field(default_factory=dict)
    # imported notifications still pending in the future: nothing sends them (operator review)
    notifications_pending: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def unaccounted(self) -> int:
        return sum(t.unaccounted for t in self.tables)

    @property
    def ok(self) -> bool:
        return self.unaccounted == 0 and self.journey_links_broken == 0

    @property
    def changed(self) -> bool:
        return any(self.changes.values())

    @property
    def attribution_coverage(self) -> float:
        return self.leads_attributed / self.leads_consolidated if self.leads_consolidated else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(
            ok=self.ok,
            unaccounted=self.unaccounted,
            changed=self.changed,
            attribution_coverage=round(self.attribution_coverage, 4),
        )
        return out


def _lead_table_check(conn: psycopg.Connection, table: str) -> TableCheck:
    row = conn.execute(
        f"""
        select count(*),
          count(*) filter (where m.outcome = 'migrated'),
          count(*) filter (where m.outcome = 'merged'),
          count(*) filter (where m.legacy_id is null and q.legacy_id is not null),
          count(*) filter (where m.legacy_id is null and q.legacy_id is null),
          count(distinct coalesce(tl.merged_into, tl.id))  -- live leads (a merge is one hop)
        from private.consolidation_raw_{table} as r
        left join private.legacy_lead_map as m on m.source_table = %(t)s and m.legacy_id = r.id
        left join public.traffic_leads as tl on tl.id = m.lead_id
        left join private.consolidation_quarantine as q on q.source_table = %(t)s and q.legacy_id = r.id
        """,
        {"t": table},
    ).fetchone()
    assert row is not None
    return TableCheck(table, row[0], row[1], row[2], row[3], row[4], row[5], "traffic_leads")


# what earlier runs imported from each legacy table: relation (alias i) and filter; the legacy
# id is i.legacy_id everywhere
_IMPORTED = {
    "lead_journey": ("public.traffic_lead_journey", "i.legacy_source_table = 'lead_journey'"),
    "scheduled_notifications": ("private.legacy_scheduled_notifications", "true"),
}


# whether quarantine row q is still a row of Landing (this run's copy)
_IN_SOURCE = (
    "("
    + " or ".join(
        f"(q.source_table = '{t}' and exists (select from private.{raw_table(t)} as r where r.id = q.legacy_id))"
        for t in (*LEAD_TABLES, "lead_journey", "scheduled_notifications")
    )
    + ")"
)


def _deleted_in_landing(conn: psycopg.Connection, table: str) -> int:
    """Rows imported by earlier runs whose legacy id is no longer in Landing (this run's copy)."""
    relation, where = _IMPORTED.get(table, ("private.legacy_lead_map", f"i.source_table = '{table}'"))
    row = conn.execute(
        f"select count(*) from {relation} as i where {where} and not exists"
        f" (select from private.consolidation_raw_{table} as r where r.id = i.legacy_id)"
    ).fetchone()
    return int(row[0]) if row else 0


def _quarantined_deleted_in_landing(conn: psycopg.Connection) -> dict[str, int]:
    """Quarantined rows whose legacy id is no longer in Landing (this run's copy), per table."""
    return dict(
        conn.execute(
            f"select q.source_table, count(*) from private.consolidation_quarantine as q"
            f" where not {_IN_SOURCE} group by 1"
        ).fetchall()
    )


def _changed_in_landing(conn: psycopg.Connection, run_id: int) -> dict[str, int]:
    """Rows imported by earlier runs whose values in Landing (this run's copy) differ from
    the fingerprint stored at their import, per table. Only rows of earlier runs can differ,
    so a first run skips the comparison (a pass over every imported row)."""
    earlier = conn.execute(
        "select exists (select from private.legacy_lead_map as m where m.run_id <> %s)", (run_id,)
    ).fetchone()
    if not (earlier and earlier[0]):
        return {}
    changed: dict[str, int] = dict(
        conn.execute(
            f"""
            select s.src, count(*)
            from private.consolidation_stage_leads as s
            join public.traffic_lead_journey as t on t.event_key = 'legacy:' || s.src || ':' || s.legacy_id
            where t.input ? 'row_md5' and t.input ->> 'row_md5' <> {lead_row_md5("s")}
            group by s.src
            """
        ).fetchall()
    )
    journey = conn.execute(
        f"""
        select count(*)
        from private.consolidation_raw_lead_journey as r
        join public.traffic_lead_journey as t on t.legacy_source_table = 'lead_journey' and t.legacy_id = r.id
        where t.input ? 'row_md5' and t.input ->> 'row_md5' <> {journey_row_md5("r")}
        """
    ).fetchone()
    changed["lead_journey"] = journey[0] if journey else 0
    # a notification keeps its imported values (its delivery state excepted, which every run
    # brings up to Landing's): counted when Landing changed them since, or its lead, i.e. the
    # Landing lead it names now is another person than the one it was imported for
    notifications = conn.execute(
        f"""
        select count(*)
        from private.consolidation_raw_scheduled_notifications as n
        join private.legacy_scheduled_notifications as s on s.legacy_id = n.id
        join public.traffic_leads as sl on sl.id = s.lead_id
        left join private.legacy_lead_map as m on m.source_table = 'landing_leads' and m.legacy_id = n.lead_id
        left join public.traffic_leads as ml on ml.id = m.lead_id
        where s.run_id <> %s
          and (
            (s.delivery_channel, s.recipient, s.template_name, s.payload, s.created_at)
              is distinct from (n.channel, n.recipient, n.template, {json_object(parse_json("n.payload"))},
                n.created_at::timestamptz)
            or {_live_of("ml")} is distinct from {_live_of("sl")}
          )
        """,
        (run_id,),
    ).fetchone()
    changed["scheduled_notifications"] = notifications[0] if notifications else 0
    return changed


def verify(conn: psycopg.Connection, report: Report) -> Report:
    report.tables = [_lead_table_check(conn, t) for t in LEAD_TABLES]
    j = conn.execute(
        """
        select count(*),
          count(*) filter (where t.id is not null),
          count(*) filter (where t.id is null and q.legacy_id is not null),
          count(*) filter (where t.id is null and q.legacy_id is null)
        from private.consolidation_raw_lead_journey as r
        left join public.traffic_lead_journey as t on t.legacy_source_table = 'lead_journey' and t.legacy_id = r.id
        left join private.consolidation_quarantine as q on q.source_table = 'lead_journey' and q.legacy_id = r.id
        """
    ).fetchone()
    assert j is not None
    report.tables.append(TableCheck("lead_journey", j[0], j[1], 0, j[2], j[3], j[1], "traffic_lead_journey"))
    n = conn.execute(
        """
        select count(*),
          count(*) filter (where s.legacy_id is not null),
          count(*) filter (where s.legacy_id is null and q.legacy_id is not null),
          count(*) filter (where s.legacy_id is null and q.legacy_id is null)
        from private.consolidation_raw_scheduled_notifications as r
        left join private.legacy_scheduled_notifications as s on s.legacy_id = r.id
        left join private.consolidation_quarantine as q
          on q.source_table = 'scheduled_notifications' and q.legacy_id = r.id
        """
    ).fetchone()
    assert n is not None
    report.tables.append(
        TableCheck(
            "scheduled_notifications", n[0], n[1], 0, n[2], n[3], n[1], "legacy_scheduled_notifications"
        )
    )
    stale = _quarantined_deleted_in_landing(conn)
    for check in report.tables:
        check.deleted_in_landing = _deleted_in_landing(conn, check.table)
        check.quarantined_deleted_in_landing = stale.get(check.table, 0)
    links = conn.execute(
        """
        select count(*),
          count(*) filter (where t.lead_id is distinct from
            case when ml.merged_into is null then ml.id else private.live_lead(ml.id) end),
          count(*) filter (where t.input ? 'lead_id' and t.input ->> 'lead_id' is distinct from r.lead_id::text)
        from private.consolidation_raw_lead_journey as r
        join public.traffic_lead_journey as t on t.legacy_source_table = 'lead_journey' and t.legacy_id = r.id
        -- the Landing lead the row had when it was imported (imported rows are not re-applied)
        left join private.legacy_lead_map as m
          on m.source_table = 'landing_leads' and m.legacy_id = coalesce(t.input ->> 'lead_id', r.lead_id::text)
        left join public.traffic_leads as ml on ml.id = m.lead_id
        """
    ).fetchone()
    assert links is not None
    report.journey_links_checked, report.journey_links_broken, report.journey_links_changed_in_landing = links
    changed = _changed_in_landing(conn, report.run_id)
    for check in report.tables:
        check.changed_in_landing = changed.get(check.table, 0)
    cov = conn.execute(
        """
        with leads as (
          select distinct case when l.merged_into is null then l.id else private.live_lead(l.id) end as id
          from private.legacy_lead_map as m join public.traffic_leads as l on l.id = m.lead_id
        )
        select count(*), count(*) filter (where t.first_utm_source is not null),
          count(*) filter (where u.user_id is not null)
        from leads
        join public.traffic_leads as t on t.id = leads.id
        left join public.traffic_user_utm_sources as u on u.utm_source = t.utm_source
        """
    ).fetchone()
    assert cov is not None
    report.leads_consolidated, report.leads_with_utm, report.leads_attributed = cov
    report.quarantine_reasons = dict(
        conn.execute(
            f"""
            select q.source_table || ': ' || regexp_replace(q.reason, %s, '\\1 <id> \\3'), count(*)
            from private.consolidation_quarantine as q
            where {_IN_SOURCE}
            group by 1 order by 2 desc
            """,
            (REASON_ID,),
        ).fetchall()
    )
    dq = conn.execute(
        rf"""
        select
          count(*) filter (where {blank_null("s.email")} is not null and s.email_n is null),
          count(*) filter (where {blank_null("s.phone")} is not null and s.phone_n is null),
          count(*) filter (where s.name ~ '([РС][^ ]){{3}}' or s.name ~ '{LATIN_MOJIBAKE}'
            or s.name like '%' || chr(65533) || '%'),
          count(*) filter (where s.source is not null and private.canonical_lead_source(s.source) is distinct from s.source),
          count(*) filter (where s.phone_n is null and s.email_n is null and s.problem is null),
          count(*) filter (where s.problem is null and ({_ANY_UTM_PLACEHOLDER})),
          count(*) filter (where s.problem is null and {EXTRA_TOO_BIG})
        from private.consolidation_stage_leads as s
        """
    ).fetchone()
    assert dq is not None
    pending = conn.execute(
        "select count(*) from private.legacy_scheduled_notifications"
        " where status = 'pending' and scheduled_for > pg_catalog.now()"
    ).fetchone()
    report.notifications_pending = pending[0] if pending else 0
    times = conn.execute(TIMES_SQL).fetchone()
    assert times is not None
    report.data_quality = {
        "invalid_emails_kept_raw": dq[0],
        "unusable_phones_kept_raw": dq[1],
        "mis_encoded_names_kept_raw": dq[2],
        "source_spellings_canonicalized": dq[3],
        "rows_without_identifier_flagged": dq[4],
        "placeholder_utm_values_kept_raw": dq[5],
        "rows_whose_other_columns_stay_in_the_backup_for_size": dq[6],
        "rows_without_time_dated_1970": times[0],
        "implausible_times_kept": times[1],
    }
    return report


# a lead row with a UTM placeholder ('undefined', an unexpanded '{{campaign.name}}', ...): the
# lead's touch takes it as no value, its journey row keeps it
_ANY_UTM_PLACEHOLDER = " or ".join(
    f"(s.{c} is not null and private.utm_touch_value(s.{c}) is null)" for c in UTM_FIELDS
)


# Cyrillic UTF-8 read as Latin-1 or cp1252: each letter's lead byte D0-D3 is one of Ð Ñ Ò Ó,
# its continuation byte (80-BF) a Latin-1 control or symbol or one of cp1252's 80-9F
# characters; two such pairs in a row (UTF-8 read as cp1251, the usual case, is the pattern
# of Р/С pairs beside it)
LATIN_MOJIBAKE = (
    r"([ÐÑÒÓ][\u0080-\u00BF\u0152\u0153\u0160\u0161\u0178\u017D\u017E\u0192\u02C6\u02DC"
    r"\u2013\u2014\u2018-\u201E\u2020-\u2022\u2026\u2030\u2039\u203A\u20AC\u2122]){2}"
)


# the legacy lead id in a quarantine reason, whatever its form (uuid, number, free text), so
# that the report groups reasons, not rows
REASON_ID = (
    r"^(its lead landing_leads|lead) (.*?) (is quarantined: .*|not found in landing_leads|was not imported)$"
)


# legacy rows' times (leads and journey): a missing created_at is imported as 1970-01-01 (the
# lead and its events must have some time), and one before 1970 or more than a day after the
# run (the range find_or_create_unified_lead accepts; 'infinity' included) is kept as it was;
# both are counted so that an operator knows how many dates are placeholders or typos
_LEGACY_TIMES = " union all ".join(
    f"select created_at from private.{raw_table(table)}" for table in (*LEAD_TABLES, "lead_journey")
)
# (ISO text in UTC, as the backup writes it, compares like the time for four-digit years: only
# the texts outside the plausible range as text are cast, the rest never needs it)
TIMES_SQL = f"""
select count(*) filter (where t.created_at is null),
  count(*) filter (where
    (t.created_at < '1970' collate "C"
      or t.created_at > (select pg_catalog.to_char(pg_catalog.now() + interval '1 day', 'YYYY-MM-DD')) collate "C")
    and (t.created_at::timestamptz < '1970-01-01 00:00:00+00'
      or t.created_at::timestamptz > pg_catalog.now() + interval '1 day'))
from ({_LEGACY_TIMES}) as t
"""
