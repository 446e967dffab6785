-- Give back a number's registration that 20261214100300 removed from a lead its owner used.
--
-- 20261214100300 removed, from a lead whose phone held a digit of another script, the
-- registration of the number that phone had been misread as, so that the number's owner
-- gets a lead of their own. When the owner had already called with that number and been
-- found on the misread lead (their e-mail and event are on it), the removal split them: the
-- owner's next call with the number made a second live lead beside the one holding their
-- e-mail and history (found by a review of the upgrade path). Such a lead's journey shows
-- the owner's visit: an event whose phone, read by the current rules, is that number. For
-- each such live lead and number nobody holds, the registration comes back to the lead,
-- from its earliest such event; a number registered since (the owner's new lead) is left
-- as it is. Leads the removal left no such event on keep it removed. One read of the leads
-- with a non-ASCII phone; nothing is written when none qualifies.

insert into private.traffic_lead_identifiers (kind, value, lead_id, created_at)
select distinct on (v.value)
  'phone' as kind,
  v.value,
  v.lead_id,
  v.occurred_at as created_at
from (
  select
    l.id as lead_id,
    j.occurred_at,
    public.normalize_phone(j.input ->> 'phone') as value,
    public.normalize_phone(pg_catalog.regexp_replace(l.phone, '^[^0-9+０-９＋]+', '')) as old_value
  from public.traffic_leads as l
  inner join public.traffic_lead_journey as j on l.id = j.lead_id
  where
    l.merged_into is null
    and pg_catalog.octet_length(l.phone) <> pg_catalog.length(l.phone)
    and public.normalize_phone(l.phone) is null
    and j.input ? 'phone'
) as v
where v.value = v.old_value
order by v.value asc, v.occurred_at asc, v.lead_id asc
on conflict (kind, value) do nothing;
