-- Repair the first and last touch of live leads from the leads merged into them.
--
-- Issue 3, items 4 and 7 (found by review of 20261208100200): a merge keeps the earlier
-- first touch and the later last touch of the two leads (private.merge_leads), and the
-- merged lead keeps its own. 20261208100200 recomputed a live lead's placeholder touch from
-- its journey and its other stored touch, not from the leads merged into it, so a real touch
-- that only a merged lead held (one the service role inserted with its touches, then merged)
-- was left out: the live lead kept no touch, or a later one, and another targetologist. Here
-- every live lead takes the earliest real first touch and the latest real last touch of the
-- leads merged into it when they are earlier (later) than its own or it has none, as the
-- merge does; a placeholder in another field of that touch becomes NULL. For a lead
-- whose touches the merges decided, nothing changes. The lead statistics follow through
-- their trigger.

with merged as (
  select
    m.merged_into as lead_id,
    m.id,
    m.first_touch_at,
    private.utm_touch_value(m.first_utm_source) as first_utm_source,
    private.utm_touch_value(m.first_utm_medium) as first_utm_medium,
    private.utm_touch_value(m.first_utm_campaign) as first_utm_campaign,
    private.utm_touch_value(m.first_utm_content) as first_utm_content,
    private.utm_touch_value(m.first_utm_term) as first_utm_term,
    m.last_touch_at,
    private.utm_touch_value(m.last_utm_source) as last_utm_source,
    private.utm_touch_value(m.last_utm_medium) as last_utm_medium,
    private.utm_touch_value(m.last_utm_campaign) as last_utm_campaign,
    private.utm_touch_value(m.last_utm_content) as last_utm_content,
    private.utm_touch_value(m.last_utm_term) as last_utm_term
  from public.traffic_leads as m
  where m.merged_into is not null
),

earliest as (
  select distinct on (g.lead_id) g.*
  from merged as g
  where g.first_utm_source is not null and g.first_touch_at is not null
  order by g.lead_id asc, g.first_touch_at asc, g.id asc
),

latest as (
  select distinct on (g.lead_id) g.*
  from merged as g
  where g.last_utm_source is not null and g.last_touch_at is not null
  order by g.lead_id asc, g.last_touch_at desc, g.id desc
),

decided as (
  select
    l.id,
    e.lead_id is not null
    and (l.first_utm_source is null or e.first_touch_at < l.first_touch_at) as take_first,
    t.lead_id is not null
    and (l.last_utm_source is null or t.last_touch_at > l.last_touch_at) as take_last
  from public.traffic_leads as l
  left join earliest as e on l.id = e.lead_id
  left join latest as t on l.id = t.lead_id
  where l.merged_into is null and (e.lead_id is not null or t.lead_id is not null)
)

update public.traffic_leads as l
set
  first_utm_source = case when d.take_first then e.first_utm_source else l.first_utm_source end,
  first_utm_medium = case when d.take_first then e.first_utm_medium else l.first_utm_medium end,
  first_utm_campaign = case when d.take_first then e.first_utm_campaign else l.first_utm_campaign end,
  first_utm_content = case when d.take_first then e.first_utm_content else l.first_utm_content end,
  first_utm_term = case when d.take_first then e.first_utm_term else l.first_utm_term end,
  first_touch_at = case when d.take_first then e.first_touch_at else l.first_touch_at end,
  last_utm_source = case when d.take_last then t.last_utm_source else l.last_utm_source end,
  last_utm_medium = case when d.take_last then t.last_utm_medium else l.last_utm_medium end,
  last_utm_campaign = case when d.take_last then t.last_utm_campaign else l.last_utm_campaign end,
  last_utm_content = case when d.take_last then t.last_utm_content else l.last_utm_content end,
  last_utm_term = case when d.take_last then t.last_utm_term else l.last_utm_term end,
  last_touch_at = case when d.take_last then t.last_touch_at else l.last_touch_at end
from decided as d
left join earliest as e on d.id = e.lead_id
left join latest as t on d.id = t.lead_id
where l.id = d.id and (d.take_first or d.take_last);
