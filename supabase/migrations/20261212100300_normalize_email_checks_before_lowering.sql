-- private.normalize_email checks the address before it lower-cases it, and lower-cases
-- A-Z only.
--
-- Identity review of stop 32: lower() ran first, and for some characters outside ASCII it
-- gives ASCII: the Kelvin sign (U+212A) became "k", and with some collations a dotted
-- capital I (U+0130) became "i". So 'a<U+0130>gul.t@mail.kz' was filed on the lead of
-- 'aigul.t@mail.kz', another person. lower()'s answer for non-ASCII text also depends on
-- the database's collation, which an immutable function must not. Now an address with any
-- character outside printable ASCII is no identifier (kept raw on the lead, as before for
-- every other non-ASCII address), and A-Z are lowered by translate().

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
  v text := pg_catalog.btrim(
    p_email,
    U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF<>"'''
  );
begin
  if v ~ '^[A-Za-z0-9!#$%&''*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$'
    and pg_catalog.length(v) <= 254
    and pg_catalog.strpos(v, '..') = 0
    and v !~ '(^\.|\.@|@-|-\.|\.-|-$)' then
    return pg_catalog.translate(v, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
  end if;
  return null;
end;
$$;

comment on function private.normalize_email(text) is
'Email identity: trimmed (of the blanks find_or_create_unified_lead trims, and <>"'') and '
'A-Z lower-cased when it looks like a deliverable ASCII address, else NULL (an invalid or '
'non-ASCII email is kept raw on the lead but is not an identifier).';

-- leads whose stored identity came from such a lowering are read again (only when one exists)
do $$
begin
  if exists (
    select 1
    from public.traffic_leads as l
    where
      l.merged_into is null
      and l.email_normalized is not null
      and l.email !~ '^[\x20-\x7e]*$'
      and private.normalize_email(l.email) is distinct from l.email_normalized
  ) then
    perform private.renormalize_lead_identities();
  end if;
end;
$$;
