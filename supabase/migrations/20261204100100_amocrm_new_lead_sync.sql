-- enqueue_amocrm_new_lead_syncs: the cheap sweep that takes new leads to AmoCRM.
--
-- Nothing queued AmoCRM sync jobs for leads that came in through intake: a PostgREST call
-- of find_or_create_unified_lead is its own transaction and queues none, and nothing called
-- enqueue_amocrm_lead_sync (found by review). The worker now calls this function every
-- housekeeping period when it serves AmoCRM. enqueue_amocrm_lead_sync cannot serve there:
-- after a consolidation it walks every imported lead still unsynced, testing each for an
-- event recorded in Traffic (3.7 s a call with 540,000 of them here). This one reads only
-- leads that did not come from Landing, through an index holding just those; the worker
-- runs the full enqueue_amocrm_lead_sync daily for imported leads that came back.
--
-- The partial index on unsynced leads is replaced by one without the imported leads (the
-- audit's "unsynced AmoCRM leads" index; one index either way, so intake writes no more):
-- enqueue_amocrm_lead_sync(p_include_legacy => true), a one-off after the cut-over, and the
-- backlog view read the table instead.

drop index public.traffic_leads_amocrm_unsynced_idx;

create index traffic_leads_amocrm_unsynced_new_idx on public.traffic_leads (created_at, id)
where amocrm_synced = false and merged_into is null and legacy_source_table is null;

comment on index public.traffic_leads_amocrm_unsynced_new_idx is
'Live leads not yet in AmoCRM that did not come from Landing, oldest first: what '
'enqueue_amocrm_new_lead_syncs reads.';

create function public.enqueue_amocrm_new_lead_syncs(p_limit integer default 1000)
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
      hint = 'Queue in batches, e.g. p_limit => 1000, and repeat until it returns less than the limit.';
  end if;
  -- the lock of enqueue_amocrm_lead_sync: concurrent calls of either run one after the other,
  -- so each queues other leads
  perform pg_catalog.pg_advisory_xact_lock(1634561891, 0);
  insert into public.outbox_jobs (kind, payload, idempotency_key, run_after, max_attempts)
  select
    'amocrm',
    pg_catalog.jsonb_build_object('action', 'sync_lead', 'lead_id', n.id),
    'amocrm_sync/' || n.id,
    pg_catalog.now(),
    8
  from (
    select l.id
    from public.traffic_leads as l
    where
      l.amocrm_synced = false and l.merged_into is null and l.legacy_source_table is null
      and not exists (
        select 1 from public.outbox_jobs as q
        where q.idempotency_key = 'amocrm_sync/' || l.id
      )
    order by l.created_at, l.id
    limit p_limit
  ) as n
  on conflict (idempotency_key) do nothing;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

comment on function public.enqueue_amocrm_new_lead_syncs(integer) is
'Queues one AmoCRM sync job (the job of enqueue_amocrm_lead_sync, the same key) for each of the p_limit '
'oldest live unsynced leads that did not come from Landing and have no sync job yet; returns how many. '
'Called by onai-db worker every housekeeping period; imported leads are left to enqueue_amocrm_lead_sync.';

revoke execute on function public.enqueue_amocrm_new_lead_syncs(integer) from public, anon, authenticated;
grant execute on function public.enqueue_amocrm_new_lead_syncs(integer) to service_role;
