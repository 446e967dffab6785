-- traffic_lead_daily_stats by day.
--
-- Issue 3, item 8 (the indexes the dashboard needs): staff (admins, sales managers, the
-- service role) read the dashboard over every UTM source, which filters the stats on the day
-- alone; the primary key leads with utm_source and cannot narrow that. Rows are added once
-- per (source, day, stage, shard) and afterwards only their count changes, so the index
-- costs the intake path one entry per new row and never blocks a HOT update of a count.

create index traffic_lead_daily_stats_day_idx on public.traffic_lead_daily_stats (day);

comment on index public.traffic_lead_daily_stats_day_idx is
'traffic_dashboard over every source (staff): the period filter on day.';
