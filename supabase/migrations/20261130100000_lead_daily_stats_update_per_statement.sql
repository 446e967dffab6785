-- Daily lead statistics: an update of traffic_leads moves its rows' counts in one statement.
--
-- Issue 3, item 2 (journey rows) and item 9 (the dashboard's counts): updates of leads
-- moved their counts with a row trigger (private.move_lead_daily_stats), one upsert of the
-- stats rows per lead. One statement that changes many leads of one day and source (a
-- journey backfill giving 40,000 leads a payment stage, whose insert trigger updates the
-- leads in one statement) upserted the same stats rows once per lead. A row updated again
-- in the transaction that updated it leaves a version that cannot be pruned until that
-- transaction ends, and every upsert walks all of them: the time grew with the square of
-- the leads (10,000 leads 0.9 s, 20,000 2.3 s, 40,000 7.1 s; 200,000 journey rows for
-- 100,000 leads took 166 s). Now one statement trigger with the statement's old and new
-- rows adds the new rows' contributions, subtracts the old rows' and writes each changed
-- count once (40,000 leads: 1.6 s, as with no stats trigger at all). Many statements in one
-- transaction each changing a lead of the same day and source (a loop) still rewrite those
-- rows once per statement, as before: batch such work into statements, or commit in between.
-- The price: transition tables allow no column list, so every update captures its rows (in
-- memory, or in temporary files for large ones) and runs the trigger's statement, which for
-- an update that changes no counted attribute sums to nothing and writes nothing. That is
-- about 28 us per update statement (a one-row flag update: about 0.07 ms before, 0.095 ms
-- after), and for a million-row flag update 5-15% more time and twice its rows' size in
-- temporary files (disabling the trigger does not stop the capture; dropping it would).
-- Intake measured the same (2,474 against 2,483 calls/s, medians of 5 alternating pgbench
-- runs with 27% repeat people).

-- security definer (as before): the counts are derived data that no API role may write, yet
-- any role allowed to change a lead (service role, sales managers) must keep them exact.
create or replace function private.maintain_lead_daily_stats()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
    select c.utm_source, c.day, c.stage, private.lead_stats_shard(), pg_catalog.count(*)
    from (
      select
        coalesce(n.utm_source, '') as utm_source,
        (n.created_at at time zone 'Asia/Almaty')::date as day,
        st.stage
      from new_rows as n
      cross join lateral pg_catalog.unnest(array[''] || n.stages) as st (stage)
      where n.merged_into is null
    ) as c
    group by c.utm_source, c.day, c.stage
    order by c.utm_source, c.day, c.stage
    on conflict (utm_source, day, stage, shard) do update set leads = s.leads + excluded.leads;
  elsif tg_op = 'UPDATE' then
    -- every row of the statement, unchanged ones included: their two contributions cancel
    insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
    select d.utm_source, d.day, d.stage, private.lead_stats_shard(), d.delta
    from (
      select c.utm_source, c.day, c.stage, pg_catalog.sum(c.sign) as delta
      from (
        select
          coalesce(n.utm_source, '') as utm_source,
          (n.created_at at time zone 'Asia/Almaty')::date as day,
          st.stage,
          1 as sign
        from new_rows as n
        cross join lateral pg_catalog.unnest(array[''] || n.stages) as st (stage)
        where n.merged_into is null
        union all
        select
          coalesce(o.utm_source, '') as utm_source,
          (o.created_at at time zone 'Asia/Almaty')::date as day,
          st.stage,
          -1 as sign
        from old_rows as o
        cross join lateral pg_catalog.unnest(array[''] || o.stages) as st (stage)
        where o.merged_into is null
      ) as c
      group by c.utm_source, c.day, c.stage
    ) as d
    where d.delta <> 0
    order by d.utm_source, d.day, d.stage
    on conflict (utm_source, day, stage, shard) do update set leads = s.leads + excluded.leads;
  elsif tg_op = 'DELETE' then
    insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
    select c.utm_source, c.day, c.stage, private.lead_stats_shard(), -pg_catalog.count(*)
    from (
      select
        coalesce(o.utm_source, '') as utm_source,
        (o.created_at at time zone 'Asia/Almaty')::date as day,
        st.stage
      from old_rows as o
      cross join lateral pg_catalog.unnest(array[''] || o.stages) as st (stage)
      where o.merged_into is null
    ) as c
    group by c.utm_source, c.day, c.stage
    order by c.utm_source, c.day, c.stage
    on conflict (utm_source, day, stage, shard) do update set leads = s.leads + excluded.leads;
  else
    truncate public.traffic_lead_daily_stats;
  end if;
  return null;
end;
$$;

comment on function private.maintain_lead_daily_stats() is
'Statement trigger on traffic_leads inserts, updates, deletes and truncates: adds the new rows'' '
'contributions to traffic_lead_daily_stats and subtracts the old rows'' (an update does both and writes '
'only the counts that changed), each count once per statement, in the shard the writing transaction '
'holds (private.lead_stats_shard).';

drop trigger traffic_leads_daily_stats_update on public.traffic_leads;

create trigger traffic_leads_daily_stats_update
after update on public.traffic_leads
referencing old table as old_rows new table as new_rows
for each statement execute function private.maintain_lead_daily_stats();

drop function private.move_lead_daily_stats();
