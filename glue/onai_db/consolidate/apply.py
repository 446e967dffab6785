"""Apply the identity plan one committed batch at a time, then the journey rows and
notifications that were not reached through a batch, all set-based."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from .connect import UTM_FIELDS
from .load import EXTRA_TOO_BIG, blank_null, journey_row_md5, json_object, lead_row_md5, parse_json


def _live_of(alias: str) -> str:
    """The live lead of a traffic_leads row (itself unless merged)."""
    return f"case when {alias}.merged_into is null then {alias}.id else private.live_lead({alias}.id) end"


def _first(expr: str, where: str, order: str = "b.fill_rank") -> str:
    return f"(array_agg({expr} order by {order}) filter (where {where}))[1]"


def _stage_reason(raw: str) -> str:
    """The quarantine reason for an invalid stage (the value cut to 80 characters)."""
    return f"'stage ' || coalesce(quote_literal(left({raw}, 80)), 'NULL') || ' is not a valid stage name'"


def _journey_utm(meta: str, c: str) -> str:
    """A UTM field of a legacy journey row, from its metadata (trimmed, '' is NULL)."""
    return blank_null(f"{meta} ->> '{c}'")


def _journey_problem(stage_ok: str, stage_raw: str, source: str, meta: str, utm_of: str | None = None) -> str:
    """Why a legacy journey row cannot be written (NULL when it can): the target's checks,
    tested before the insert so one bad row is quarantined instead of failing the run.
    ``utm_of``: a row alias whose utm_* columns hold the extracted values (else extracted)."""
    utm = ", ".join(
        f"length({utm_of}.{c})" if utm_of else f"length({_journey_utm(meta, c)})" for c in UTM_FIELDS
    )
    return f"""(case
    when not {stage_ok} then {_stage_reason(stage_raw)}
    when length({source}) > 100 then 'source longer than 100 characters'
    when greatest({utm}) > 255 then 'utm value longer than 255 characters'
    when pg_column_size({meta}) > 65536 then 'metadata larger than 64 KiB'
  end)"""


# what a touch records for each UTM field (a placeholder is no value, an event whose source is
# one is no touch: find_or_create_unified_lead's rule); the journey rows keep the staged values
_TOUCH_COLUMNS = ",\n    ".join(f"private.utm_touch_value(s.{c}) as touch_{c}" for c in UTM_FIELDS)

BATCH_ROWS = f"""
create temp table b on commit drop as
select x.*, x.touch_utm_source is not null as has_utm
from (
  select s.*, p.comp, p.comp_size, p.fill_rank, p.creator, p.existing_leads,
    {_TOUCH_COLUMNS},
    -- the columns the import does not know, under the row's own keys, when both fit the limit
    -- (else the row's own; the backup keeps the rest)
    case when s.extra is not null and not {EXTRA_TOO_BIG} then s.extra || s.metadata else s.metadata end
      as lead_metadata
  from private.consolidation_stage_plan as p
  join private.consolidation_stage_leads as s on s.ord = p.ord
  where p.batch_no = %(batch)s
) as x
"""

# ties on the time go by fill precedence, as a merge keeps the winner's touch on a tie and a
# later call keeps the touch it finds (the one-by-one replay)
_first_utm = ",\n  ".join(
    _first(f"b.touch_{c}", "b.has_utm", "b.created_at, b.fill_rank") + f" as first_{c}" for c in UTM_FIELDS
)
_last_utm = ",\n  ".join(
    _first(f"b.touch_{c}", "b.has_utm", "b.created_at desc, b.ord desc") + f" as last_{c}" for c in UTM_FIELDS
)
_single_first_utm = ",\n  ".join(f"case when b.has_utm then b.touch_{c} end as first_{c}" for c in UTM_FIELDS)
_single_last_utm = ",\n  ".join(f"case when b.has_utm then b.touch_{c} end as last_{c}" for c in UTM_FIELDS)

# persons with one row (most of them) need no aggregation: the row's values are the lead's
BATCH_COMPS = f"""
create temp table bc on commit drop as
select
  b.comp,
  {blank_null("b.name")} as name,
  {blank_null("b.phone")} as phone,
  {blank_null("b.email")} as email,
  b.source_canonical as source,
  b.source as source_raw,
  b.amocrm_lead_id, b.amocrm_contact_id, b.amocrm_synced, b.email_sent, b.sms_sent, b.click_count,
  {_single_first_utm},
  case when b.has_utm then b.created_at end as first_touch_at,
  {_single_last_utm},
  case when b.has_utm then b.created_at end as last_touch_at,
  b.created_at,
  b.src as legacy_source_table,
  b.legacy_id,
  b.lead_metadata as metadata,
  b.email_clicked, b.email_clicked_at, b.sms_clicked, b.sms_clicked_at
from b
where b.comp_size = 1
union all
select
  b.comp,
  {_first(blank_null("b.name"), blank_null("b.name") + " is not null")},
  coalesce({_first(blank_null("b.phone"), "b.phone_n is not null")},
    {_first(blank_null("b.phone"), blank_null("b.phone") + " is not null")}),
  coalesce({_first(blank_null("b.email"), "b.email_n is not null")},
    {_first(blank_null("b.email"), blank_null("b.email") + " is not null")}),
  {_first("b.source_canonical", "b.source_canonical is not null")},
  {_first("b.source", "b.source is not null")},
  {_first("b.amocrm_lead_id", "b.amocrm_lead_id is not null")},
  {_first("b.amocrm_contact_id", "b.amocrm_contact_id is not null")},
  bool_or(b.amocrm_synced),
  bool_or(b.email_sent),
  bool_or(b.sms_sent),
  least(sum(b.click_count), 2147483647)::integer,
  {_first_utm},
  min(b.created_at) filter (where b.has_utm),
  {_last_utm},
  max(b.created_at) filter (where b.has_utm),
  min(b.created_at),
  (array_agg(b.src order by b.fill_rank))[1],
  (array_agg(b.legacy_id order by b.fill_rank))[1],
  null::jsonb,
  bool_or(b.email_clicked), min(b.email_clicked_at), bool_or(b.sms_clicked), min(b.sms_clicked_at)
from b
where b.comp_size > 1
group by b.comp
"""

# a person's metadata: every row's keys, first seen wins; when that union passes the 64 KiB
# limit, the first row's own (the other rows keep theirs in the backup and the journey input)
BATCH_META = """
create temp table bm on commit drop as
select u.comp, case when pg_column_size(u.metadata) <= 65536 then u.metadata else f.metadata end as metadata
from (
  select x.comp, jsonb_object_agg(x.key, x.value) as metadata
  from (
    select distinct on (b.comp, e.key) b.comp, e.key, e.value
    from b cross join lateral jsonb_each(b.lead_metadata) as e
    where b.comp_size > 1
    order by b.comp, e.key, b.fill_rank
  ) as x
  group by x.comp
) as u
join (
  select distinct on (b.comp) b.comp, b.lead_metadata as metadata from b where b.comp_size > 1
  order by b.comp, b.fill_rank
) as f on f.comp = u.comp
"""

# After earlier runs a lead new in Landing can hold journey rows an earlier run imported under
# another lead (re-linked in Landing since): those keep their imported link (counted by the
# verification), so they are neither inserted again nor add their stage (``{imported}``).
_BATCH_JOURNEY = f"""
create temp table bj on commit drop as
-- (offset 0: each level's values are computed once per row, not again where they are used)
select x.*, {_journey_problem("x.stage_ok", "x.stage_raw", "x.source_canonical", "x.metadata", "x")} as problem
from (
  select y.*, {", ".join(_journey_utm("y.metadata", c) + " as " + c for c in UTM_FIELDS)}
  from (
    select b.comp, j.id as legacy_id, j.lead_id, j.stage as stage_raw, st.stage, coalesce(st.ok, false) as stage_ok,
      j.source, so.canonical as source_canonical, {json_object("p.mj")} as metadata,
      coalesce(j.created_at::timestamptz, 'epoch') as occurred_at, {journey_row_md5("j")} as row_md5
    from b
    join private.consolidation_raw_lead_journey as j on j.lead_id = b.legacy_id
    cross join lateral (select {parse_json("j.metadata")} as mj) as p
    left join private.consolidation_map_stage as st on st.raw = j.stage
    left join private.consolidation_map_source as so on so.raw = j.source
    where b.src = 'landing_leads'{{imported}}
    offset 0
  ) as y
  offset 0
) as x
"""
BATCH_JOURNEY = _BATCH_JOURNEY.replace("{imported}", "")
BATCH_JOURNEY_AFTER_EARLIER_RUNS = _BATCH_JOURNEY.replace(
    "{imported}",
    """
      and not exists (
        select from public.traffic_lead_journey as t where t.event_key = 'legacy:lead_journey:' || j.id
      )""",
)

BATCH_STAGES = """
create temp table bs on commit drop as
select x.comp, array_agg(distinct x.stage order by x.stage) as stages
from (
  select b.comp, 'lead_captured' as stage from b
  union all
  select bj.comp, bj.stage from bj where bj.problem is null
) as x
group by x.comp
"""

BATCH_LEADS = """
create temp table bl on commit drop as
select c.comp, coalesce(x.winner, gen_random_uuid()) as lead_id, x.winner is not null as existed
from bc as c
left join (
  select g.comp, private.consolidation_merge_group(g.existing_leads, '{"by": "onai-db consolidate"}'::jsonb) as winner
  from (select distinct b.comp, b.existing_leads from b where b.existing_leads is not null) as g
) as x on x.comp = c.comp
"""

BATCH_NEW_LEADS = """
create temp table bl on commit drop as
select c.comp, gen_random_uuid() as lead_id, false as existed from bc as c
"""

_utm_cols = ", ".join(
    [f"first_{c}" for c in UTM_FIELDS] + ["first_touch_at"] + [f"last_{c}" for c in UTM_FIELDS]
)
INSERT_LEADS = f"""
insert into public.traffic_leads (
  id, name, email, phone, source, source_raw, metadata, amocrm_lead_id, amocrm_contact_id, amocrm_synced,
  email_sent, sms_sent, click_count, {_utm_cols}, last_touch_at, stages, legacy_source_table, legacy_id, created_at,
  email_clicked, email_clicked_at, sms_clicked, sms_clicked_at
)
select
  l.lead_id, c.name, c.email, c.phone, c.source, c.source_raw, coalesce(c.metadata, m.metadata, '{{}}'::jsonb),
  c.amocrm_lead_id, c.amocrm_contact_id, c.amocrm_synced, c.email_sent, c.sms_sent, c.click_count,
  {", ".join("c." + x.strip() for x in _utm_cols.split(","))}, c.last_touch_at,
  coalesce(s.stages, '{{lead_captured}}'), c.legacy_source_table, c.legacy_id, c.created_at,
  c.email_clicked, c.email_clicked_at, c.sms_clicked, c.sms_clicked_at
from bc as c
join bl as l on l.comp = c.comp
left join bm as m on m.comp = c.comp
left join bs as s on s.comp = c.comp
where not l.existed
order by c.comp
"""

# the live leads whose own phone or email is one of row b's identifiers
_LIVE_HOLDERS = f"""
  select {_live_of("t")} as lead_id
  from public.traffic_leads as t
  where t.merged_into is null and (t.phone_normalized = b.phone_n or t.email_normalized = b.email_n)
"""

# Traffic stays live during a run: a lead created by find_or_create_unified_lead after the
# identity plan can hold an identifier the plan took for new, and the insert above skips
# that person (the live-identifier unique indexes). Such persons are joined to the live
# leads now holding their identifiers (merged into the oldest when several), and filled
# like any existing lead.
BATCH_SKIPPED = f"""
create temp table bx on commit drop as
select l.comp, array_agg(distinct o.lead_id) as owners
from bl as l
join b on b.comp = l.comp
cross join lateral ({_LIVE_HOLDERS}  union
  select private.live_lead(i.lead_id)
  from private.traffic_lead_identifiers as i
  where (i.kind = 'phone' and i.value = b.phone_n) or (i.kind = 'email' and i.value = b.email_n)
) as o
where not l.existed and not exists (select 1 from public.traffic_leads as t where t.id = l.lead_id)
group by l.comp
"""

# The same for a person with existing leads whose phone or email a concurrent writer put on
# another live lead: filling it in would break the live-identifier unique index, so that lead
# is merged with theirs first (into the oldest).
BATCH_REJOIN = f"""
create temp table bx on commit drop as
select l.comp, array_agg(distinct o.lead_id) || l.lead_id as owners
from bl as l
join b on b.comp = l.comp
cross join lateral ({_LIVE_HOLDERS}) as o
where l.existed and o.lead_id <> l.lead_id
group by l.comp, l.lead_id
"""

BATCH_JOIN_SKIPPED = """
update bl
set lead_id = private.consolidation_merge_group(x.owners, '{"by": "onai-db consolidate", "concurrent": true}'::jsonb),
  existed = true
from bx as x
where bl.comp = x.comp
"""

_fill_first = ",\n  ".join(
    f"first_{c} = case when c.first_touch_at < coalesce(t.first_touch_at, 'infinity') then c.first_{c} "
    f"else t.first_{c} end"
    for c in UTM_FIELDS
)
_fill_last = ",\n  ".join(
    f"last_{c} = case when c.last_touch_at >= coalesce(t.last_touch_at, '-infinity') then c.last_{c} "
    f"else t.last_{c} end"
    for c in UTM_FIELDS
)
UPDATE_EXISTING = f"""
update public.traffic_leads as t
set
  name = coalesce(t.name, c.name),
  phone = case when t.phone_normalized is null and public.normalize_phone(c.phone) is not null then c.phone
    else coalesce(t.phone, c.phone) end,
  email = case when t.email_normalized is null and private.normalize_email(c.email) is not null then c.email
    else coalesce(t.email, c.email) end,
  source = coalesce(t.source, c.source),
  source_raw = coalesce(t.source_raw, c.source_raw),
  metadata = case when pg_column_size(coalesce(c.metadata, m.metadata, '{{}}'::jsonb) || t.metadata) <= 65536
    then coalesce(c.metadata, m.metadata, '{{}}'::jsonb) || t.metadata else t.metadata end,
  amocrm_lead_id = coalesce(t.amocrm_lead_id, c.amocrm_lead_id),
  amocrm_contact_id = coalesce(t.amocrm_contact_id, c.amocrm_contact_id),
  amocrm_synced = t.amocrm_synced or c.amocrm_synced,
  email_sent = t.email_sent or c.email_sent,
  sms_sent = t.sms_sent or c.sms_sent,
  click_count = least(t.click_count::bigint + c.click_count, 2147483647)::integer,
  email_clicked = t.email_clicked or c.email_clicked,
  email_clicked_at = least(t.email_clicked_at, c.email_clicked_at),
  sms_clicked = t.sms_clicked or c.sms_clicked,
  sms_clicked_at = least(t.sms_clicked_at, c.sms_clicked_at),
  {_fill_first},
  first_touch_at = least(t.first_touch_at, c.first_touch_at),
  {_fill_last},
  last_touch_at = greatest(t.last_touch_at, c.last_touch_at),
  legacy_source_table = coalesce(t.legacy_source_table, c.legacy_source_table),
  legacy_id = coalesce(t.legacy_id, c.legacy_id),
  created_at = least(t.created_at, c.created_at)
from bc as c
join bl as l on l.comp = c.comp
left join bm as m on m.comp = c.comp
where l.existed and t.id = l.lead_id
"""

# The batch's identifiers; returns (the person's lead, the live lead) for every identifier
# another live lead already holds: a concurrent writer used it during the run (the statement
# reads the table as it was before its own inserts). Those pairs are merged at the end of the
# batch, once its journey is in place.
INSERT_IDENTIFIERS = f"""
with wanted as (
  select distinct on (x.kind, x.value) x.kind, x.value, x.lead_id
  from (
    select 'phone' as kind, b.phone_n as value, l.lead_id, b.fill_rank
    from b join bl as l on l.comp = b.comp where b.phone_n is not null
    union all
    select 'email', b.email_n, l.lead_id, b.fill_rank
    from b join bl as l on l.comp = b.comp where b.email_n is not null
  ) as x
  order by x.kind, x.value, x.fill_rank
),

added as (
  insert into private.traffic_lead_identifiers (kind, value, lead_id)
  select w.kind, w.value, w.lead_id from wanted as w
  on conflict (kind, value) do nothing
  returning kind, value
)

select distinct w.lead_id, {_live_of("t")} as holder
from wanted as w
left join added as a on a.kind = w.kind and a.value = w.value
join private.traffic_lead_identifiers as i on i.kind = w.kind and i.value = w.value
join public.traffic_leads as t on t.id = i.lead_id
where a.kind is null and {_live_of("t")} <> w.lead_id
"""

INSERT_MAP = """
insert into private.legacy_lead_map (source_table, legacy_id, lead_id, outcome, run_id)
select b.src, b.legacy_id, l.lead_id, case when b.creator and not l.existed then 'migrated' else 'merged' end,
  %(run)s
from b join bl as l on l.comp = b.comp
"""

# One statement for the batch's whole journey: the lead_captured event of every legacy lead
# row (in replay order) followed by the batch's lead_journey rows. One pass means one run of
# the statement-level stage trigger and one foreign-key/index maintenance pass per batch
# instead of two.
INSERT_JOURNEY = f"""
insert into public.traffic_lead_journey (
  lead_id, stage, source, utm_source, utm_medium, utm_campaign, utm_content, utm_term,
  input, metadata, event_key, occurred_at, legacy_source_table, legacy_id
)
select * from (
  select
    l.lead_id, 'lead_captured', b.source_canonical,
    b.utm_source, b.utm_medium, b.utm_campaign, b.utm_content, b.utm_term,
    jsonb_strip_nulls(jsonb_build_object(
      'name', b.name, 'email', b.email, 'phone', b.phone, 'source', b.source, 'row_md5', {lead_row_md5("b")}
    )),
    b.lead_metadata, 'legacy:' || b.src || ':' || b.legacy_id, b.created_at, b.src, b.legacy_id
  from b join bl as l on l.comp = b.comp
  order by b.ord
) as captured
union all
select
  l.lead_id, j.stage, j.source_canonical,
  j.utm_source, j.utm_medium, j.utm_campaign, j.utm_content, j.utm_term,
  jsonb_strip_nulls(jsonb_build_object(
    'source', j.source, 'stage', j.stage_raw, 'lead_id', j.lead_id, 'row_md5', j.row_md5
  )),
  j.metadata, 'legacy:lead_journey:' || j.legacy_id, j.occurred_at, 'lead_journey', j.legacy_id
from bj as j join bl as l on l.comp = j.comp
where j.problem is null
"""

# A row quarantined by an earlier run gets the reason this run finds (its lead may have arrived,
# or been quarantined itself, since) and its values as Landing has them now; unchanged rows are
# not written. RETURNING tells new rows (xmax 0) from updated ones.
QUARANTINE_CONFLICT = """
on conflict (source_table, legacy_id) do update
set reason = excluded.reason, row_data = excluded.row_data, run_id = excluded.run_id
where (private.consolidation_quarantine.reason, private.consolidation_quarantine.row_data)
  is distinct from (excluded.reason, excluded.row_data)
returning xmax = 0
"""


def quarantine(conn: psycopg.Connection, sql: str, params: dict[str, Any]) -> tuple[int, int]:
    """Runs a quarantine insert; returns (rows newly quarantined, rows whose reason or values changed)."""
    rows = conn.execute(sql, params).fetchall()
    new = sum(1 for (inserted,) in rows if inserted)
    return new, len(rows) - new


QUARANTINE_BATCH_JOURNEY = (
    """
insert into private.consolidation_quarantine (source_table, legacy_id, reason, row_data, run_id)
select 'lead_journey', j.legacy_id, j.problem, to_jsonb(r), %(run)s
from bj as j
join private.consolidation_raw_lead_journey as r on r.id = j.legacy_id
where j.problem is not null
"""
    + QUARANTINE_CONFLICT
)

QUARANTINE_LEADS = (
    """
insert into private.consolidation_quarantine (source_table, legacy_id, reason, row_data, run_id)
select s.src, s.legacy_id, s.problem, to_jsonb(s) - 'ord' - 'phone_n' - 'email_n' - 'problem', %(run)s
from private.consolidation_stage_leads as s
where s.problem is not null
  -- a row imported before and changed in Landing since is not quarantined now (imported
  -- rows are not re-applied; docs/consolidation.md, "Re-runs")
  and not exists (
    select 1 from private.legacy_lead_map as m where m.source_table = s.src and m.legacy_id = s.legacy_id
  )
"""
    + QUARANTINE_CONFLICT
)

_live = _live_of("ml")

REMAINING_JOURNEY = f"""
insert into public.traffic_lead_journey (
  lead_id, stage, source, utm_source, utm_medium, utm_campaign, utm_content, utm_term,
  input, metadata, event_key, occurred_at, legacy_source_table, legacy_id
)
select
  {_live}, x.stage, so.canonical,
  {", ".join(_journey_utm("x.meta", c) for c in UTM_FIELDS)},
  jsonb_strip_nulls(jsonb_build_object(
    'source', x.source, 'stage', x.stage_raw, 'lead_id', x.lead_id, 'row_md5', x.row_md5
  )),
  x.meta, 'legacy:lead_journey:' || x.id, x.occurred_at, 'lead_journey', x.id
from (
  select j.id, j.lead_id, j.source, j.stage as stage_raw, st.stage, coalesce(st.ok, false) as stage_ok,
    {json_object(parse_json("j.metadata"))} as meta, coalesce(j.created_at::timestamptz, 'epoch') as occurred_at,
    {journey_row_md5("j")} as row_md5
  from private.consolidation_raw_lead_journey as j
  left join private.consolidation_map_stage as st on st.raw = j.stage
  where not exists (
      select 1 from public.traffic_lead_journey as t where t.event_key = 'legacy:lead_journey:' || j.id
    )
) as x
join private.legacy_lead_map as m on m.source_table = 'landing_leads' and m.legacy_id = x.lead_id
join public.traffic_leads as ml on ml.id = m.lead_id
left join private.consolidation_map_source as so on so.raw = x.source
where {_journey_problem("x.stage_ok", "x.stage_raw", "so.canonical", "x.meta")} is null
  and m.run_id <> %(run)s
on conflict (event_key) do nothing
"""

QUARANTINE_JOURNEY = (
    f"""
insert into private.consolidation_quarantine (source_table, legacy_id, reason, row_data, run_id)
select 'lead_journey', j.id,
  left(case
    when j.lead_id is null then 'lead_id is null'
    when lq.reason is not null then 'its lead landing_leads ' || left(j.lead_id, 100) || ' is quarantined: ' || lq.reason
    when not exists (select 1 from private.consolidation_raw_landing_leads as l where l.id = j.lead_id)
      then 'lead ' || left(j.lead_id, 100) || ' not found in landing_leads'
    else coalesce(
      {_journey_problem("coalesce(st.ok, false)", "j.stage", "so.canonical", json_object(parse_json("j.metadata")))},
      'lead ' || left(j.lead_id, 100) || ' was not imported'
    )
  end, 200),
  to_jsonb(j), %(run)s
from private.consolidation_raw_lead_journey as j
left join private.consolidation_map_stage as st on st.raw = j.stage
left join private.consolidation_map_source as so on so.raw = j.source
left join private.consolidation_quarantine as lq on lq.source_table = 'landing_leads' and lq.legacy_id = j.lead_id
left join private.legacy_lead_map as m on m.source_table = 'landing_leads' and m.legacy_id = j.lead_id
where (m.legacy_id is null or m.run_id <> %(run)s)
  and not exists (
    select 1 from public.traffic_lead_journey as t where t.event_key = 'legacy:lead_journey:' || j.id
  )
"""
    + QUARANTINE_CONFLICT
)

IMPORT_NOTIFICATIONS = f"""
insert into private.legacy_scheduled_notifications (
  legacy_id, lead_id, delivery_channel, recipient, template_name, payload, scheduled_for, status, sent_at,
  created_at, run_id
)
select n.id, {_live}, n.channel, n.recipient, n.template, {json_object(parse_json("n.payload"))}, n.scheduled_for::timestamptz,
  n.status, n.sent_at::timestamptz, n.created_at::timestamptz, %(run)s
from private.consolidation_raw_scheduled_notifications as n
join private.legacy_lead_map as m on m.source_table = 'landing_leads' and m.legacy_id = n.lead_id
join public.traffic_leads as ml on ml.id = m.lead_id
on conflict (legacy_id) do nothing
"""

# Landing goes on sending until the switch: an imported notification's delivery state follows
# Landing's on every run, so the pending ones the operator reviews after the cut-over are the
# ones Landing never sent (its other columns stay as imported, like any imported row)
REFRESH_NOTIFICATION_DELIVERY = """
update private.legacy_scheduled_notifications as s
set status = n.status, sent_at = n.sent_at::timestamptz, scheduled_for = n.scheduled_for::timestamptz
from private.consolidation_raw_scheduled_notifications as n
where n.id = s.legacy_id
  and (s.status, s.sent_at, s.scheduled_for)
    is distinct from (n.status, n.sent_at::timestamptz, n.scheduled_for::timestamptz)
"""

QUARANTINE_NOTIFICATIONS = (
    """
insert into private.consolidation_quarantine (source_table, legacy_id, reason, row_data, run_id)
select 'scheduled_notifications', n.id,
  left(case
    when n.lead_id is null then 'lead_id is null'
    when lq.reason is not null then 'its lead landing_leads ' || left(n.lead_id, 100) || ' is quarantined: ' || lq.reason
    when not exists (select 1 from private.consolidation_raw_landing_leads as l where l.id = n.lead_id)
      then 'lead ' || left(n.lead_id, 100) || ' not found in landing_leads'
    else 'lead ' || left(n.lead_id, 100) || ' was not imported'
  end, 200),
  to_jsonb(n), %(run)s
from private.consolidation_raw_scheduled_notifications as n
left join private.consolidation_quarantine as lq on lq.source_table = 'landing_leads' and lq.legacy_id = n.lead_id
where not exists (select 1 from private.legacy_scheduled_notifications as s where s.legacy_id = n.id)
"""
    + QUARANTINE_CONFLICT
)


@dataclass
class BatchResult:
    rows: int = 0
    leads_created: int = 0
    leads_filled: int = 0
    journey_rows: int = 0
    quarantined: int = 0
    quarantine_updated: int = 0  # rows quarantined earlier whose reason or values changed
    leads_joined: int = 0  # persons whose lead a concurrent writer created during the run


def apply_batch(conn: psycopg.Connection, run_id: int, batch: int) -> BatchResult:
    """One batch of whole persons; the caller commits (with the ledger row)."""
    p = {"batch": batch, "run": run_id}
    r = BatchResult()
    r.rows = conn.execute(BATCH_ROWS, p).rowcount
    # temp tables have no statistics until analyzed: without them the joins below go quadratic
    conn.execute("analyze b")
    # a first run pays no lookup per journey row: only earlier runs' batches can have imported them
    earlier = conn.execute(
        "select exists (select from private.consolidation_batches where run_id <> %s)", (run_id,)
    ).fetchone()
    journey = BATCH_JOURNEY_AFTER_EARLIER_RUNS if earlier and earlier[0] else BATCH_JOURNEY
    for stmt, name in ((BATCH_COMPS, "bc"), (BATCH_META, "bm"), (journey, "bj"), (BATCH_STAGES, "bs")):
        conn.execute(stmt)
        conn.execute(f"analyze {name}")
    existing = conn.execute("select count(*) from b where existing_leads is not null").fetchone()
    has_existing = bool(existing and existing[0])
    conn.execute(BATCH_LEADS if has_existing else BATCH_NEW_LEADS)
    conn.execute("analyze bl")
    try:
        with conn.transaction():  # a savepoint: the usual case pays no conflict check
            r.leads_created = conn.execute(INSERT_LEADS).rowcount
        skipped = False
    except psycopg.errors.UniqueViolation:  # persons a concurrent writer got to first
        r.leads_created = conn.execute(INSERT_LEADS + "on conflict do nothing").rowcount
        skipped = True
    if skipped:
        conn.execute(BATCH_SKIPPED)
        r.leads_joined = conn.execute(BATCH_JOIN_SKIPPED).rowcount
        has_existing = True
    if has_existing:
        try:
            with conn.transaction():
                r.leads_filled = conn.execute(UPDATE_EXISTING).rowcount
        except psycopg.errors.UniqueViolation:  # a concurrent writer took a phone or email to fill
            conn.execute("drop table if exists bx")
            conn.execute(BATCH_REJOIN)
            r.leads_joined += conn.execute(BATCH_JOIN_SKIPPED).rowcount
            r.leads_filled = conn.execute(UPDATE_EXISTING).rowcount
    held_elsewhere = conn.execute(INSERT_IDENTIFIERS).fetchall()
    conn.execute(INSERT_MAP, p)
    r.journey_rows = conn.execute(INSERT_JOURNEY).rowcount
    r.quarantined, r.quarantine_updated = quarantine(conn, QUARANTINE_BATCH_JOURNEY, p)
    r.leads_joined += merge_pairs(conn, held_elsewhere)
    conn.execute(
        "insert into private.consolidation_batches (run_id, phase, batch_no, rows_in, leads_created, journey_rows)"
        " values (%s, 'leads', %s, %s, %s, %s)",
        (run_id, batch, r.rows, r.leads_created, r.journey_rows),
    )
    conn.execute(
        "drop table if exists b, bc, bm, bj, bs, bl, bx"
    )  # (a dry run never commits, so on commit drop never fires)
    return r


def quarantine_lead_rows(conn: psycopg.Connection, run_id: int) -> tuple[int, int]:
    """(lead rows newly quarantined, quarantined rows whose reason or values changed)"""
    return quarantine(conn, QUARANTINE_LEADS, {"run": run_id})


# rows quarantined by an earlier run and imported since (their lead arrived in Landing and
# the same command ran again) leave the quarantine, so no row is counted twice
RESOLVED_QUARANTINE = """
delete from private.consolidation_quarantine as q
where
  (q.source_table = 'lead_journey' and exists (
    select 1 from public.traffic_lead_journey as t where t.event_key = 'legacy:lead_journey:' || q.legacy_id
  ))
  or (q.source_table = 'scheduled_notifications' and exists (
    select 1 from private.legacy_scheduled_notifications as n where n.legacy_id = q.legacy_id
  ))
  or (q.source_table in ('landing_leads', 'lead_tracking', 'unified_lead_tracking') and exists (
    select 1 from private.legacy_lead_map as m where m.source_table = q.source_table and m.legacy_id = q.legacy_id
  ))
"""


# After the batches: a lead that another writer created while a batch was claiming the same
# person's identifier (it has no legacy provenance) can be live beside the person's lead, its
# own phone or email held by that lead. Such leads are merged into the older one, as the next
# find_or_create_unified_lead call would. No time window: a run that resumes an interrupted
# one checks what happened during the interrupted one too.
# A live lead whose own phone or email is registered to another live lead, one of the two
# holding Landing data: one person split by a writer racing a batch. A writer's identity
# insert gives way to an identifier a concurrent batch claims (`on conflict do nothing`), so
# the writer's lead stays beside the batch's. Either side may hold the Landing data: a later
# batch (or the resume of a killed run) may adopt the writer's lead for another Landing
# person, and the check once looked only at a lead without Landing data held by one with it,
# so such a pair stayed split and verification said OK (found by review). Two leads without
# Landing data are left alone: such a pair comes from an edit (a phone changed to another
# lead's old number), which find_or_create_unified_lead does not merge either. One join per
# kind; the OR of both kinds in one join cannot be hashed.
SPLIT_PERSONS = f"""
select distinct x.id, {_live_of("h")}
from (
  select t.id, t.legacy_source_table, i.lead_id
  from public.traffic_leads as t
  join private.traffic_lead_identifiers as i on i.kind = 'phone' and i.value = t.phone_normalized
  where t.merged_into is null and i.lead_id <> t.id
  union all
  select t.id, t.legacy_source_table, i.lead_id
  from public.traffic_leads as t
  join private.traffic_lead_identifiers as i on i.kind = 'email' and i.value = t.email_normalized
  where t.merged_into is null and i.lead_id <> t.id
) as x
join public.traffic_leads as h on h.id = x.lead_id
where
  {_live_of("h")} <> x.id
  and (x.legacy_source_table is not null or h.legacy_source_table is not null)
"""


def merge_pairs(conn: psycopg.Connection, pairs: list[tuple[object, object]]) -> int:
    """Merges each pair of one person's leads into the older (when both are still live)."""
    merged = 0
    for a, b in pairs:
        row = conn.execute(
            "select count(*) filter (where merged_into is null) from public.traffic_leads"
            " where id in (private.live_lead(%s), private.live_lead(%s))",
            (a, b),
        ).fetchone()
        if row and row[0] == 2:
            conn.execute(
                "select private.consolidation_merge_group(array[private.live_lead(%s), private.live_lead(%s)],"
                """ '{"by": "onai-db consolidate", "concurrent": true}'::jsonb)""",
                (a, b),
            )
            merged += 1
    return merged


def reconcile_split_persons(conn: psycopg.Connection) -> int:
    """Merges leads other writers created during a run beside a person's lead."""
    return merge_pairs(conn, conn.execute(SPLIT_PERSONS).fetchall())


def release_resolved_quarantine(conn: psycopg.Connection) -> int:
    """Quarantined rows that a later run imported; returns how many left the quarantine."""
    return conn.execute(RESOLVED_QUARANTINE).rowcount


def finish_journey(conn: psycopg.Connection, run_id: int) -> tuple[int, int, int]:
    """(journey rows imported, rows newly quarantined, quarantined rows whose reason or values
    changed) for rows not reached through a batch."""
    conn.execute(
        "analyze private.legacy_lead_map, private.consolidation_quarantine, public.traffic_lead_journey"
    )
    imported = conn.execute(REMAINING_JOURNEY, {"run": run_id}).rowcount
    quarantined, updated = quarantine(conn, QUARANTINE_JOURNEY, {"run": run_id})
    return imported, quarantined, updated


def refresh_notification_delivery(conn: psycopg.Connection) -> int:
    """Imported notifications whose status, sent_at or scheduled_for changed in Landing since:
    updated to Landing's values; returns how many."""
    return conn.execute(REFRESH_NOTIFICATION_DELIVERY).rowcount


def import_notifications(conn: psycopg.Connection, run_id: int) -> tuple[int, int, int]:
    """(notifications imported, newly quarantined, quarantined ones whose reason or values changed)"""
    imported = conn.execute(IMPORT_NOTIFICATIONS, {"run": run_id}).rowcount
    quarantined, updated = quarantine(conn, QUARANTINE_NOTIFICATIONS, {"run": run_id})
    return imported, quarantined, updated
