-- AmoCRM sync of unified leads and lesson stage moves, through the outbox.
--
-- Seed 000, PART 2.1 and 3.3: landing leads were pushed to AmoCRM by syncLandingLead()
-- with no retry and no view of what was left unsynced; onLessonCompleted() moved the
-- Tripwire deal along AMOCRM_STAGE_LESSON_1..3. Here every live unsynced traffic_lead
-- gets one `amocrm` job (idempotent per lead); the worker creates or updates the contact
-- and the lead and records the AmoCRM ids with record_amocrm_sync(). Lesson completions
-- queue a stage move per (deal, lesson). amocrm_sync_backlog shows what is left.

-- API functions --------------------------------------------------------------------------

create or replace function public.enqueue_amocrm_lead_sync(p_limit integer default 1000)
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
    raise exception 'limit must be between 1 and 100000' using errcode = '22023';
  end if;
  for v_lead in
    select l.id
    from public.traffic_leads as l
    where l.amocrm_synced = false and l.merged_into is null
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

comment on function public.enqueue_amocrm_lead_sync(integer) is
'Queues one AmoCRM sync job per live unsynced traffic_lead (oldest first, at most p_limit); '
'a lead that already has a job keeps it. Returns how many leads were considered.';

revoke execute on function public.enqueue_amocrm_lead_sync(integer) from public, anon, authenticated;
grant execute on function public.enqueue_amocrm_lead_sync(integer) to service_role;

create or replace function public.record_amocrm_sync(
  p_lead_id uuid, p_contact_id bigint, p_amocrm_lead_id bigint default null
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with changed as (
    update public.traffic_leads as l
    set
      amocrm_contact_id = coalesce(p_contact_id, l.amocrm_contact_id),
      amocrm_lead_id = coalesce(p_amocrm_lead_id, l.amocrm_lead_id),
      amocrm_synced = l.amocrm_synced or p_amocrm_lead_id is not null,
      amocrm_synced_at = case when p_amocrm_lead_id is not null then pg_catalog.now() else l.amocrm_synced_at end
    where l.id = p_lead_id
    returning 1
  )

  select exists (select 1 from changed)
$$;

comment on function public.record_amocrm_sync(uuid, bigint, bigint) is
'Stores the AmoCRM contact id as soon as it exists (so a retry reuses it) and, with the '
'AmoCRM lead id, marks the lead synced.';

revoke execute on function public.record_amocrm_sync(uuid, bigint, bigint) from public, anon, authenticated;
grant execute on function public.record_amocrm_sync(uuid, bigint, bigint) to service_role;

create or replace function public.enqueue_amocrm_lesson_stage(p_amocrm_lead_id bigint, p_lesson integer)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
begin
  if p_amocrm_lead_id is null or p_lesson is null or p_lesson not between 1 and 3 then
    raise exception 'need an AmoCRM lead id and a lesson number 1 to 3'
    using errcode = '22023', hint = 'Stages come from AMOCRM_STAGE_LESSON_1..3.';
  end if;
  return public.enqueue_outbox_job(
    'amocrm',
    pg_catalog.jsonb_build_object('action', 'move_stage', 'amocrm_lead_id', p_amocrm_lead_id, 'lesson', p_lesson),
    'amocrm_stage/' || p_amocrm_lead_id || '/' || p_lesson
  );
end;
$$;

comment on function public.enqueue_amocrm_lesson_stage(bigint, integer) is
'Queues the move of an AmoCRM deal to the stage of a completed lesson (once per deal and lesson).';

revoke execute on function public.enqueue_amocrm_lesson_stage(bigint, integer) from public, anon, authenticated;
grant execute on function public.enqueue_amocrm_lesson_stage(bigint, integer) to service_role;

-- Views --------------------------------------------------------------------------------

create view public.amocrm_sync_backlog
with (security_invoker = true) as
select
  count(*) as unsynced,
  min(l.created_at) as oldest_unsynced_at,
  count(*) filter (where j.status in ('pending', 'running')) as queued,
  count(*) filter (where j.status = 'dead') as dead,
  count(*) filter (where j.id is null) as not_queued
from public.traffic_leads as l
left join public.outbox_jobs as j on j.idempotency_key = 'amocrm_sync/' || l.id
where l.amocrm_synced = false and l.merged_into is null;

comment on view public.amocrm_sync_backlog is
'Live leads not yet in AmoCRM: how many, the oldest, and how many are queued, dead or not queued.';

grant select on public.amocrm_sync_backlog to service_role;
