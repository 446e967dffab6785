-- Leads whose email was pasted with a 'mailto:', a trailing full stop or comma, or inside
-- bidirectional marks get their identity now.
--
-- 20261214100400 reads such addresses; before it they were no identifier, so each
-- submission made a lead of its own (found by review). When a live lead holds one,
-- private.renormalize_lead_identities() stores it as the new rules read it and merges the
-- leads that are one person (README, runbook "Phone rules changed"); otherwise nothing runs
-- and nothing is locked beyond the one read. Emails of earlier calls kept only in the
-- journey's input are not re-read (a known limit of renormalize_lead_identities).

do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      l.merged_into is null
      and l.email_normalized is null
      and l.email is not null
      and private.normalize_email(l.email) is not null
  ) then
    perform private.renormalize_lead_identities();
  end if;
end;
$$;
