-- AmoCRM sync: leads imported from Landing are queued only when asked for.
--
-- Issue 4 (cut-over): onai-db consolidate brings every Landing lead into traffic_leads with
-- its amocrm_synced flag as Landing had it; seed 000 (1.3) says nobody knows how many of
-- them really reached AmoCRM. enqueue_amocrm_lead_sync() queued every live unsynced lead,
-- oldest first, so the first call after a cut-over would push years-old leads into the
-- sales pipeline as new deals. Now it leaves out leads known only from Landing: imported
-- (legacy_source_table set) and without any event recorded in Traffic itself (a journey row
-- without legacy provenance). A lead the person came back to through Traffic, or one joined
-- to a Landing person by consolidation or a merge, has such an event and is queued as before
-- (a lead written into traffic_leads directly, never through find_or_create_unified_lead,
-- and then joined to a Landing person counts as Landing-only).
-- p_include_legacy => true takes the Landing-only leads too (an operator's decision, runbook).
-- amocrm_sync_backlog says how many of them wait for that decision.

drop function public.enqueue_amocrm_lead_sync(integer);

create function public.enqueue_amocrm_lead_sync(p_limit integer default 1000, p_include_legacy boolean default false)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_count integer := 0;
  v_lead record;
begin
  if p_limit is null or p_limit not between 1 and 100000 then
    raise exception using
      errcode = '22023',
      message = 'limit must be between 1 and 100000',
      hint = 'Queue in batches, e.g. p_limit => 1000.';
  end if;
  if p_include_legacy is null then
    raise exception using
      errcode = '22023',
      message = 'p_include_legacy must not be NULL',
      hint = 'Leave it out (leads that came in through Traffic) or pass true (imported Landing leads too).';
  end if;
  for v_lead in
    select l.id
    from public.traffic_leads as l
    where
      l.amocrm_synced = false and l.merged_into is null
      and (
        p_include_legacy
        or l.legacy_source_table is null
        or exists (
          select 1 from public.traffic_lead_journey as j
          where j.lead_id = l.id and j.legacy_source_table is null
        )
      )
    order by l.created_at
    limit p_limit
  loop
    perform public.enqueue_outbox_job(
      'amocrm',
      pg_catalog.jsonb_build_object('action', 'sync_lead', 'lead_id', v_lead.id),
      'amocrm_sync/' || v_lead.id
    );
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

comment on function public.enqueue_amocrm_lead_sync(integer, boolean) is
'Queues one AmoCRM sync job per live unsynced traffic_lead (oldest first, at most p_limit); leads imported '
'from Landing only with p_include_legacy => true. A lead that already has a job keeps it. Returns how many '
'leads were considered.';

revoke execute on function public.enqueue_amocrm_lead_sync(integer, boolean) from public, anon, authenticated;
grant execute on function public.enqueue_amocrm_lead_sync(integer, boolean) to service_role;

create or replace view public.amocrm_sync_backlog
with (security_invoker = true) as
select
  count(*) as unsynced,
  min(l.created_at) as oldest_unsynced_at,
  count(*) filter (where j.status in ('pending', 'running')) as queued,
  count(*) filter (where j.status = 'dead') as dead,
  count(*) filter (where j.id is null) as not_queued,
  -- not queued, imported, and without an event recorded in Traffic itself
  count(*) filter (
    where
    j.id is null and l.legacy_source_table is not null
    and not exists (
      select 1 from public.traffic_lead_journey as x
      where x.lead_id = l.id and x.legacy_source_table is null
    )
  ) as legacy_not_queued
from public.traffic_leads as l
left join public.outbox_jobs as j on j.idempotency_key = 'amocrm_sync/' || l.id
where l.amocrm_synced = false and l.merged_into is null;

comment on view public.amocrm_sync_backlog is
'Live leads not yet in AmoCRM: how many, the oldest, how many are queued, dead or not queued, and how many '
'of those not queued are known only from Landing (queued only by enqueue_amocrm_lead_sync(p_include_legacy => true)).';
