-- Leads whose phone ends with an extension in brackets get their identity now.
--
-- 20261215100000 reads "+7 701 123 45 67 (доб. 12)" as +77011234567, as libphonenumber
-- does; before it such a phone was NULL, so each submission made a new lead with no
-- identifier. When a live lead holds such a phone, private.renormalize_lead_identities()
-- stores it as the new rules read it and merges the leads that are one person (README,
-- runbook "Phone rules changed"); otherwise nothing runs and nothing is locked beyond the
-- one read. Phones of earlier calls kept only in the journey's input are not re-read (a
-- known limit of renormalize_lead_identities).

do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      l.merged_into is null
      and l.phone_normalized is null
      and l.phone ~ '[(\[（［]'
      and public.normalize_phone(l.phone) is not null
  ) then
    perform private.renormalize_lead_identities();
  end if;
end;
$$;
