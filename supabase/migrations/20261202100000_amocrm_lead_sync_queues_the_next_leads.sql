-- enqueue_amocrm_lead_sync: each call queues leads that have no sync job yet.
--
-- Found while checking `make demo` (a fresh demo said "580 not queued yet"): the function
-- took the oldest p_limit live unsynced leads, whether or not they already had a job, and
-- enqueue_outbox_job kept an existing job. So a second call re-offered the same leads and
-- queued nothing new until the worker had synced them; the runbook's batches
-- (p_limit => 1000) stalled after the first. Worse, a lead whose job is dead stays unsynced
-- and kept its place among the oldest: p_limit dead jobs stopped every newer lead from
-- being queued. Now the leads that already have a job (pending, running, done or dead;
-- requeue_dead_outbox_jobs revives a dead one) are left out, the jobs are inserted in one
-- statement, and the function returns how many jobs it queued (0: nothing is left to
-- queue), so callers repeat it until 0; concurrent calls run one after the other (an advisory
-- lock), so each queues other leads. Otherwise as 20261122130700: the same arguments,
-- checks and job shape (the defaults of enqueue_outbox_job: run now, 8 attempts).

create or replace function public.enqueue_amocrm_lead_sync(
  p_limit integer default 1000, p_include_legacy boolean default false
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_limit is null or p_limit not between 1 and 100000 then
    raise exception using
      errcode = '22023',
      message = 'limit must be between 1 and 100000',
      hint = 'Queue in batches, e.g. p_limit => 1000, and repeat until it returns 0.';
  end if;
  if p_include_legacy is null then
    raise exception using
      errcode = '22023',
      message = 'p_include_legacy must not be NULL',
      hint = 'Leave it out (leads that came in through Traffic) or pass true (imported Landing leads too).';
  end if;
  -- one call at a time: a concurrent call would pick the same leads, wait for this one's jobs
  -- and skip them all, returning 0 while leads are left; after the wait it sees them and
  -- picks the next ones (read committed: the insert below reads a snapshot taken after it)
  perform pg_catalog.pg_advisory_xact_lock(1634561891, 0);  -- 'amoc', apart from other advisory keys
  insert into public.outbox_jobs (kind, payload, idempotency_key, run_after, max_attempts)
  select
    'amocrm',
    pg_catalog.jsonb_build_object('action', 'sync_lead', 'lead_id', n.id),
    n.idempotency_key,
    pg_catalog.now(),
    8
  from (
    select l.id, 'amocrm_sync/' || l.id as idempotency_key
    from public.traffic_leads as l
    where
      l.amocrm_synced = false and l.merged_into is null
      and not exists (
        select 1 from public.outbox_jobs as q
        where q.idempotency_key = 'amocrm_sync/' || l.id
      )
      and (
        p_include_legacy
        or l.legacy_source_table is null
        or exists (
          select 1 from public.traffic_lead_journey as j
          where j.lead_id = l.id and j.legacy_source_table is null
        )
      )
    order by l.created_at, l.id
    limit p_limit
  ) as n
  on conflict (idempotency_key) do nothing;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

comment on function public.enqueue_amocrm_lead_sync(integer, boolean) is
'Queues one AmoCRM sync job for each of the p_limit oldest live unsynced traffic_leads that have no sync job '
'yet (leads imported from Landing only with p_include_legacy => true). Returns how many jobs it queued: '
'repeat it until it returns 0. A lead that already has a job keeps it, even a dead one '
'(requeue_dead_outbox_jobs revives those).';
