-- Journey triggers lock a lead before they read its journey: concurrent journey writers of
-- one lead keep each other's stages.
--
-- Issue 3, items 2 and 7 (found by a review of 20261129100000): the journey triggers
-- decided from their statement's snapshot whether a lead still had a journey row with a
-- stage, and nothing ordered them against other transactions writing the same lead's
-- journey. So, in read committed, with two connections of the service role:
-- - a journey row inserted for a stage the lead already had (a backfill, or an intake call)
--   while another transaction deleted the lead's other row with that stage: the delete did
--   not see the new row and took the stage off the lead; the journey had it, the lead and
--   the dashboard did not;
-- - two transactions each deleting one of a lead's two rows with a stage: each saw the
--   other's row, so neither took the stage away; the journey had none, the dashboard
--   counted it.
-- Now each trigger first locks the live leads its rows name (for no key update, in id
-- order) and reads their journey in later statements, which see what the transactions
-- holding a lead committed meanwhile. A merged lead is not locked: a row naming one moves to
-- the live lead, and that move's trigger locks the live lead; a merge holding the live lead
-- updates the merged one (re-pointing its earlier losers), so a lock on it here would
-- deadlock with that merge. The insert trigger locks even when every lead already has the
-- stage; its lock and its two lookups are one statement, and an intake call holds that
-- lock already. The lock also orders a journey insert against a merge of its lead: the
-- trigger sees the lead as merged and moves the row to the live lead.
-- In repeatable read a transaction keeps its snapshot after the lock, so it does not see a
-- concurrent writer's rows (PostgreSQL raises 40001 only when that writer changed the lead
-- itself); PostgREST runs requests in read committed.
-- Otherwise the same functions as in 20261129100000.

-- security definer: calls private.journey_rows_to_live_leads (see there); its own writes are
-- the stages of the leads the statement's rows name, as before.
create or replace function private.append_lead_stages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_merged bigint;  -- new rows that name a merged lead
  v_missing bigint;  -- new rows whose live lead lacks their stage
begin
  -- lock the live leads (id order), even those that already have the stage: a concurrent journey
  -- delete or update of the lead then waits for this transaction and sees its rows, instead
  -- of taking the stage away from its own snapshot. Counted from the rows as locked (the
  -- latest versions), in one statement: this replaces the two lookups intake calls made.
  select
    pg_catalog.count(*) filter (where s.id is null),
    pg_catalog.count(*) filter (where s.id is not null and not (n.stage = any(s.stages)))
  into v_merged, v_missing
  from new_rows as n
  left join (
    -- each live lead once, as locked; a merged one is not locked (its row moves to the live
    -- lead, whose lock the move takes): a merge holding that live lead updates the merged
    -- one as an earlier loser, so locking it here would deadlock with the merge
    select l.id, l.stages
    from public.traffic_leads as l
    where l.id in (select r.lead_id from new_rows as r) and l.merged_into is null
    order by l.id
    for no key update
  ) as s on n.lead_id = s.id;
  -- a row written with the id of a merged lead moves to the live lead; the move is a journey
  -- update, whose trigger (private.refresh_lead_stages) gives the live lead the stage
  if v_merged > 0 then
    perform private.journey_rows_to_live_leads(
      (select pg_catalog.array_agg(n.id order by n.id) from new_rows as n),
      (select pg_catalog.array_agg(n.lead_id order by n.id) from new_rows as n)
    );
  end if;
  if v_missing = 0 then
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
    inner join public.traffic_leads as t on n.lead_id = t.id
    where t.merged_into is null and not (n.stage = any(t.stages))
    group by n.lead_id
  ) as a
  where l.id = a.lead_id;
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger on journey inserts: locks the rows'' live leads (id order); a row written against a merged '
'lead moves to the live lead (moved_from_lead_id keeps the id it was written with); the stages of the new '
'rows are added to their live leads (set-based, grouped once, so a bulk import updates each lead once); '
'returns after the lock when every lead is live and already has its new stages.';

-- security definer: calls private.journey_rows_to_live_leads (see there); its own writes are
-- the stages of the leads the statement's rows name, as before.
create or replace function private.refresh_lead_stages()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- lock the leads first (in id order, so two such statements cannot deadlock), then read
  -- their journey in the next statements: in read committed each one sees what the
  -- transactions that held a lead committed meanwhile (their journey rows and deletes)
  perform
  from public.traffic_leads as l
  where
    l.id in (select o.lead_id from old_rows as o union select n.lead_id from new_rows as n)
    and l.merged_into is null  -- live leads only (see private.append_lead_stages)
  order by l.id
  for no key update;

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
'row as locked; leads whose stages do not change are not written. Locks the live leads (id order) before it '
'reads their journey, so it sees what concurrent journey writers of those leads committed.';

create or replace function private.refresh_lead_stages_after_delete()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  -- lock the leads first (in id order), then read their journey in the next statement, which
  -- sees what the transactions that held a lead committed meanwhile (see refresh_lead_stages)
  perform
  from public.traffic_leads as l
  where l.id in (select o.lead_id from old_rows as o) and l.merged_into is null
  order by l.id
  for no key update;

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
'row as locked, after locking the live leads (id order), so it sees what concurrent journey writers of those '
'leads committed.';
