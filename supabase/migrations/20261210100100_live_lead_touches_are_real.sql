-- A live lead's first and last touch are real touches: repaired, then kept so.
--
-- Issue 3, items 4 and 7 (found by review of 20261209100100):
-- 1. 20261209100100 offered a merged lead's first touch only as a first touch and its last
--    only as a last: a merged lead whose first touch was a placeholder and last touch real
--    (or the reverse) gave the live lead nothing there, so a real touch was lost from
--    attribution, or the live lead kept a first touch and no last one;
-- 2. a lead the service role inserted with a placeholder utm_source ('undefined',
--    '{campaign}', private.utm_touch_value) kept it, and a merge took it as the earlier
--    first touch (private.merge_leads compares times): the lead could never be attributed,
--    and a later real touch became its last touch only. find_or_create_unified_lead never
--    stores a placeholder; a direct write could.
-- Every affected live lead (a stored source that private.utm_touch_value would not store,
-- or a lead merged into it, through chains, holding a real touch earlier than its first or
-- later than its last) recomputes its touches from every real touch it has: its own two,
-- both touches of each lead merged into it, and the events of its journey that name a real
-- source, as 20261208100200 took them, but only rows find_or_create_unified_lead or onai-db
-- consolidate wrote (a row the service role wrote directly, input '{}', adds stages only).
-- The first touch is the earliest, the last the latest; ties keep the live lead's own. The
-- five fields of a touch come from one event, a placeholder among them becomes NULL, blanks
-- around them go. A lead with no real touch keeps none. Merged leads keep what they hold.
-- Then the constraint traffic_leads_touch_sources_are_real refuses (23514) a live lead whose
-- first or last utm_source is a placeholder or has blanks around it, so a merge can no
-- longer take one. The lead statistics follow through their trigger. Writes to traffic_leads
-- wait while this runs (the constraint reads every live lead once, a few seconds per
-- million), so none slips in between the repair and the constraint: the CLI runs the file
-- in one transaction, and LOCK TABLE is taken in a DO block because the CLI sends each
-- statement on its own (a bare LOCK TABLE is refused outside an explicit transaction block).

do $$
begin
  lock table public.traffic_leads in share row exclusive mode;
end;
$$;

with merged as (
  select
    private.live_lead(m.id) as lead_id,
    m.id,
    m.first_touch_at,
    private.utm_touch_value(m.first_utm_source) as first_source,
    m.last_touch_at,
    private.utm_touch_value(m.last_utm_source) as last_source
  from public.traffic_leads as m
  where m.merged_into is not null and (m.first_utm_source is not null or m.last_utm_source is not null)
),

merged_touches as (
  select
    g.lead_id,
    pg_catalog.min(g.first_touch_at) filter (where g.first_source is not null) as first_at,
    pg_catalog.max(g.last_touch_at) filter (where g.last_source is not null) as last_at,
    pg_catalog.min(g.last_touch_at) filter (where g.last_source is not null) as earliest_last_at,
    pg_catalog.max(g.first_touch_at) filter (where g.first_source is not null) as latest_first_at
  from merged as g
  group by g.lead_id
),

affected as (
  select l.id
  from public.traffic_leads as l
  left join merged_touches as t on l.id = t.lead_id
  where
    l.merged_into is null
    and (
      private.utm_touch_value(l.first_utm_source) is distinct from l.first_utm_source
      or private.utm_touch_value(l.last_utm_source) is distinct from l.last_utm_source
      or least(t.first_at, t.earliest_last_at) < coalesce(l.first_touch_at, 'infinity')
      or (l.first_utm_source is null and coalesce(t.first_at, t.earliest_last_at) is not null)
      or greatest(t.last_at, t.latest_first_at) > coalesce(l.last_touch_at, '-infinity')
      or (l.last_utm_source is null and coalesce(t.last_at, t.latest_first_at) is not null)
    )
),

