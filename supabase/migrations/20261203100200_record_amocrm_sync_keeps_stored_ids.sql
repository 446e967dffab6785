-- record_amocrm_sync keeps AmoCRM ids a lead has: the first contact and deal stored win.
--
-- Review of stop 23: a worker syncing lead B read it (no AmoCRM ids), then a merge gave B
-- the contact and deal of a synced lead A while the worker talked to AmoCRM. The worker
-- created a second contact and deal and stored them over A's, so the live lead lost its
-- pointers to the person's first deal. Now an id is stored only where the lead has none;
-- the worker reads the lead's ids back after each call, uses the stored contact for the
-- deal, and names a deal it created in vain in the job's log so it can be merged in AmoCRM.

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
      amocrm_contact_id = coalesce(l.amocrm_contact_id, p_contact_id),
      amocrm_lead_id = coalesce(l.amocrm_lead_id, p_amocrm_lead_id),
      amocrm_synced = l.amocrm_synced or (
        p_amocrm_lead_id is not null and (l.id = p_lead_id or l.amocrm_lead_id is null)
      ),
      amocrm_synced_at = case
        when p_amocrm_lead_id is not null and (l.id = p_lead_id or l.amocrm_lead_id is null) then pg_catalog.now()
        else l.amocrm_synced_at
      end
    where l.id = p_lead_id
      -- the live lead it was merged into (merges re-point earlier losers: one hop)
      or l.id = (select m.merged_into from public.traffic_leads as m where m.id = p_lead_id)
    returning 1
  )

  select exists (select 1 from changed)
$$;

comment on function public.record_amocrm_sync(uuid, bigint, bigint) is
'Stores the AmoCRM contact id as soon as it exists (so a retry reuses it) and, with the '
'AmoCRM lead id, marks the lead synced; an id is stored only where the lead has none (the '
'first stored wins). When the lead was merged meanwhile, the lead it was merged into gets '
'the ids too, unless it has its own.';
