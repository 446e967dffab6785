-- Repair the first and last touch of leads stored with a UTM placeholder.
--
-- Issue 3, items 1 and 7: until 20261208100100 an event whose utm_source was a placeholder
-- ('undefined', an unexpanded '{{campaign.name}}', ...; private.utm_touch_value) could
-- become a lead's first or last touch, and a placeholder in another UTM field was recorded
-- in the touch as it came. Two steps, for live leads:
-- 1. a first or last touch whose utm_source is a placeholder: both touches are recomputed
--    from the lead's journey by the rule find_or_create_unified_lead now follows (the rule
--    of 20261122130200_repair_lead_touches.sql, with placeholders as no value: only events
--    naming a real utm_source count, not rows imported from Landing's lead_journey; the
--    first touch is the earliest, the last the latest, ties by the order recorded). A lead
--    with no such event keeps no touch;
-- 2. any other touch field holding a placeholder becomes NULL.
-- The journey rows keep what was sent. The lead statistics follow through their trigger.

with touches as (
  select
    j.lead_id,
    j.occurred_at,
    private.utm_touch_value(btrim(j.utm_source)) as utm_source,
    private.utm_touch_value(btrim(j.utm_medium)) as utm_medium,
    private.utm_touch_value(btrim(j.utm_campaign)) as utm_campaign,
    private.utm_touch_value(btrim(j.utm_content)) as utm_content,
    private.utm_touch_value(btrim(j.utm_term)) as utm_term,
    row_number() over (partition by j.lead_id order by j.occurred_at, j.id) as first_rank,
    row_number() over (partition by j.lead_id order by j.occurred_at desc, j.id desc) as last_rank
  from public.traffic_lead_journey as j
  inner join public.traffic_leads as l on j.lead_id = l.id
  where
    l.merged_into is null
    and (
      (l.first_utm_source is not null and private.utm_touch_value(btrim(l.first_utm_source)) is null)
      or (l.last_utm_source is not null and private.utm_touch_value(btrim(l.last_utm_source)) is null)
    )
    and private.utm_touch_value(btrim(j.utm_source)) is not null
    and j.legacy_source_table is distinct from 'lead_journey'
),

affected as (
  select l.id
  from public.traffic_leads as l
  where
    l.merged_into is null
    and (
      (l.first_utm_source is not null and private.utm_touch_value(btrim(l.first_utm_source)) is null)
      or (l.last_utm_source is not null and private.utm_touch_value(btrim(l.last_utm_source)) is null)
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

update public.traffic_leads as l
set
  first_utm_medium = case
    when private.utm_touch_value(btrim(l.first_utm_medium)) is not null then l.first_utm_medium
  end,
  first_utm_campaign = case
    when private.utm_touch_value(btrim(l.first_utm_campaign)) is not null then l.first_utm_campaign
  end,
  first_utm_content = case
    when private.utm_touch_value(btrim(l.first_utm_content)) is not null then l.first_utm_content
  end,
  first_utm_term = case
    when private.utm_touch_value(btrim(l.first_utm_term)) is not null then l.first_utm_term
  end,
  last_utm_medium = case
    when private.utm_touch_value(btrim(l.last_utm_medium)) is not null then l.last_utm_medium
  end,
  last_utm_campaign = case
    when private.utm_touch_value(btrim(l.last_utm_campaign)) is not null then l.last_utm_campaign
  end,
  last_utm_content = case
    when private.utm_touch_value(btrim(l.last_utm_content)) is not null then l.last_utm_content
  end,
  last_utm_term = case
    when private.utm_touch_value(btrim(l.last_utm_term)) is not null then l.last_utm_term
  end
where
  l.merged_into is null
  and (
    (l.first_utm_medium is not null and private.utm_touch_value(btrim(l.first_utm_medium)) is null)
    or (l.first_utm_campaign is not null and private.utm_touch_value(btrim(l.first_utm_campaign)) is null)
    or (l.first_utm_content is not null and private.utm_touch_value(btrim(l.first_utm_content)) is null)
    or (l.first_utm_term is not null and private.utm_touch_value(btrim(l.first_utm_term)) is null)
    or (l.last_utm_medium is not null and private.utm_touch_value(btrim(l.last_utm_medium)) is null)
    or (l.last_utm_campaign is not null and private.utm_touch_value(btrim(l.last_utm_campaign)) is null)
    or (l.last_utm_content is not null and private.utm_touch_value(btrim(l.last_utm_content)) is null)
    or (l.last_utm_term is not null and private.utm_touch_value(btrim(l.last_utm_term)) is null)
  );
