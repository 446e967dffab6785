-- private.renormalize_lead_identities(): after normalize_phone (or normalize_email)
-- changes, bring every stored lead in line with the new rules, one person per lead.
--
-- Issue 3, items 3-4 (review of the README's runbook): "Phone rules changed? ... re-normalize:
-- update traffic_leads set phone = phone" did nothing, since the identity trigger fires only
-- when a value changes. And a plain recomputation is not enough: two live leads whose numbers
-- the new rules read as one (the same person) break the one-live-lead-per-phone index, and a
-- number the new rules produce may already be another person's secondary identifier.
-- This function, run by the owner (postgres) in a quiet hour:
-- 1. locks traffic_leads against writers (intake calls wait until it commits) and reads every
--    lead's phone and email under the current rules;
-- 2. merges, into the older, every two live leads that the new rules make one person: the
--    same new phone or email, or a lead's new phone or email registered for another live
--    lead (private.traffic_lead_identifiers), exactly as find_or_create_unified_lead would;
-- 3. stores the new normalized values (the identity trigger computes them);
-- 4. registers each lead's new phone and email for its live lead.
-- Returns what it did; a second run does nothing. The old values stay registered too
-- (they were that person's identifiers).

create function private.renormalize_lead_identities()
returns table (leads_updated bigint, leads_merged bigint, identifiers_added bigint)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_pair record;
  v_a uuid;
  v_b uuid;
  v_winner uuid;
  v_loser uuid;
begin
  leads_merged := 0;
  -- share row exclusive: readers go on, writers (intake, consolidation) wait for the commit
  lock table public.traffic_leads in share row exclusive mode;

  -- 2. the pairs of live leads that the current rules make one person: the same phone or
  -- email, or one's phone or email registered for the other (secondary identifiers). The
  -- query reads the leads once, as they were before this loop's merges; each pair is then
  -- merged into the older, unless a previous merge joined its leads already (each lead stands
  -- for its live lead, so a chain of pairs ends in one lead).
  for v_pair in
    with fresh as materialized (
      select
        l.id,
        l.merged_into is null as live,
        public.normalize_phone(l.phone) as phone_new,
        private.normalize_email(l.email) as email_new
      from public.traffic_leads as l
    )

    select x.id as a, y.id as b, pg_catalog.jsonb_build_object('phone', x.phone_new) as matched_on
    from fresh as x
    inner join fresh as y on x.phone_new = y.phone_new and x.id < y.id
    where x.live and y.live
    union all
    select x.id, y.id, pg_catalog.jsonb_build_object('email', x.email_new)
    from fresh as x
    inner join fresh as y on x.email_new = y.email_new and x.id < y.id
    where x.live and y.live
    union all
    select x.id, coalesce(t.merged_into, t.id), pg_catalog.jsonb_build_object('phone', x.phone_new)
    from fresh as x
    inner join private.traffic_lead_identifiers as i on i.kind = 'phone' and x.phone_new = i.value
    inner join public.traffic_leads as t on i.lead_id = t.id
    where x.live and coalesce(t.merged_into, t.id) <> x.id
    union all
    select x.id, coalesce(t.merged_into, t.id), pg_catalog.jsonb_build_object('email', x.email_new)
    from fresh as x
    inner join private.traffic_lead_identifiers as i on i.kind = 'email' and x.email_new = i.value
    inner join public.traffic_leads as t on i.lead_id = t.id
    where x.live and coalesce(t.merged_into, t.id) <> x.id
  loop
    v_a := private.live_lead(v_pair.a);
    v_b := private.live_lead(v_pair.b);
    continue when v_a = v_b;
    select l.id into v_winner from public.traffic_leads as l
    where l.id in (v_a, v_b) order by l.created_at, l.lead_no limit 1;
    v_loser := case when v_winner = v_a then v_b else v_a end;
    -- merge_leads expects its caller to hold both rows (id order, like every other caller)
    perform 1 from public.traffic_leads as l where l.id in (v_a, v_b) order by l.id for update;
    perform private.merge_leads(v_winner, v_loser, 'renormalize_lead_identities', v_pair.matched_on);
    leads_merged := leads_merged + 1;
  end loop;

  -- 3. the values under the current rules (the identity trigger computes them from phone and
  -- email; a merge may have filled the winner's since the first step)
  update public.traffic_leads as l
  set
    phone_normalized = public.normalize_phone(l.phone),
    email_normalized = private.normalize_email(l.email)
  where
    l.phone_normalized is distinct from public.normalize_phone(l.phone)
    or l.email_normalized is distinct from private.normalize_email(l.email);
  get diagnostics leads_updated = row_count;

  -- 4. every lead's phone and email lead to its live lead
  insert into private.traffic_lead_identifiers (kind, value, lead_id)
  select distinct on (x.kind, x.value) x.kind, x.value, coalesce(t.merged_into, t.id)
  from (
    select 'phone' as kind, l.phone_normalized as value, l.id, l.created_at, l.lead_no
    from public.traffic_leads as l where l.phone_normalized is not null
    union all
    select 'email', l.email_normalized, l.id, l.created_at, l.lead_no
    from public.traffic_leads as l where l.email_normalized is not null
  ) as x
  inner join public.traffic_leads as t on x.id = t.id
  order by x.kind, x.value, x.created_at, x.lead_no
  on conflict (kind, value) do nothing;
  get diagnostics identifiers_added = row_count;

  return next;
end;
$$;

comment on function private.renormalize_lead_identities() is
'After normalize_phone or normalize_email changed: merges the live leads the new rules make one '
'person (older wins), stores the new normalized values and registers them. Locks traffic_leads '
'against writers while it runs; owner only (select * from private.renormalize_lead_identities()).';

revoke all on function private.renormalize_lead_identities() from public, anon, authenticated, service_role;
