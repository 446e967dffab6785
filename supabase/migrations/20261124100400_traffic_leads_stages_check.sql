-- traffic_leads.stages holds stage names only.
--
-- Issue 3 (review): nothing checked the elements of traffic_leads.stages, which both paths
-- of traffic_dashboard count (the stats triggers and the live count unnest it). A direct
-- write by the service role of '{"", lead_captured}' counted a lead twice; a NULL element
-- or a name no journey row could carry showed up as a stage of its own. Each element now
-- has the journey's stage form (traffic_lead_journey_values_check: a lower-case letter, then
-- letters, digits, underscores), so a bad write is refused (23514)
-- instead of skewing the counts. The elements are joined with spaces and matched once, and
-- the join must hold exactly one space per gap (an element 'a b' would otherwise pass as
-- two). The rows written so far come from journey stages and satisfy it; the constraint is
-- validated here.

alter table public.traffic_leads
add constraint traffic_leads_stages_check check (
  pg_catalog.array_position(stages, null) is null
  and (
    pg_catalog.cardinality(stages) = 0
    or (
      pg_catalog.array_to_string(stages, ' ') ~ '^[a-z][a-z0-9_]*( [a-z][a-z0-9_]*)*$'
      -- one space per join, none inside an element
      and pg_catalog.length(pg_catalog.array_to_string(stages, ' '))
      - pg_catalog.length(pg_catalog.replace(pg_catalog.array_to_string(stages, ' '), ' ', ''))
      = pg_catalog.cardinality(stages) - 1
    )
  )
) not valid;

alter table public.traffic_leads validate constraint traffic_leads_stages_check;

comment on constraint traffic_leads_stages_check on public.traffic_leads is
'Every element of stages is a stage name as traffic_lead_journey allows it (no NULL, no empty string).';
