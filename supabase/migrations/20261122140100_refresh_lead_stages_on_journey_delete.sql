-- traffic_leads.stages follows deleted journey rows too.
--
-- Issue 3, item 2 (review): stages were kept in step with the journey on insert
-- (append_lead_stages) and update (refresh_lead_stages) only. The service role may delete
-- journey rows (policies/leads.yaml, e.g. to erase a person's data), and a deleted
-- payment_succeeded event stayed in the lead's stages and in the dashboard's counts. A
-- statement trigger on delete now recomputes the stages of the leads whose rows were
-- deleted, set-based like the other two; the daily counts follow through the stats trigger
-- on traffic_leads.

create or replace function private.refresh_lead_stages_after_delete()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.traffic_leads as l
  set stages = coalesce(
    (
      select pg_catalog.array_agg(distinct j.stage order by j.stage)
      from public.traffic_lead_journey as j
      where j.lead_id = l.id
    ),
    '{}'::text []
  )
  where l.id in (select o.lead_id from old_rows as o);
  return null;
end;
$$;

comment on function private.refresh_lead_stages_after_delete() is
'Statement trigger: recomputes traffic_leads.stages for every lead whose journey rows were deleted.';

revoke all on function private.refresh_lead_stages_after_delete() from public;

create trigger traffic_lead_journey_refresh_stages_after_delete
after delete on public.traffic_lead_journey
referencing old table as old_rows
for each statement execute function private.refresh_lead_stages_after_delete();
