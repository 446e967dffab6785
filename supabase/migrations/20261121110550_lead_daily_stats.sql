-- Daily lead statistics: what the dashboard reads instead of scanning a million leads.
--
-- Seed 004 promised dashboard queries in milliseconds once leads and attribution share a
-- database. Counting a targetologist's month of leads row by row still costs ~10 ms at
-- 1M leads, so live leads are pre-counted per Asia/Almaty day, UTM source and journey
-- stage reached. Triggers on traffic_leads keep the counts exact under every write path
-- (the RPC, merges, bulk consolidation, direct service-role writes): inserts and deletes
-- per statement (set-based, cheap for bulk loads), updates per changed row only.

create table public.traffic_lead_daily_stats (
  utm_source text not null,
  day date not null,
  stage text not null,
  leads bigint not null,
  primary key (utm_source, day, stage)
);

comment on table public.traffic_lead_daily_stats is
'Live leads per Asia/Almaty day (of created_at), first-touch utm_source ('''' = unattributed) and stage '
'reached ('''' = all leads). Maintained by triggers on traffic_leads; read by traffic_dashboard.';
comment on column public.traffic_lead_daily_stats.stage is
'A journey stage the leads have reached, or '''' for the count of all live leads of that day and source.';

grant select on public.traffic_lead_daily_stats to authenticated;
grant select, insert, update, delete on public.traffic_lead_daily_stats to service_role;

-- Helpers and triggers ---------------------------------------------------------------------

-- security definer: the counts are derived data that no API role may write, yet any role
-- allowed to change a lead (service role, sales managers) must keep them exact.
create or replace function private.maintain_lead_daily_stats()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if tg_op = 'INSERT' then
    insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, leads)
    select c.utm_source, c.day, c.stage, pg_catalog.count(*)
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
    on conflict (utm_source, day, stage) do update set leads = s.leads + excluded.leads;
  elsif tg_op = 'DELETE' then
    update public.traffic_lead_daily_stats as s
    set leads = s.leads - c.n
    from (
      select
        coalesce(o.utm_source, '') as utm_source,
        (o.created_at at time zone 'Asia/Almaty')::date as day,
        st.stage,
        pg_catalog.count(*) as n
      from old_rows as o
      cross join lateral pg_catalog.unnest(array[''] || o.stages) as st (stage)
      where o.merged_into is null
      group by 1, 2, 3
    ) as c
    where s.utm_source = c.utm_source and s.day = c.day and s.stage = c.stage;
  else
    truncate public.traffic_lead_daily_stats;
  end if;
  return null;
end;
$$;

-- security definer: as above, derived counts that API roles may not write directly.
create or replace function private.move_lead_daily_stats()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, leads)
  select d.utm_source, d.day, d.stage, d.delta
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
  on conflict (utm_source, day, stage) do update set leads = s.leads + excluded.leads;
  return null;
end;
$$;

comment on function private.move_lead_daily_stats() is
'Row trigger on traffic_leads updates that change stages, attribution, day or liveness: moves the row''s '
'contribution in traffic_lead_daily_stats.';

revoke all on function private.move_lead_daily_stats() from public;

comment on function private.maintain_lead_daily_stats() is
'Statement trigger on traffic_leads inserts, deletes and truncates: adds or removes the rows'' contributions '
'to traffic_lead_daily_stats in one set-based statement.';

revoke all on function private.maintain_lead_daily_stats() from public;

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
  insert into public.traffic_lead_daily_stats (utm_source, day, stage, leads)
  select
    coalesce(l.utm_source, ''),
    (l.created_at at time zone 'Asia/Almaty')::date,
    st.stage,
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
'Recomputes traffic_lead_daily_stats from traffic_leads (after a bulk load with triggers off, or to audit '
'the counts). Returns the number of stat rows.';

revoke all on function private.rebuild_lead_daily_stats() from public;

create trigger traffic_leads_daily_stats_insert
after insert on public.traffic_leads
referencing new table as new_rows
for each statement execute function private.maintain_lead_daily_stats();

-- Updates are per row, and only for rows whose counted attributes changed: most updates
-- (the RPC filling gaps, flags, AmoCRM sync) change none of them and cost nothing here.
create trigger traffic_leads_daily_stats_update
after update of stages, first_utm_source, created_at, merged_into on public.traffic_leads
for each row
when (
  old.stages is distinct from new.stages
  or old.utm_source is distinct from new.utm_source
  or old.created_at is distinct from new.created_at
  or old.merged_into is distinct from new.merged_into
)
execute function private.move_lead_daily_stats();

create trigger traffic_leads_daily_stats_delete
after delete on public.traffic_leads
referencing old table as old_rows
for each statement execute function private.maintain_lead_daily_stats();

create trigger traffic_leads_daily_stats_truncate
after truncate on public.traffic_leads
for each statement execute function private.maintain_lead_daily_stats();

-- RLS ----------------------------------------------------------------------------------

alter table public.traffic_lead_daily_stats enable row level security;

create policy "staff see all lead stats and targetologists the stats of their sources"
on public.traffic_lead_daily_stats
for select
to authenticated
using (
  (select private.is_staff())
  or utm_source = any((select private.my_utm_sources())::text[])
);
