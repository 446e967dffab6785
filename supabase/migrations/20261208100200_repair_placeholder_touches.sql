-- Repair the first and last touch of leads stored with a UTM placeholder.
--
-- Issue 3, items 1 and 7: until 20261208100100 an event whose utm_source was a placeholder
-- ('undefined', an unexpanded '{{campaign.name}}', ...; private.utm_touch_value) could
-- become a lead's first or last touch, and a placeholder in another UTM field was recorded
-- in the touch as it came. Two steps, for live leads:
-- 1. a first or last touch whose utm_source is a placeholder is recomputed by the rule
--    find_or_create_unified_lead now follows, from the touches the lead has: its journey's
--    events naming a real utm_source (not rows imported from Landing's lead_journey; the
--    rule of 20261122130200_repair_lead_touches.sql) and the lead's other stored touch when
--    its source is real (a lead the service role inserted with its touches has no event
--    behind them, found by review). The first touch is the earliest, the last the latest,
--    ties by the order recorded. A touch whose source is real is left as it is; a lead
--    with no real touch at all keeps none;
-- 2. any other touch field holding a placeholder becomes NULL.
-- The journey rows keep what was sent. The lead statistics follow through their trigger.

with flagged as (
  select
    l.id,
    l.first_utm_source is not null and private.utm_touch_value(l.first_utm_source) is null as first_bad,
    l.last_utm_source is not null and private.utm_touch_value(l.last_utm_source) is null as last_bad
  from public.traffic_leads as l
  where l.merged_into is null
),

affected as (
  select
    f.id,
    f.first_bad,
    f.last_bad
  from flagged as f
  where f.first_bad or f.last_bad
),

candidates as (
  select
    j.lead_id,
    j.occurred_at,
    1 as kind,
    j.id as seq,
    private.utm_touch_value(j.utm_source) as utm_source,
    private.utm_touch_value(j.utm_medium) as utm_medium,
    private.utm_touch_value(j.utm_campaign) as utm_campaign,
    private.utm_touch_value(j.utm_content) as utm_content,
    private.utm_touch_value(j.utm_term) as utm_term
  from public.traffic_lead_journey as j
  inner join affected as a on j.lead_id = a.id
  where
    private.utm_touch_value(j.utm_source) is not null
    and j.legacy_source_table is distinct from 'lead_journey'
  union all
  -- a real stored first touch, for a last touch to recompute
  select
    a.id as lead_id,
    coalesce(l.first_touch_at, l.created_at) as occurred_at,
    0 as kind,
    0 as seq,
    private.utm_touch_value(l.first_utm_source) as utm_source,
    private.utm_touch_value(l.first_utm_medium) as utm_medium,
    private.utm_touch_value(l.first_utm_campaign) as utm_campaign,
    private.utm_touch_value(l.first_utm_content) as utm_content,
    private.utm_touch_value(l.first_utm_term) as utm_term
  from affected as a
  inner join public.traffic_leads as l on a.id = l.id
  where a.last_bad and not a.first_bad and l.first_utm_source is not null
  union all
  -- a real stored last touch, for a first touch to recompute
  select
    a.id as lead_id,
    coalesce(l.last_touch_at, l.created_at) as occurred_at,
    2 as kind,
    0 as seq,
    private.utm_touch_value(l.last_utm_source) as utm_source,
    private.utm_touch_value(l.last_utm_medium) as utm_medium,
    private.utm_touch_value(l.last_utm_campaign) as utm_campaign,
    private.utm_touch_value(l.last_utm_content) as utm_content,
    private.utm_touch_value(l.last_utm_term) as utm_term
  from affected as a
  inner join public.traffic_leads as l on a.id = l.id
  where a.first_bad and not a.last_bad and l.last_utm_source is not null
),

ranked as (
  select
    c.*,
    row_number() over (partition by c.lead_id order by c.occurred_at, c.kind, c.seq) as first_rank,
    row_number() over (partition by c.lead_id order by c.occurred_at desc, c.kind desc, c.seq desc) as last_rank
  from candidates as c
)

update public.traffic_leads as l
set
  first_utm_source = case when a.first_bad then f.utm_source else l.first_utm_source end,
  first_utm_medium = case when a.first_bad then f.utm_medium else l.first_utm_medium end,
  first_utm_campaign = case when a.first_bad then f.utm_campaign else l.first_utm_campaign end,
  first_utm_content = case when a.first_bad then f.utm_content else l.first_utm_content end,
  first_utm_term = case when a.first_bad then f.utm_term else l.first_utm_term end,
  first_touch_at = case when a.first_bad then f.occurred_at else l.first_touch_at end,
  last_utm_source = case when a.last_bad then t.utm_source else l.last_utm_source end,
  last_utm_medium = case when a.last_bad then t.utm_medium else l.last_utm_medium end,
  last_utm_campaign = case when a.last_bad then t.utm_campaign else l.last_utm_campaign end,
  last_utm_content = case when a.last_bad then t.utm_content else l.last_utm_content end,
  last_utm_term = case when a.last_bad then t.utm_term else l.last_utm_term end,
  last_touch_at = case when a.last_bad then t.occurred_at else l.last_touch_at end
from affected as a
left join ranked as f on a.id = f.lead_id and f.first_rank = 1
left join ranked as t on a.id = t.lead_id and t.last_rank = 1
where l.id = a.id;

update public.traffic_leads as l
set
  first_utm_medium = case when private.utm_touch_value(l.first_utm_medium) is not null then l.first_utm_medium end,
  first_utm_campaign = case
    when private.utm_touch_value(l.first_utm_campaign) is not null then l.first_utm_campaign
  end,
  first_utm_content = case when private.utm_touch_value(l.first_utm_content) is not null then l.first_utm_content end,
  first_utm_term = case when private.utm_touch_value(l.first_utm_term) is not null then l.first_utm_term end,
  last_utm_medium = case when private.utm_touch_value(l.last_utm_medium) is not null then l.last_utm_medium end,
  last_utm_campaign = case when private.utm_touch_value(l.last_utm_campaign) is not null then l.last_utm_campaign end,
  last_utm_content = case when private.utm_touch_value(l.last_utm_content) is not null then l.last_utm_content end,
  last_utm_term = case when private.utm_touch_value(l.last_utm_term) is not null then l.last_utm_term end
where
  l.merged_into is null
  and (
    (l.first_utm_medium is not null and private.utm_touch_value(l.first_utm_medium) is null)
    or (l.first_utm_campaign is not null and private.utm_touch_value(l.first_utm_campaign) is null)
    or (l.first_utm_content is not null and private.utm_touch_value(l.first_utm_content) is null)
    or (l.first_utm_term is not null and private.utm_touch_value(l.first_utm_term) is null)
    or (l.last_utm_medium is not null and private.utm_touch_value(l.last_utm_medium) is null)
    or (l.last_utm_campaign is not null and private.utm_touch_value(l.last_utm_campaign) is null)
    or (l.last_utm_content is not null and private.utm_touch_value(l.last_utm_content) is null)
    or (l.last_utm_term is not null and private.utm_touch_value(l.last_utm_term) is null)
  );
