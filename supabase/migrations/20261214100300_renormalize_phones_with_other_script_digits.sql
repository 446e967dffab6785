-- Leads whose phone holds a digit of another script lose the number it was misread as.
--
-- 20261214100200 reads such a phone as no number (docs/phone.md, rule 1); before it, the
-- digits were taken for a label and the rest read as a number: '٠٠١ 415 555 2671' (+1 415
-- ...) was stored and registered as +74155552671, the key of someone else's number (found
-- by review). The old reading is the current one of what follows that label (the old
-- label: anything before the first ASCII or full-width digit or '+'). When a lead was
-- misread so, private.renormalize_lead_identities() stores what the current rules read
-- (README, runbook "Phone rules changed"), and the misread value's registration for that
-- lead is removed, so the number's owner gets a lead of their own (found by review: the
-- registration alone sent the owner to the misread lead). A registration is kept when a
-- live lead holds the value as its own phone. Otherwise nothing runs and nothing is locked
-- beyond the one read. A lead already merged because of such a value is not split (a
-- merge keeps no record of which value was misread).

do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      pg_catalog.octet_length(l.phone) <> pg_catalog.length(l.phone)
      and public.normalize_phone(l.phone) is null
      and public.normalize_phone(pg_catalog.regexp_replace(l.phone, '^[^0-9+０-９＋]+', '')) is not null
  ) then
    perform private.renormalize_lead_identities();
    delete from private.traffic_lead_identifiers as i
    using (
      select
        l.id,
        public.normalize_phone(pg_catalog.regexp_replace(l.phone, '^[^0-9+０-９＋]+', '')) as old_value
      from public.traffic_leads as l
      where
        pg_catalog.octet_length(l.phone) <> pg_catalog.length(l.phone)
        and public.normalize_phone(l.phone) is null
    ) as m
    where
      i.kind = 'phone'
      and i.value = m.old_value
      and i.lead_id = m.id
      and not exists (
        select 1 from public.traffic_leads as o
        where o.phone_normalized = m.old_value and o.merged_into is null
      );
  end if;
end;
$$;
