-- Merge a person's existing live leads before consolidation adds legacy rows to them.
--
-- DESIGN "Identity" and seed 004: when the legacy rows of one person match several
-- live leads already in Traffic, they are merged into the oldest with the same
-- semantics as find_or_create_unified_lead (private.merge_leads), then filled.

create or replace function private.consolidation_merge_group(p_leads uuid[], p_matched_on jsonb)
returns uuid
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_winner uuid;
  v_loser uuid;
begin
  if p_leads is null or pg_catalog.cardinality(p_leads) = 0 then
    raise exception using
      errcode = '22023',
      message = 'consolidation_merge_group needs at least one lead',
      hint = 'Pass the live leads the person''s identifiers point at.';
  end if;
  perform 1 from public.traffic_leads as l where l.id = any(p_leads) order by l.id for update;
  select l.id into v_winner
  from public.traffic_leads as l
  where l.id = any(p_leads) and l.merged_into is null
  order by l.created_at, l.lead_no
  limit 1;
  for v_loser in
    select l.id from public.traffic_leads as l
    where l.id = any(p_leads) and l.merged_into is null and l.id <> v_winner
    order by l.created_at, l.lead_no
  loop
    perform private.merge_leads(v_winner, v_loser, 'onai-db consolidate', p_matched_on);
  end loop;
  return v_winner;
end;
$$;

comment on function private.consolidation_merge_group(uuid[], jsonb) is
'Merges the given live leads into the oldest (private.merge_leads) and returns the survivor.';

revoke all on function private.consolidation_merge_group(uuid[], jsonb) from public;