candidates as (
  -- the live lead's own touches (priority 0: a tie keeps them)
  select
    l.id as lead_id,
    l.first_touch_at as occurred_at,
    0 as priority,
    0::bigint as seq,
    l.id as row_id,
    l.first_utm_source as utm_source,
    l.first_utm_medium as utm_medium,
    l.first_utm_campaign as utm_campaign,
    l.first_utm_content as utm_content,
    l.first_utm_term as utm_term
  from affected as a
  inner join public.traffic_leads as l on a.id = l.id
  where private.utm_touch_value(l.first_utm_source) is not null
  union all
  select
    l.id,
    l.last_touch_at,
    0 as priority,
    1::bigint as seq,
    l.id as row_id,
    l.last_utm_source,
    l.last_utm_medium,
    l.last_utm_campaign,
    l.last_utm_content,
    l.last_utm_term
  from affected as a
  inner join public.traffic_leads as l on a.id = l.id
  where private.utm_touch_value(l.last_utm_source) is not null
  union all
  -- the events of its journey (the merged leads' events were moved to it)
  select
    j.lead_id,
    j.occurred_at,
    1 as priority,
    j.id as seq,
    null::uuid as row_id,
    j.utm_source,
    j.utm_medium,
    j.utm_campaign,
    j.utm_content,
    j.utm_term
  from affected as a
  inner join public.traffic_lead_journey as j on a.id = j.lead_id
  where
    private.utm_touch_value(j.utm_source) is not null
    and j.legacy_source_table is distinct from 'lead_journey'
    and (j.input <> '{}'::jsonb or j.legacy_source_table is not null)
  union all
  -- both touches of every lead merged into it
  select
    g.lead_id,
    m.first_touch_at,
    2 as priority,
    0::bigint as seq,
    m.id as row_id,
    m.first_utm_source,
    m.first_utm_medium,
    m.first_utm_campaign,
    m.first_utm_content,
    m.first_utm_term
  from affected as a
  inner join merged as g on a.id = g.lead_id
  inner join public.traffic_leads as m on g.id = m.id
  where g.first_source is not null
  union all
  select
    g.lead_id,
    m.last_touch_at,
    2 as priority,
    1::bigint as seq,
    m.id as row_id,
    m.last_utm_source,
    m.last_utm_medium,
    m.last_utm_campaign,
    m.last_utm_content,
    m.last_utm_term
  from affected as a
  inner join merged as g on a.id = g.lead_id
  inner join public.traffic_leads as m on g.id = m.id
  where g.last_source is not null
),

ranked as (
  select
    c.lead_id,
    c.occurred_at,
    private.utm_touch_value(c.utm_source) as utm_source,
    private.utm_touch_value(c.utm_medium) as utm_medium,
    private.utm_touch_value(c.utm_campaign) as utm_campaign,
    private.utm_touch_value(c.utm_content) as utm_content,
    private.utm_touch_value(c.utm_term) as utm_term,
    row_number() over (
      partition by c.lead_id order by c.occurred_at asc, c.priority asc, c.seq asc, c.row_id asc
    ) as first_rank,
    row_number() over (
      partition by c.lead_id order by c.occurred_at desc, c.priority asc, c.seq desc, c.row_id desc
    ) as last_rank
  from candidates as c
  where c.occurred_at is not null
)

update public.traffic_leads as l
set
  first_utm_source = f.utm_source,
  first_utm_medium = f.utm_medium,
  first_utm_campaign = f.utm_campaign,
  first_utm_content = f.utm_content,
  first_utm_term = f.utm_term,
  first_touch_at = f.occurred_at,
  last_utm_source = t.utm_source,
  last_utm_medium = t.utm_medium,
  last_utm_campaign = t.utm_campaign,
  last_utm_content = t.utm_content,
  last_utm_term = t.utm_term,
  last_touch_at = t.occurred_at
from affected as a
left join ranked as f on a.id = f.lead_id and f.first_rank = 1
left join ranked as t on a.id = t.lead_id and t.last_rank = 1
where l.id = a.id;

alter table public.traffic_leads
add constraint traffic_leads_touch_sources_are_real check (
  merged_into is not null
  or (
    private.utm_touch_value(first_utm_source) is not distinct from first_utm_source
    and private.utm_touch_value(last_utm_source) is not distinct from last_utm_source
  )
);

comment on constraint traffic_leads_touch_sources_are_real on public.traffic_leads is
'A live lead''s first and last utm_source are real touch values: no placeholder such as '
'undefined or {campaign} and no blanks around them (private.utm_touch_value), as '
'find_or_create_unified_lead stores them; a merge compares the touches'' times only.';
