-- traffic_leads.stages names each stage once.
--
-- Issue 3, item 7 (the dashboard counts): both paths of traffic_dashboard count a lead once
-- per element of its stages (the stats triggers and the live count unnest it), so a direct
-- write by the service role of '{lead_captured,lead_captured}' counted the lead twice as
-- captured, and its conversion to the next stage halved. Every path of onai-db writes the
-- stages distinct (and sorted); 20261124100400 checked the form of each element but not
-- this. A repeated element is now refused (23514). The order of the elements stays free:
-- a direct writer may keep them in the order the person reached them.
--
-- A pattern with a back reference would say the same in the constraint itself, but costs
-- about 40 microseconds per row written; the function below about 2.

-- security invoker: a check constraint runs with the privileges of whoever writes the row
create or replace function private.stages_are_distinct(p_stages text[])
returns boolean
language plpgsql
immutable
parallel safe
set search_path = ''
as $$
begin
  for i in 2 .. coalesce(pg_catalog.cardinality(p_stages), 0) loop
    if p_stages[i] = any(p_stages[1:i - 1]) then
      return false;
    end if;
  end loop;
  return true;
end;
$$;

comment on function private.stages_are_distinct(text[]) is
'Whether no element of the array repeats an earlier one (NULL elements are left to '
'traffic_leads_stages_check). Backs the check constraint traffic_leads_stages_distinct_check.';

-- the roles that write leads evaluate the constraint (service role: inserts and every
-- column; sales managers and admins: name and metadata, and the row is checked again)
revoke all on function private.stages_are_distinct(text[]) from public;
grant execute on function private.stages_are_distinct(text[]) to authenticated, service_role;

-- rows written before, duplicates and all: each stage kept once, where it first appeared
-- (the statistics triggers take the removed counts away, as for any update of stages)
update public.traffic_leads as t
set
  stages = (
    select pg_catalog.array_agg(d.stage order by d.first_seen)
    from (
      select
        s.stage,
        pg_catalog.min(s.n) as first_seen
      from pg_catalog.unnest(t.stages) with ordinality as s (stage, n)
      group by s.stage
    ) as d
  )
where not private.stages_are_distinct(t.stages);

alter table public.traffic_leads
add constraint traffic_leads_stages_distinct_check check (private.stages_are_distinct(stages));

comment on constraint traffic_leads_stages_distinct_check on public.traffic_leads is
'No stage twice in stages: the dashboard counts a lead once per element.';
