-- rebuild_lead_daily_stats writes its rows in primary-key order.
--
-- Issue 3, dashboard benchmark: after a rebuild (a bulk load, an audit, folding the shards)
-- the rows came out in the order of a hash aggregate, so one targetologist's 30 days of
-- counts lay on as many pages as rows (183 pages for 240 rows on the 1M-lead data set) and
-- the dashboard read them all. Written in (utm_source, day, stage) order, a source's days
-- share a few pages. Same rows, same counts.

create or replace function private.rebuild_lead_daily_stats()
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_rows bigint;
begin
  lock table public.traffic_lead_daily_stats in exclusive mode;
  delete from public.traffic_lead_daily_stats;
  insert into public.traffic_lead_daily_stats (utm_source, day, stage, shard, leads)
  select c.utm_source, c.day, c.stage, 0, c.leads
  from (
    select
      coalesce(l.utm_source, '') as utm_source,
      (l.created_at at time zone 'Asia/Almaty')::date as day,
      st.stage,
      pg_catalog.count(*) as leads
    from public.traffic_leads as l
    cross join lateral pg_catalog.unnest(array[''] || l.stages) as st (stage)
    where l.merged_into is null
    group by 1, 2, 3
  ) as c
  order by c.utm_source, c.day, c.stage;
  get diagnostics v_rows = row_count;
  return v_rows;
end;
$$;

comment on function private.rebuild_lead_daily_stats() is
'Recomputes traffic_lead_daily_stats from traffic_leads into shard 0, in primary-key order (after a bulk '
'load with triggers off, to audit the counts, or to fold the shards together). Returns the number of '
'stat rows.';
