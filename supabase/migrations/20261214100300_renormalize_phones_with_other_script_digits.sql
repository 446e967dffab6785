-- Leads whose phone holds a digit of another script lose the number it was misread as.
--
-- 20261214100200 reads such a phone as no number (docs/phone.md, rule 1); before it, the
-- digits were taken for a label and the rest read as a number: '٠٠١ 415 555 2671' (+1 415
-- ...) was stored as +74155552671, the key of someone else's number (found by review).
-- When a live lead still holds such a value, private.renormalize_lead_identities() stores
-- what the current rules read (README, runbook "Phone rules changed"); otherwise nothing
-- runs and nothing is locked beyond the one read. A lead already merged because of such a
-- value is not split (a merge keeps no record of which value was misread), and the value
-- stays registered for that lead.

do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      l.merged_into is null
      and l.phone_normalized is not null
      and public.normalize_phone(l.phone) is null
      and pg_catalog.octet_length(l.phone) <> pg_catalog.length(l.phone)
  ) then
    perform private.renormalize_lead_identities();
  end if;
end;
$$;
