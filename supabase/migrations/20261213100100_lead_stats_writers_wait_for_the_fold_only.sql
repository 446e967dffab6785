-- Daily lead statistics: a writer that finds every shard claimed while the nightly fold runs
-- waits for the fold only, not for an unrelated open transaction.
--
-- Issue 3, items 5 and 7 (found by review of the dashboard): the fold takes the claim of every
-- free shard for its transaction. A writer starting meanwhile found all 16 claimed and waited
-- for its pid's shard, which may be held by another open transaction (a consolidation batch,
-- a backfill, a session idle in a transaction), not by the fold: it kept waiting after the
-- fold had committed, and with a lock or statement timeout the intake call failed (55P03,
-- 57014) and the form submission was lost unless the backend retried. Now the fold also holds
-- the key (1818506355, 16) for its whole transaction; a writer that finds no free shard waits
-- for that key first (taken shared and given back at once), tries the shards again, and
-- waits for its pid's shard only when 16 open transactions really hold them all. Otherwise
-- the same bodies as in 20261123100000_lead_stats_shard_claim_checked.sql.

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
  -- every shard is claimed. The nightly fold claims every free one for its transaction and
  -- holds key 16 meanwhile: wait for it to end (key 16 taken shared at session level and
  -- given back at once; nothing else may hold it), then try the shards again.
  perform pg_catalog.pg_advisory_lock_shared(1818506355, 16);
  perform pg_catalog.pg_advisory_unlock_shared(1818506355, 16);
  for i in 0..15 loop
    v_shard := (v_home + i) % 16;
    if pg_catalog.pg_try_advisory_xact_lock(1818506355, v_shard) then
      perform pg_catalog.set_config('onai.lead_stats_shard', v_shard::text, true);
      return v_shard::smallint;
    end if;
  end loop;
  -- 16 open transactions hold them all: wait for the pid's shard, so no two open
  -- transactions ever write the same stats rows
  perform pg_catalog.pg_advisory_xact_lock(1818506355, v_home);
  perform pg_catalog.set_config('onai.lead_stats_shard', v_home::text, true);
  return v_home::smallint;
end;
$$;

comment on function private.lead_stats_shard() is
'The traffic_lead_daily_stats shard (0-15) this transaction writes: claimed at its first call with a '
'transaction-scoped advisory lock (the pid''s shard first, then the next free one; with all 16 claimed, '
'it waits for a running fold to end (key 16) and tries again, then waits for the pid''s shard) and '
'remembered in the transaction-local setting onai.lead_stats_shard, which is checked against the lock on '
'every later call.';

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
  -- key 16 for the whole fold: a writer that finds every shard claimed waits for it, not for
  -- whichever open transaction holds its pid's shard (private.lead_stats_shard); another
  -- fold waits for this one
  perform pg_catalog.pg_advisory_xact_lock(1818506355, 16);
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
'holds (their claims are taken for the fold, and key 16 so that writers finding no free shard wait for '
'the fold only), the others at the next fold. Scheduled nightly (pg_cron job onai-lead-stats-fold, or '
'onai-db worker without pg_cron). Returns the number of shard-0 rows written.';

revoke all on function private.fold_lead_daily_stats(date) from public;
