-- A journey row written against a merged lead goes to the lead it was merged into; the
-- journey triggers compute a lead's stages from its current row.
--
-- Issue 3, item 2 (journey rows are never lost) and item 7 (attribution):
-- 1. Intake goes through find_or_create_unified_lead, which always writes to the live lead.
--    But the service role may insert a journey row itself (a payment webhook, a script) with
--    a lead id it read before a merge, or point a row at such an id by an update. The row
--    stayed on the merged lead: its stage was added to the merged lead's stages, so the
--    person's live lead, its funnel and the dashboard (which counts live leads only) never
--    showed it. Now the journey's insert and update triggers move such rows to the end of
--    the merge chain (private.live_lead) and record where they were written in
--    moved_from_lead_id, as a merge does for the rows it moves; the move is an update of the
--    journey, so the update trigger gives the live lead the stage. A row moved this way is
--    written to the live lead, with its locks, as if the caller had named it: in a
--    repeatable read transaction it fails (40001) when the live lead changed after the
--    snapshot, like any write to that lead. A statement whose rows all name live leads does
--    one lookup more, a fast-start probe whose plan does not depend on the statement's size.
-- 2. The update and delete triggers computed a lead's new stages from a copy of the lead read
--    before they locked it. Two transactions changing the journey of one lead (a stage
--    corrected in each, or rows deleted in each) wrote their results one after the other,
--    the second computed from the stages before the first: a stage disappeared from the
--    lead and from the dashboard although its journey row was there. Now the new stages are
--    computed from the lead's row as locked for the update (PostgreSQL re-reads it when
--    another transaction changed it meanwhile).

-- security definer: resolves merge chains with private.live_lead, which the roles that write
-- the journey (service_role) cannot reach; it only moves the rows it is given to the lead
-- their own lead was merged into.
create or replace function private.journey_rows_to_live_leads(p_rows bigint[], p_leads uuid[])
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_rows bigint [] := '{}'::bigint [];  -- the rows that name a merged lead
  v_merged uuid [] := '{}'::uuid [];  -- that lead
  v_live uuid [] := '{}'::uuid []; -- the live lead at the end of its merge chain
  v_moved integer;
begin
  for i in 1 .. coalesce(pg_catalog.cardinality(p_rows), 0) loop
    -- one index probe per row: the plan is the same for one row and for a million
    if exists (
      select 1 from public.traffic_leads as l where l.id = p_leads[i] and l.merged_into is not null
    ) then
      v_rows := v_rows || p_rows[i];
      v_merged := v_merged || p_leads[i];
      v_live := v_live || private.live_lead(p_leads[i]);
    end if;
  end loop;
  update public.traffic_lead_journey as j
  set lead_id = m.live_id, moved_from_lead_id = coalesce(j.moved_from_lead_id, m.merged_id)
  from rows from (pg_catalog.unnest(v_rows), pg_catalog.unnest(v_merged), pg_catalog.unnest(v_live)) as m (
    id, merged_id, live_id
  )
  where j.id = m.id and j.lead_id = m.merged_id;
  get diagnostics v_moved = row_count;
  return v_moved;
end;
$$;

comment on function private.journey_rows_to_live_leads(bigint[], uuid[]) is
'Journey triggers: of the given journey rows (ids, with the lead each names), moves those whose lead is '
'merged to the live lead at the end of its merge chain, keeping the merged lead in moved_from_lead_id. '
'Returns how many rows moved.';

revoke execute on function private.journey_rows_to_live_leads(bigint[], uuid[]) from public;

