-- Daily lead statistics without a hot row: each counter is split over 16 shards.
--
-- Issue 3, lead intake benchmark: every new lead and every new stage of a day and source
-- added to the same traffic_lead_daily_stats row, so concurrent intake calls queued on its
-- row lock until each other's commit (8 clients: 1,040 calls/s; the same calls without the
-- stats triggers: 1,890). A writer now adds to the row of its own shard (its backend pid
-- modulo 16); the count of a (utm_source, day, stage) is the sum over its shards, which is
-- what traffic_dashboard already computed (it sums the rows of a bucket). Deletions add
-- negative amounts to the writer's shard instead of updating every shard, so one shard may
-- go below zero; only the sum means anything. Rebuilds write shard 0.

alter table public.traffic_lead_daily_stats
add column shard smallint not null default 0
constraint traffic_lead_daily_stats_shard_check check (shard between 0 and 15);

alter table public.traffic_lead_daily_stats
drop constraint traffic_lead_daily_stats_pkey;

alter table public.traffic_lead_daily_stats
add constraint traffic_lead_daily_stats_pkey primary key (utm_source, day, stage, shard);

comment on column public.traffic_lead_daily_stats.shard is
'Writers add to the row of their shard (backend pid modulo 16), so concurrent inserts do not wait for '
'each other; the count of (utm_source, day, stage) is sum(leads) over its shards.';

comment on column public.traffic_lead_daily_stats.leads is
'This shard''s share of the count (may be negative after deletions); sum over shards for the count.';

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
    select c.utm_source, c.day, c.stage, (pg_catalog.pg_backend_pid() % 16)::smallint, pg_catalog.count(*)
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
  elsif tg_op = 'DELETE' then
    insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
    select c.utm_source, c.day, c.stage, (pg_catalog.pg_backend_pid() % 16)::smallint, -pg_catalog.count(*)
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
'Statement trigger on traffic_leads inserts, deletes and truncates: adds (or, for deletions, subtracts) '
'the rows'' contributions to traffic_lead_daily_stats in one set-based statement, in the writer''s shard.';

-- security definer: as above, derived counts that API roles may not write directly.
create or replace function private.move_lead_daily_stats()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
  select d.utm_source, d.day, d.stage, (pg_catalog.pg_backend_pid() % 16)::smallint, d.delta
  from (
    select c.utm_source, c.day, c.stage, pg_catalog.sum(c.sign) as delta
    from (
      select
        coalesce(new.utm_source, '') as utm_source,
        (new.created_at at time zone 'Asia/Almaty')::date as day,
        st.stage,
        1 as sign
      from pg_catalog.unnest(array[''] || new.stages) as st (stage)
      where new.merged_into is null
      union all
      select
        coalesce(old.utm_source, '') as utm_source,
        (old.created_at at time zone 'Asia/Almaty')::date as day,
        st.stage,
        -1 as sign
      from pg_catalog.unnest(array[''] || old.stages) as st (stage)
      where old.merged_into is null
    ) as c
    group by c.utm_source, c.day, c.stage
  ) as d
  where d.delta <> 0
  order by d.utm_source, d.day, d.stage
  on conflict (utm_source, day, stage, shard) do update set leads = s.leads + excluded.leads;
  return null;
end;
$$;

comment on function private.move_lead_daily_stats() is
'Row trigger on traffic_leads updates that change stages, attribution, day or liveness: moves the row''s '
'contribution in traffic_lead_daily_stats (in the writer''s shard).';

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
  select
    coalesce(l.utm_source, ''),
    (l.created_at at time zone 'Asia/Almaty')::date,
    st.stage,
    0,
    pg_catalog.count(*)
  from public.traffic_leads as l
  cross join lateral pg_catalog.unnest(array[''] || l.stages) as st (stage)
  where l.merged_into is null
  group by 1, 2, 3;
  get diagnostics v_rows = row_count;
  return v_rows;
end;
$$;

comment on function private.rebuild_lead_daily_stats() is
'Recomputes traffic_lead_daily_stats from traffic_leads into shard 0 (after a bulk load with triggers '
'off, to audit the counts, or to fold the shards together). Returns the number of stat rows.';
