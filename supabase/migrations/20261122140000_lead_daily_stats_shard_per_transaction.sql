-- Daily lead statistics: one shard per open transaction, so writers never deadlock on them.
--
-- Issue 3, item 5 (race-free; review of 20261122100200): a writer added to the shard row of
-- its backend pid modulo 16. Two backends with the same remainder shared rows, and a merge
-- moves counts in several statements (the loser's rows, then the winner's), each locking
-- its rows in key order but not in one order over the whole transaction: two concurrent
-- merges in one shard could take two rows in opposite orders and one of them failed with
-- 40P01 (57 of 400 calls in the review's reproduction; about one in 20,000 calls of a random
-- 16-client stress run). Now a transaction claims a shard at its first count change, with a
-- transaction-scoped advisory lock that no other transaction can hold at the same time
-- (trying its pid's shard first, then the next ones), and keeps it until it ends: no two open
-- transactions write the same stats rows, so no writer waits for another on them at all.
-- With more than 16 transactions changing counts at once, the ones beyond share their pid's
-- shard as before (row locks in key order within each statement). The counts are unchanged:
-- a count is still the sum over its shards.

create or replace function private.lead_stats_shard()
returns smallint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_claimed text := pg_catalog.current_setting('onai.lead_stats_shard', true);
  v_home integer := pg_catalog.pg_backend_pid() % 16;
  v_shard integer;
begin
  if v_claimed is not null and v_claimed <> '' then
    return v_claimed::smallint;
  end if;
  for i in 0..15 loop
    v_shard := (v_home + i) % 16;
    -- key space (classid 1818506355 = 'lsts', shard): apart from the one-bigint identity locks
    if pg_catalog.pg_try_advisory_xact_lock(1818506355, v_shard) then
      perform pg_catalog.set_config('onai.lead_stats_shard', v_shard::text, true);
      return v_shard::smallint;
    end if;
  end loop;
  -- every shard is claimed by an open transaction: share the home shard, unclaimed
  return v_home::smallint;
end;
$$;

comment on function private.lead_stats_shard() is
'The traffic_lead_daily_stats shard (0-15) this transaction writes: claimed at its first call with a '
'transaction-scoped advisory lock (the pid''s shard first, then the next free one) and remembered in the '
'transaction-local setting onai.lead_stats_shard; with all 16 claimed, the pid''s shard, shared.';

revoke all on function private.lead_stats_shard() from public;

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
'Statement trigger on traffic_leads inserts, deletes and truncates: adds (or, for deletions, subtracts) '
'the rows'' contributions to traffic_lead_daily_stats in one set-based statement, in the shard the '
'writing transaction holds (private.lead_stats_shard).';

-- security definer: as above, derived counts that API roles may not write directly.
create or replace function private.move_lead_daily_stats()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.traffic_lead_daily_stats as s (utm_source, day, stage, shard, leads)
  select d.utm_source, d.day, d.stage, private.lead_stats_shard(), d.delta
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
'contribution in traffic_lead_daily_stats (in the shard the writing transaction holds, '
'private.lead_stats_shard).';
