-- A targetologist's journey reads find their leads by index, not by scanning every lead.
--
-- Issue 3, item 8 (indexes the policies need): the journey policy looks up the leads whose
-- utm_source belongs to the requesting targetologist, merged leads included (their events
-- stay theirs until moved). The only index on traffic_leads.utm_source is partial (live
-- leads, for the dashboard), so that lookup read the whole of traffic_leads on every
-- targetologist read of traffic_lead_journey or the lead_journey view (a sequential scan
-- of 1M leads for one lead's events). Now the lookup is two branches, live and merged
-- leads, each with a partial index of its own: new leads add nothing to the merged one,
-- and a merge already writes a new index entry for merged_into. Same rows as before
-- (tests/test_access_matrix.py walks every cell).

create index traffic_leads_merged_utm_source_idx on public.traffic_leads (utm_source)
where merged_into is not null;

comment on index public.traffic_leads_merged_utm_source_idx is
'Merged leads by utm_source: with traffic_leads_live_utm_source_created_at_idx, lets the journey '
'policy find a targetologist''s leads, live and merged, without scanning traffic_leads.';

drop policy "journey is visible with its lead" on public.traffic_lead_journey;

create policy "journey is visible with its lead"
on public.traffic_lead_journey
for select
to authenticated
using (
  (select private.is_staff())
  or lead_id in (
    select l.id
    from public.traffic_leads as l
    where
      l.utm_source = any((select private.my_utm_sources())::text[])
      and l.merged_into is null
    union all
    select l.id
    from public.traffic_leads as l
    where
      l.utm_source = any((select private.my_utm_sources())::text[])
      and l.merged_into is not null
  )
);

comment on policy "journey is visible with its lead" on public.traffic_lead_journey is
'Staff see every event; a targetologist the events of leads (live or merged) whose utm_source is theirs.';
