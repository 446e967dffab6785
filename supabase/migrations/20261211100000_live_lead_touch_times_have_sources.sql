-- A live lead's touch time goes with its touch: repaired, then kept so.
--
-- Issue 3, items 4 and 7 (found by review of 20261210100100): a touch is its utm_source,
-- and find_or_create_unified_lead, private.merge_leads and onai-db consolidate set a touch's
-- time with its source only. A lead the service role wrote with first_touch_at (or
-- last_touch_at) and no utm_source held a touch time without a touch; those three compare
-- times only, so a later real touch never became its first touch, a merge kept the empty
-- one, and the lead could never be attributed. Neither traffic_leads_touch_times_check (a
-- source has its time) nor traffic_leads_touch_sources_are_real (a source is a real value)
-- refused it.
-- Every such live lead recomputes its touches as 20261210100100 does: from its own real
-- touches, both touches of each lead merged into it (through chains, walked down from the
-- live lead, so a cycle among merged leads a direct write made stops nothing), and the
-- events of its journey that name a real source, only rows find_or_create_unified_lead
-- (its input names the person) or onai-db consolidate wrote. The earliest is the first
-- touch, the latest the last; ties keep the live lead's own; a lead with no real touch
-- keeps none. Merged leads keep what they hold. Then traffic_leads_touch_times_have_sources
-- refuses (23514) a live lead whose touch time and utm_source are not both set or both
-- empty.
-- The file takes the lock its ALTER TABLE needs before anything else (found by review:
-- 20261210100100 took a weaker one first, and a find_or_create_unified_lead call that read
-- traffic_leads meanwhile deadlocked with the upgrade, so the push failed). Reads and writes
-- of traffic_leads wait while it runs; the CLI runs the file in one transaction, and LOCK
-- TABLE sits in a DO block because the CLI sends each statement on its own.

do $$
begin
  lock table public.traffic_leads in access exclusive mode;
end;
$$;

with recursive affected as (
  select l.id
  from public.traffic_leads as l
  where
    l.merged_into is null
    and (
      (l.first_touch_at is not null and l.first_utm_source is null)
      or (l.last_touch_at is not null and l.last_utm_source is null)
    )
),

merged (lead_id, id) as (
  select
    a.id as lead_id,
    m.id
  from affected as a
  inner join public.traffic_leads as m on a.id = m.merged_into
  union
  select
    g.lead_id,
    m.id
  from merged as g
  inner join public.traffic_leads as m on g.id = m.merged_into
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
    and (j.input ?| array['name', 'email', 'phone'] or j.legacy_source_table is not null)
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
  from merged as g
  inner join public.traffic_leads as m on g.id = m.id
  where private.utm_touch_value(m.first_utm_source) is not null
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
  from merged as g
  inner join public.traffic_leads as m on g.id = m.id
  where private.utm_touch_value(m.last_utm_source) is not null
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
add constraint traffic_leads_touch_times_have_sources check (
  merged_into is not null
  or (
    (first_touch_at is null) = (first_utm_source is null)
    and (last_touch_at is null) = (last_utm_source is null)
  )
);

comment on constraint traffic_leads_touch_times_have_sources on public.traffic_leads is
'A live lead''s first and last touch times are set exactly when their utm_source is: a touch '
'is its source, and find_or_create_unified_lead and merges compare the times only.';
