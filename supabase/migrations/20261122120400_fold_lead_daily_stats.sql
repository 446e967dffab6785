-- Fold the shards of past days in traffic_lead_daily_stats, nightly.
--
-- Issue 3, dashboard: since 20261122100200 every count is split over up to 16 shards (one
-- per writing backend), so a day on which many backends recorded leads has up to 16 rows
-- per (utm_source, stage), and a 30-day dashboard would read up to 16 times the rows it
-- read after a rebuild. Past days rarely change again (a late event, a merge), so their
-- shards are folded into shard 0 every night; only today keeps its shards, where they
-- matter. Unlike rebuild_lead_daily_stats() this takes no table lock: it locks the rows it
-- folds, in key order (the order every writer locks its rows in), so intake calls that
-- touch the same rows wait for it instead of deadlocking, and their additions land in a
-- new shard row after it. The sums do not change.

create or replace function private.fold_lead_daily_stats(p_before date default null)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_before date := coalesce(p_before, (pg_catalog.now() at time zone 'Asia/Almaty')::date);
  v_rows bigint;
begin
  with doomed as materialized (
    select s.ctid as row_id
    from public.traffic_lead_daily_stats as s
    where s.day < v_before and s.shard <> 0
    order by s.utm_source, s.day, s.stage, s.shard
    for update
  ),

  moved as (
    delete from public.traffic_lead_daily_stats as s
    using doomed as d
    where s.ctid = d.row_id
    returning s.utm_source, s.day, s.stage, s.leads
  )

  insert into public.traffic_lead_daily_stats as t (utm_source, day, stage, shard, leads)
  select m.utm_source, m.day, m.stage, 0, pg_catalog.sum(m.leads)::bigint
  from moved as m
  group by m.utm_source, m.day, m.stage
  order by m.utm_source, m.day, m.stage
  on conflict (utm_source, day, stage, shard) do update set leads = t.leads + excluded.leads;
  get diagnostics v_rows = row_count;
  -- counts that came to nothing (a lead deleted or merged away) need no row
  delete from public.traffic_lead_daily_stats as s
  where s.day < v_before and s.shard = 0 and s.leads = 0;
  return v_rows;
end;
$$;

comment on function private.fold_lead_daily_stats(date) is
'Folds the shards of every day before p_before (default: today in Asia/Almaty) into shard 0, one row per '
'(utm_source, day, stage); same sums, no table lock. Scheduled nightly (pg_cron job onai-lead-stats-fold, '
'or onai-db worker without pg_cron). Returns the number of shard-0 rows written.';

revoke all on function private.fold_lead_daily_stats(date) from public;

do $schedule$
begin
  if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    -- 01:40 in Almaty (UTC+5), after the day has closed
    perform cron.schedule('onai-lead-stats-fold', '40 20 * * *', 'select private.fold_lead_daily_stats()');
  else
    raise notice 'pg_cron is not installed here: onai-db worker folds the lead stats once a day';
  end if;
end
$schedule$;