-- security definer: calls private.journey_rows_to_live_leads (see there); its own writes are
-- the stages of the leads the statement's rows name, as before.
create or replace function private.append_lead_stages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- a row written with the id of a merged lead moves to the live lead; the move is a journey
  -- update, whose trigger (private.refresh_lead_stages) gives the live lead the stage
  if exists (
    select 1
    from new_rows as n
    join public.traffic_leads as l on n.lead_id = l.id
    where l.merged_into is not null
  ) then
    perform private.journey_rows_to_live_leads(
      (select pg_catalog.array_agg(n.id order by n.id) from new_rows as n),
      (select pg_catalog.array_agg(n.lead_id order by n.id) from new_rows as n)
    );
  end if;
  -- look before updating: intake calls have added their stage to the lead already, and
  -- preparing an UPDATE costs more than this lookup
  if not exists (
    select 1
    from new_rows as n
    join public.traffic_leads as l on n.lead_id = l.id
    where l.merged_into is null and not (n.stage = any(l.stages))
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
    where t.merged_into is null and not (n.stage = any(t.stages))
    group by n.lead_id
  ) as a
  where l.id = a.lead_id;
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger on journey inserts: a row written against a merged lead moves to the live lead '
'(moved_from_lead_id keeps the id it was written with); the stages of the new rows are added to their '
'live leads (set-based, grouped once, so a bulk import updates each lead once); returns at once when '
'every lead is live and already has its new stages.';

-- the stages a statement took evidence away from: kept when another journey row of the lead
-- still has them, removed otherwise; stages of new row versions are added
-- security definer: calls private.journey_rows_to_live_leads (see there); its own writes are
-- the stages of the leads the statement's rows name, as before.
create or replace function private.refresh_lead_stages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- rows pointed at a merged lead move on to the live lead (that update runs this trigger
  -- again, for the live lead); the merged lead then loses the stage below, like a merge's
  if exists (
    select 1
    from new_rows as n
    join public.traffic_leads as l on n.lead_id = l.id
    where l.merged_into is not null
  ) then
    perform private.journey_rows_to_live_leads(
      (select pg_catalog.array_agg(n.id order by n.id) from new_rows as n),
      (select pg_catalog.array_agg(n.lead_id order by n.id) from new_rows as n)
    );
  end if;

  -- the new stages are computed from the lead's row being updated (l), not from a copy read
  -- before it was locked, so two transactions changing one lead's journey both count
  update public.traffic_leads as l
  set stages = coalesce(
    (
      select pg_catalog.array_agg(distinct s.stage order by s.stage)
      from pg_catalog.unnest(l.stages || v.present) as s (stage)
      where not (s.stage = any(v.gone))
    ),
    '{}'::text []
  )
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
  where
    l.id = v.lead_id
    and l.stages is distinct from coalesce(
      (
        select pg_catalog.array_agg(distinct s.stage order by s.stage)
        from pg_catalog.unnest(l.stages || v.present) as s (stage)
        where not (s.stage = any(v.gone))
      ),
      '{}'::text []
    );
  return null;
end;
$$;

comment on function private.refresh_lead_stages() is
'Statement trigger on journey updates: a row pointed at a merged lead moves on to the live lead; for '
'the stages of the old and new row versions, a lead keeps (or gains) each one it still has a journey '
'row with and loses the others; its other stages (written directly) are kept. Computed from the lead''s '
'row as locked; leads whose stages do not change are not written.';

create or replace function private.refresh_lead_stages_after_delete()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- computed from the lead's row being updated (l), as in private.refresh_lead_stages
  update public.traffic_leads as l
  set stages = coalesce(
    (
      select pg_catalog.array_agg(s.stage order by s.stage)
      from pg_catalog.unnest(l.stages) as s (stage)
      where not (s.stage = any(v.gone))
    ),
    '{}'::text []
  )
  from (
    select k.lead_id, pg_catalog.array_agg(k.stage) as gone
    from (select distinct o.lead_id, o.stage from old_rows as o) as k
    where not exists (
      select 1 from public.traffic_lead_journey as j
      where j.lead_id = k.lead_id and j.stage = k.stage
    )
    group by k.lead_id
  ) as v
  where l.id = v.lead_id and l.stages && v.gone;
  return null;
end;
$$;

comment on function private.refresh_lead_stages_after_delete() is
'Statement trigger on journey deletes: a lead loses the stages of the deleted rows that none of its '
'remaining journey rows has; its other stages (written directly) are kept. Computed from the lead''s '
'row as locked.';
