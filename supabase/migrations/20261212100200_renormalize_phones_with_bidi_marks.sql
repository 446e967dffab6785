-- Leads whose phone came wrapped in bidirectional marks get their identity now.
--
-- 20261212100100 reads such phones (a phone's "copy number" adds U+202A or U+202D ...
-- U+202C, U+200E, U+2066-U+2069); before it they were NULL, so each submission made a new
-- lead with no identifier (found by review). When a live lead holds such a phone,
-- private.renormalize_lead_identities() stores it as the new rules read it and merges the
-- leads that are one person (README, runbook "Phone rules changed"); otherwise nothing
-- runs and nothing is locked beyond the one read. Phones of earlier calls kept only in the
-- journey's input are not re-read (a known limit of renormalize_lead_identities).

do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      l.merged_into is null
      and l.phone_normalized is null
      and l.phone ~ U&'[\200E\200F\202A-\202E\2066-\2069]'
  ) then
    perform private.renormalize_lead_identities();
  end if;
end;
$$;
