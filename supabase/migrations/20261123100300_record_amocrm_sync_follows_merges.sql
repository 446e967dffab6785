-- record_amocrm_sync: the AmoCRM ids reach the live lead when the lead was merged while the
-- worker talked to AmoCRM.
--
-- Issue 3 (review of 20261121120800): the worker checks that a lead is live before its AmoCRM
-- calls, but a merge can happen during them. The ids were then stored on the merged lead
-- only; the surviving lead stayed unsynced, was queued again, and its job created a second
-- AmoCRM deal for the same person. Now the lead given is updated as before and, when it was
-- merged, the lead it was merged into gets the ids too, unless it has its own (its own deal
-- wins; the other deal stays recorded on the merged lead). Its next job then updates that
-- deal instead of creating one.

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
      amocrm_contact_id = case when l.id = p_lead_id then coalesce(p_contact_id, l.amocrm_contact_id)
        else coalesce(l.amocrm_contact_id, p_contact_id) end,
      amocrm_lead_id = case when l.id = p_lead_id then coalesce(p_amocrm_lead_id, l.amocrm_lead_id)
        else coalesce(l.amocrm_lead_id, p_amocrm_lead_id) end,
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
'AmoCRM lead id, marks the lead synced. When the lead was merged meanwhile, the lead it was '
'merged into gets the ids too, unless it has its own.';
