-- private.normalize_email trims the blanks find_or_create_unified_lead trims.
--
-- Issue 3, item 4 (found by review): the RPC trims a wide set of blanks from every
-- argument (line breaks, no-break, unicode and zero-width spaces, the byte order mark), then
-- reads the email; the identity trigger, which reads every directly written email with
-- normalize_email, trimmed only space, tab, CR, LF and the no-break space. An email written
-- straight into traffic_leads with a zero-width space at its end (copied from a messenger)
-- was no identifier (email_normalized NULL, no_identifier set), and the same address sent
-- through the RPC made a second live lead. Now both read it alike. Rows stored before keep
-- their stored values until private.renormalize_lead_identities() reads them again (README,
-- runbook, "Phone rules changed"), which also merges the persons this reveals.

create or replace function private.normalize_email(p_email text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  -- the RPC's blanks (find_or_create_unified_lead's c_blank), and the <>"' of a pasted address
  v text := pg_catalog.lower(pg_catalog.btrim(
    p_email,
    U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF<>"'''
  ));
begin
  if v ~ '^[a-z0-9!#$%&''*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$'
    and pg_catalog.length(v) <= 254
    and pg_catalog.strpos(v, '..') = 0
    and v !~ '(^\.|\.@|@-|-\.|\.-|-$)' then
    return v;
  end if;
  return null;
end;
$$;

comment on function private.normalize_email(text) is
'Email identity: trimmed (of the blanks find_or_create_unified_lead trims, and <>"'') and '
'lower-cased when it looks like a deliverable address, else NULL (an invalid email is kept raw '
'on the lead but is not an identifier).';
