-- Daily lead statistics: a shard claim is always held, and the nightly fold folds only the
-- shards it can claim, so it never races the writers.
--
-- Issue 3, item 5 (race-free; review of 20261122140000):
-- 1. lead_stats_shard() took the transaction-local setting onai.lead_stats_shard on trust. A
--    caller can set that setting itself (set_config), and the function runs inside security
--    definer triggers: a value out of range failed the call with 23514, a value in range wrote
--    to a shard another open transaction holds. The setting is now only a hint: the claim is
--    checked with the advisory lock itself (re-taking a lock this transaction holds is a
--    local lookup, so the usual call costs nothing more).
-- 2. With all 16 shards claimed, a 17th transaction wrote to its pid's shard without a claim,
--    and two such transactions taking two stats rows in crossed order deadlocked (40P01). It
--    now waits for its pid's shard.
-- 3. fold_lead_daily_stats() locked the rows it folds in key order, but a merge writes the
--    loser's rows before the winner's, not in key order, so a fold and a merging intake call
--    could deadlock (40P01). The fold now takes the claim of every shard that is free at that
--    moment (never waiting for one) and folds only those shards' rows: rows of a shard held
--    by an open transaction are left for the next fold. Only a claim's holder writes its
--    shard's rows, so the fold and the writers never wait for each other at all (a writer
--    that finds every shard claimed waits for its pid's shard, which the fold, which waits
--    for nothing, soon releases).

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
  -- key space (classid 1818506355 = 'lsts', shard): apart from the one-bigint identity locks.
  -- The setting names the shard this transaction claimed; the lock proves it (a lock this
  -- transaction already holds is granted again at once, one held elsewhere is not).
  if v_claimed ~ '^([0-9]|1[0-5])$' and pg_catalog.pg_try_advisory_xact_lock(1818506355, v_claimed::integer) then
    return v_claimed::smallint;
  end if;
  for i in 0..15 loop
    v_shard := (v_home + i) % 16;
    if pg_catalog.pg_try_advisory_xact_lock(1818506355, v_shard) then
      perform pg_catalog.set_config('onai.lead_stats_shard', v_shard::text, true);
      return v_shard::smallint;
    end if;
  end loop;
  -- every shard is claimed by an open transaction (or the nightly fold runs): wait for the
  -- pid's shard, so no two open transactions ever write the same stats rows
  perform pg_catalog.pg_advisory_xact_lock(1818506355, v_home);
  perform pg_catalog.set_config('onai.lead_stats_shard', v_home::text, true);
  return v_home::smallint;
end;
$$;

comment on function private.lead_stats_shard() is
'The traffic_lead_daily_stats shard (0-15) this transaction writes: claimed at its first call with a '
'transaction-scoped advisory lock (the pid''s shard first, then the next free one; with all 16 claimed, '
'it waits for the pid''s shard) and remembered in the transaction-local setting onai.lead_stats_shard, '
'which is checked against the lock on every later call.';

revoke all on function private.lead_stats_shard() from public;

create or replace function private.fold_lead_daily_stats(p_before date default null)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  v_before date := coalesce(p_before, (pg_catalog.now() at time zone 'Asia/Almaty')::date);
  v_rows bigint;
  v_shards integer[];
begin
  -- the claims of the shards no open transaction holds, without waiting for any; shard 0,
  -- where the sums go, among them (else nothing is folded this time)
  select pg_catalog.array_agg(s.shard order by s.shard) into v_shards
  from pg_catalog.generate_series(0, 15) as s (shard)
  where pg_catalog.pg_try_advisory_xact_lock(1818506355, s.shard);
  if v_shards is null or not (0 = any(v_shards)) then
    raise notice 'lead stats shard 0 is held by an open transaction: nothing folded, the next fold will';
    return 0;
  end if;
  if pg_catalog.cardinality(v_shards) < 16 then
    raise notice 'lead stats shards in use by open transactions are left for the next fold: %',
      (select pg_catalog.array_agg(x) from pg_catalog.generate_series(0, 15) as x where not (x = any(v_shards)));
  end if;

  with doomed as materialized (
    select s.ctid as row_id
    from public.traffic_lead_daily_stats as s
    where s.day < v_before and s.shard <> 0 and s.shard = any(v_shards)
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
'(utm_source, day, stage); same sums, no table lock, no waiting: only the shards no open transaction '
'holds (their claims are taken for the fold), the others at the next fold. Scheduled nightly (pg_cron job '
'onai-lead-stats-fold, or onai-db worker without pg_cron). Returns the number of shard-0 rows written.';

revoke all on function private.fold_lead_daily_stats(date) from public;
