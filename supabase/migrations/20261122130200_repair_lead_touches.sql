-- Repair the first and last touch of leads stored under the old UTM rule.
--
-- Issue 3 (attribution): until 20261122130100 a touch whose UTM fields were all empty
-- strings, or that named no utm_source, could become a lead's first or last touch, so the
-- lead's attribution key (utm_source) was '' or NULL although a later touch named a source.
-- For every live lead whose first or last touch names no source, both touches are
-- recomputed from its journey (merged leads' events are on their live lead) by the rule
-- find_or_create_unified_lead now follows: only events naming a utm_source count (not rows
-- imported from Landing's lead_journey, which consolidation never counts either), values
-- trimmed and '' read as NULL; the first touch is the earliest such event (the first
-- recorded on ties), the last touch the latest (the last recorded on ties). A lead with no
-- such event keeps no touch. The lead statistics follow through their trigger.

with touches as (
  select
    j.lead_id,
    j.occurred_at,
    nullif(btrim(j.utm_source), '') as utm_source,
    nullif(btrim(j.utm_medium), '') as utm_medium,
    nullif(btrim(j.utm_campaign), '') as utm_campaign,
    nullif(btrim(j.utm_content), '') as utm_content,
    nullif(btrim(j.utm_term), '') as utm_term,
    row_number() over (partition by j.lead_id order by j.occurred_at, j.id) as first_rank,
    row_number() over (partition by j.lead_id order by j.occurred_at desc, j.id desc) as last_rank
  from public.traffic_lead_journey as j
  inner join public.traffic_leads as l on j.lead_id = l.id
  where
    l.merged_into is null
    and (
      (l.first_touch_at is not null and nullif(btrim(l.first_utm_source), '') is null)
      or (l.last_touch_at is not null and nullif(btrim(l.last_utm_source), '') is null)
    )
    and nullif(btrim(j.utm_source), '') is not null
    -- rows imported from Landing's lead_journey carry UTM from their metadata; like the
    -- consolidation, they are no touch (its lead_captured events carry the lead rows' UTM)
    and j.legacy_source_table is distinct from 'lead_journey'
),

affected as (
  select l.id
  from public.traffic_leads as l
  where
    l.merged_into is null
    and (
      (l.first_touch_at is not null and nullif(btrim(l.first_utm_source), '') is null)
      or (l.last_touch_at is not null and nullif(btrim(l.last_utm_source), '') is null)
    )
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
left join touches as f on a.id = f.lead_id and f.first_rank = 1
left join touches as t on a.id = t.lead_id and t.last_rank = 1
where l.id = a.id;
