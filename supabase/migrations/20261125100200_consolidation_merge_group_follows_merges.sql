-- consolidation_merge_group: leads merged meanwhile are followed to their live lead.
--
-- Issue 4 (Traffic stays live during a run; found by a hammer review): a batch reads the
-- live leads that hold a person's identifiers, then merges them. When a
-- find_or_create_unified_lead call merged those leads into another one in between, none of
-- the leads passed was live any more: the function returned NULL, the batch tried to give
-- the person's identifiers to lead NULL (23502) and the whole run failed (a re-run
-- completed). Now each lead passed stands for its live lead (private.live_lead): those are
-- locked and, when one of them was merged while this waited for its lock, looked up again.
-- When none exists any more (deleted), 40001 with a hint: the batch is applied again.

create or replace function private.consolidation_merge_group(p_leads uuid[], p_matched_on jsonb)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_live uuid[];
  v_winner uuid;
  v_loser uuid;
begin
  if p_leads is null or pg_catalog.cardinality(p_leads) = 0 then
    raise exception using
      errcode = '22023',
      message = 'consolidation_merge_group needs at least one lead',
      hint = 'Pass the live leads the person''s identifiers point at.';
  end if;
  loop
    v_live := array(
      select distinct x.live
      from (select private.live_lead(p.id) as live from pg_catalog.unnest(p_leads) as p (id)) as x
      where x.live is not null
      order by x.live
    );
    perform 1 from public.traffic_leads as l where l.id = any(v_live) order by l.id for update;
    -- live once locked: a lead merged while this waited is followed to its winner again
    exit when not exists (
      select 1 from public.traffic_leads as l where l.id = any(v_live) and l.merged_into is not null
    );
    p_leads := v_live;
  end loop;
  select l.id into v_winner
  from public.traffic_leads as l
  where l.id = any(v_live) and l.merged_into is null
  order by l.created_at, l.lead_no
  limit 1;
  if v_winner is null then
    raise exception using
      errcode = '40001',
      message = 'none of the leads to merge exists any more',
      hint = 'They were deleted while the consolidation ran; the batch is applied again.';
  end if;
  for v_loser in
    select l.id from public.traffic_leads as l
    where l.id = any(v_live) and l.merged_into is null and l.id <> v_winner
    order by l.created_at, l.lead_no
  loop
    perform private.merge_leads(v_winner, v_loser, 'onai-db consolidate', p_matched_on);
  end loop;
  return v_winner;
end;
$$;

comment on function private.consolidation_merge_group(uuid[], jsonb) is
'Merges the live leads of the given leads (a merged one stands for the lead it was merged into) into the '
'oldest (private.merge_leads) and returns the survivor; 40001 when none of them exists any more.';

revoke all on function private.consolidation_merge_group(uuid[], jsonb) from public;
