-- renormalize_lead_identities: no 23505 when stored values move between leads.
--
-- Issue 3, item 3 (found by a review of 20261126100000; the runbook's "Phone rules changed"
-- step could not finish): the function merged the leads the new rules make one person and
-- then stored the new values in one UPDATE, while the one-live-lead-per-phone (email)
-- indexes are checked row by row. A lead's new value that another live lead still held as
-- its old, stale value failed with 23505: lead A read +7...002 (stored ...001) and lead B
-- read ...003 (stored ...002), or two leads whose stored emails the new rules swap; which
-- one failed depended on the rows' physical order. A merge's fill could meet the same stale
-- value. Every run failed, so nothing was renormalized. (Leads that only ever came in
-- through find_or_create_unified_lead have every value registered and merged first; a lead
-- written straight into traffic_leads by the service role has not.)
--
-- Now, before it merges, it clears the stored phone_normalized and email_normalized of every
-- lead whose stored values the current rules read differently and of every live lead it is
-- about to merge, with traffic_leads_reset_identity disabled for that one statement inside
-- this transaction (other sessions never see it disabled; ALTER TABLE ... DISABLE TRIGGER
-- takes the share row exclusive lock the function already holds, and only the owner may run
-- it, as only the owner may run this function). No live lead then holds a value another
-- lead is about to get: two live leads with the same new value are merged first, and the
-- merges decide fills by the current rules (20261202100100). Then every cleared or stale
-- value is stored anew and registered, as before. A stale value that was never registered
-- is not registered now: the new rules read that number as another one. leads_updated is
-- the number of leads whose stored values the current rules read differently (as before,
-- when the run could finish); a second run still returns zeros.

create or replace function private.renormalize_lead_identities()
returns table (leads_updated bigint, leads_merged bigint, identifiers_added bigint)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_a uuid [];
  v_b uuid [];
  v_matched jsonb [];
  v_x uuid;
  v_y uuid;
  v_winner uuid;
  v_loser uuid;
begin
  leads_merged := 0;
  -- share row exclusive: readers go on, writers (intake, consolidation) wait for the commit
  lock table public.traffic_leads in share row exclusive mode;

  -- 1. every lead's phone and email under the current rules; the pairs of live leads that
  -- those rules make one person (the same phone or email, or one's phone or email registered
  -- for the other); and, trigger disabled, the stored values of the leads that are stale or
  -- about to be merged cleared, so that no live lead holds a value another is about to get
  alter table public.traffic_leads disable trigger traffic_leads_reset_identity;
  with fresh as materialized (
    select
      l.id,
      l.merged_into is null as live,
      public.normalize_phone(l.phone) as phone_new,
      private.normalize_email(l.email) as email_new,
      l.phone_normalized,
      l.email_normalized
    from public.traffic_leads as l
  ),

  stale as (
    select f.id from fresh as f
    where
      f.phone_normalized is distinct from f.phone_new
      or f.email_normalized is distinct from f.email_new
  ),

  pairs as (
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
  ),

  cleared as (
    update public.traffic_leads as l
    set phone_normalized = null, email_normalized = null
    where
      (l.phone_normalized is not null or l.email_normalized is not null)
      and l.id in (
        select s.id from stale as s
        union
        select p.a from pairs as p
        union
        select p.b from pairs as p
      )
    returning l.id
  )

  select
    (select pg_catalog.count(*) from stale),
    coalesce(pg_catalog.array_agg(p.a), '{}'),
    coalesce(pg_catalog.array_agg(p.b), '{}'),
    coalesce(pg_catalog.array_agg(p.matched_on), '{}')
  into leads_updated, v_a, v_b, v_matched
  from pairs as p;  -- cleared runs to completion unread, like every data-modifying with query
  alter table public.traffic_leads enable trigger traffic_leads_reset_identity;

  -- 2. each pair merged into the older, unless a previous merge joined its leads already
  -- (each lead stands for its live lead, so a chain of pairs ends in one lead)
  for v_i in 1 .. coalesce(pg_catalog.array_length(v_a, 1), 0) loop
    v_x := private.live_lead(v_a[v_i]);
    v_y := private.live_lead(v_b[v_i]);
    continue when v_x = v_y;
    select l.id into v_winner from public.traffic_leads as l
    where l.id in (v_x, v_y) order by l.created_at, l.lead_no limit 1;
    v_loser := case when v_winner = v_x then v_y else v_x end;
    -- merge_leads expects its caller to hold both rows (id order, like every other caller)
    perform 1 from public.traffic_leads as l where l.id in (v_x, v_y) order by l.id for update;
    perform private.merge_leads(v_winner, v_loser, 'renormalize_lead_identities', v_matched[v_i]);
    leads_merged := leads_merged + 1;
  end loop;

  -- 3. the values under the current rules, for the leads cleared or still stale (the
  -- identity trigger computes them from phone and email)
  update public.traffic_leads as l
  set
    phone_normalized = public.normalize_phone(l.phone),
    email_normalized = private.normalize_email(l.email),
    no_identifier = public.normalize_phone(l.phone) is null and private.normalize_email(l.email) is null
  where
    l.phone_normalized is distinct from public.normalize_phone(l.phone)
    or l.email_normalized is distinct from private.normalize_email(l.email)
    or l.no_identifier is distinct from (
      public.normalize_phone(l.phone) is null and private.normalize_email(l.email) is null
    );

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
'person (older wins), stores the new normalized values and registers them; leads_updated counts '
'the leads whose stored values the new rules read differently. Locks traffic_leads against writers '
'while it runs; owner only (select * from private.renormalize_lead_identities()).';
