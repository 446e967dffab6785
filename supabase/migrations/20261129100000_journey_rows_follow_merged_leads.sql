-- A journey row written against a merged lead goes to the lead it was merged into.
--
-- Issue 3, item 2 (journey rows are never lost) and item 7 (attribution). Intake goes
-- through find_or_create_unified_lead, which always writes to the live lead. But the service
-- role may insert a journey row itself (a payment webhook, a script) with a lead id it read
-- before a merge, or point a row at such an id by an update. The row stayed on the merged
-- lead: its stage was added to the merged lead's stages, so the person's live lead, its
-- funnel and the dashboard (which counts live leads only) never showed it.
--
-- Now the journey's insert and update triggers move such rows to the end of the merge chain
-- (as private.live_lead does), and record where they were written in moved_from_lead_id, as a merge
-- does for the rows it moves. The move is an update of the journey, so the update trigger
-- gives the live lead the stage. No race with a merge: private.merge_leads runs with both
-- leads locked for update, which the journey's foreign-key check (key share) waits for, so
-- a row written meanwhile is either moved by the merge or sees the lead merged here.
-- Statements whose rows all name live leads (intake, the consolidation) do one lookup, as
-- before.

create or replace function private.append_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
declare
  v_on_merged boolean;  -- a new row names a merged lead: it moves to the live lead
  v_missing boolean;    -- a new row's stage is not among its live lead's stages yet
begin
  -- one look at the rows' leads; intake calls have added their stage to the lead already,
  -- and preparing an UPDATE costs more than this lookup
  select
    coalesce(pg_catalog.bool_or(l.merged_into is not null), false),
    coalesce(pg_catalog.bool_or(l.merged_into is null and not (n.stage = any(l.stages))), false)
  into v_on_merged, v_missing
  from new_rows as n
  join public.traffic_leads as l on n.lead_id = l.id;

  if v_on_merged then
    -- the journey's update trigger (private.refresh_lead_stages) gives the live lead the stage
    update public.traffic_lead_journey as j
    set lead_id = m.live_id, moved_from_lead_id = coalesce(j.moved_from_lead_id, n.lead_id)
    from new_rows as n
    join (
      -- each merged lead's chain to its end (the invoker may not call private.live_lead)
      with recursive chain (lead_id, next_id, hops) as (
        select distinct l.id, l.merged_into, 1
        from new_rows as r
        join public.traffic_leads as l on r.lead_id = l.id
        where l.merged_into is not null
        union all
        select c.lead_id, l.merged_into, c.hops + 1
        from chain as c
        join public.traffic_leads as l on c.next_id = l.id
        where l.merged_into is not null and c.hops < 100
      )
      select c.lead_id, c.next_id as live_id
      from chain as c
      join public.traffic_leads as l on c.next_id = l.id
      where l.merged_into is null
    ) as m on n.lead_id = m.lead_id
    where j.id = n.id;
  end if;

  if v_missing then
    update public.traffic_leads as l
    set stages = (
      select pg_catalog.array_agg(distinct s.stage order by s.stage)
      from pg_catalog.unnest(l.stages || a.added) as s (stage)
    )
    from (
      select n.lead_id, pg_catalog.array_agg(distinct n.stage) as added
      from new_rows as n
      join public.traffic_leads as t on n.lead_id = t.id
      where t.merged_into is null and not (n.stage = any(t.stages))
      group by n.lead_id
    ) as a
    where l.id = a.lead_id;
  end if;
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger on journey inserts: a row written against a merged lead moves to the live lead '
'(moved_from_lead_id keeps the id it was written with); the stages of the new rows are added to their '
'live leads (set-based, grouped once, so a bulk import updates each lead once). One lookup when every '
'lead is live and already has its new stages.';

-- the stages a statement took evidence away from: kept when another journey row of the lead
-- still has them, removed otherwise; stages of new row versions are added
create or replace function private.refresh_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- rows pointed at a merged lead move on to the live lead (this update runs this trigger
  -- again, for the live lead); the merged lead then loses the stage below, like a merge's
  if exists (
    select 1
    from new_rows as n
    join public.traffic_leads as l on n.lead_id = l.id
    where l.merged_into is not null
  ) then
    update public.traffic_lead_journey as j
    set lead_id = m.live_id, moved_from_lead_id = coalesce(j.moved_from_lead_id, n.lead_id)
    from new_rows as n
    join (
      -- each merged lead's chain to its end (the invoker may not call private.live_lead)
      with recursive chain (lead_id, next_id, hops) as (
        select distinct l.id, l.merged_into, 1
        from new_rows as r
        join public.traffic_leads as l on r.lead_id = l.id
        where l.merged_into is not null
        union all
        select c.lead_id, l.merged_into, c.hops + 1
        from chain as c
        join public.traffic_leads as l on c.next_id = l.id
        where l.merged_into is not null and c.hops < 100
      )
      select c.lead_id, c.next_id as live_id
      from chain as c
      join public.traffic_leads as l on c.next_id = l.id
      where l.merged_into is null
    ) as m on n.lead_id = m.lead_id
    where j.id = n.id;
  end if;

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
'Statement trigger on journey updates: a row pointed at a merged lead moves on to the live lead; for '
'the stages of the old and new row versions, a lead keeps (or gains) each one it still has a journey '
'row with and loses the others; its other stages (written directly) are kept. Leads whose stages do '
'not change are not written.';
