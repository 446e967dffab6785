-- A lead's stages: journey updates and deletes take away only the stages they removed the
-- evidence of; bulk inserts add stages in linear time.
--
-- Issue 3, items 1-2 (review of 20261121110200, 20261122100400 and 20261122140100):
-- 1. The update and delete triggers rebuilt traffic_leads.stages from the journey alone. A
--    stage written straight into traffic_leads by the service role (a lead imported with its
--    history, a payment recorded by hand) has no journey row, so any journey update of that
--    lead (a metadata correction, a merge moving rows) or delete wiped it, from the lead and
--    from the dashboard. Now only the stages of the changed or deleted rows are looked at:
--    one stays when the lead still has a journey row with it, the others go; every other
--    stage of the lead is kept.
-- 2. The insert trigger looked up each lead's new stages with a correlated scan of the
--    statement's transition table: quadratic, so a bulk insert of 150,000 journey rows for
--    existing leads ran for more than ten minutes. It now groups the new rows once.

create or replace function private.append_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- look before updating: intake calls have added their stage to the lead already, and
  -- preparing an UPDATE costs more than this lookup
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
    from pg_catalog.unnest(l.stages || a.added) as s (stage)
  )
  from (
    select n.lead_id, pg_catalog.array_agg(distinct n.stage) as added
    from new_rows as n
    join public.traffic_leads as t on n.lead_id = t.id
    where not (n.stage = any(t.stages))
    group by n.lead_id
  ) as a
  where l.id = a.lead_id;
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger: adds the stages of newly inserted journey rows to their leads (set-based, grouped '
'once, so a bulk import updates each lead once); returns at once when every lead already has its new '
'stages.';

-- the stages a statement took evidence away from: kept when another journey row of the lead
-- still has them, removed otherwise; stages of new row versions are added
create or replace function private.refresh_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.traffic_leads as l
  set stages = c.stages
  from (
    select
      v.lead_id,
      coalesce(
        (
          select pg_catalog.array_agg(distinct s.stage order by s.stage)
          from pg_catalog.unnest(t.stages || v.present) as s (stage)
          where not (s.stage = any(v.gone))
        ),
        '{}'::text []
      ) as stages
    from (
      select
        x.lead_id,
        coalesce(pg_catalog.array_agg(x.stage) filter (where x.present), '{}'::text []) as present,
        coalesce(pg_catalog.array_agg(x.stage) filter (where not x.present), '{}'::text []) as gone
      from (
        select
          k.lead_id,
          k.stage,
          exists (
            select 1 from public.traffic_lead_journey as j
            where j.lead_id = k.lead_id and j.stage = k.stage
          ) as present
        from (
          select o.lead_id, o.stage from old_rows as o
          union
          select n.lead_id, n.stage from new_rows as n
        ) as k
      ) as x
      group by x.lead_id
    ) as v
    join public.traffic_leads as t on v.lead_id = t.id
  ) as c
  where l.id = c.lead_id and l.stages is distinct from c.stages;
  return null;
end;
$$;

comment on function private.refresh_lead_stages() is
'Statement trigger on journey updates: for the stages of the old and new row versions, a lead keeps '
'(or gains) each one it still has a journey row with and loses the others; its other stages (written '
'directly) are kept. Leads whose stages do not change are not written.';

create or replace function private.refresh_lead_stages_after_delete()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.traffic_leads as l
  set stages = c.stages
  from (
    select
      v.lead_id,
      coalesce(
        (
          select pg_catalog.array_agg(s.stage order by s.stage)
          from pg_catalog.unnest(t.stages) as s (stage)
          where not (s.stage = any(v.gone))
        ),
        '{}'::text []
      ) as stages
    from (
      select k.lead_id, pg_catalog.array_agg(k.stage) as gone
      from (select distinct o.lead_id, o.stage from old_rows as o) as k
      where not exists (
        select 1 from public.traffic_lead_journey as j
        where j.lead_id = k.lead_id and j.stage = k.stage
      )
      group by k.lead_id
    ) as v
    join public.traffic_leads as t on v.lead_id = t.id
  ) as c
  where l.id = c.lead_id and l.stages is distinct from c.stages;
  return null;
end;
$$;

comment on function private.refresh_lead_stages_after_delete() is
'Statement trigger on journey deletes: a lead loses the stages of the deleted rows that none of its '
'remaining journey rows has; its other stages (written directly) are kept.';
