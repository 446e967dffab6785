-- append_lead_stages: look before updating.
--
-- Issue 3, lead intake benchmark: the statement trigger on traffic_lead_journey inserts ran
-- an UPDATE of traffic_leads for every insert, and preparing an UPDATE (opening the table's
-- eight indexes, its constraints and triggers) costs more than the lookup it starts with.
-- find_or_create_unified_lead has already added the stage to its lead by then, so the
-- update found nothing to do on every intake call. The trigger now first reads whether any
-- new row carries a stage its lead lacks, and updates only then (bulk imports, direct
-- inserts). Same results.

create or replace function private.append_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if not exists (
    select 1
    from new_rows as n
    join public.traffic_leads as l on n.lead_id = l.id
    where not (n.stage = any(l.stages))
  ) then
    return null;
  end if;
  update public.traffic_leads as l
  set stages = (
    select pg_catalog.array_agg(distinct s.stage order by s.stage)
    from (
      select pg_catalog.unnest(l.stages) as stage
      union
      select n.stage from new_rows as n where n.lead_id = l.id
    ) as s
  )
  where l.id in (select n.lead_id from new_rows as n)
    and exists (
      select 1 from new_rows as n
      where n.lead_id = l.id and not (n.stage = any(l.stages))
    );
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger: adds the stages of newly inserted journey rows to their leads (set-based, so a bulk '
'import updates each lead once); returns at once when every lead already has its new stages.';
