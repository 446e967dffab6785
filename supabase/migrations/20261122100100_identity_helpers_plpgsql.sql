-- The identity helpers of 20261121110050 as PL/pgSQL, for speed; same results.
--
-- Issue 3, lead intake benchmark: private.normalize_email and private.canonical_lead_source
-- were SQL functions with `set search_path = ''`, which PostgreSQL never inlines. Called
-- from PL/pgSQL (find_or_create_unified_lead, the identity trigger), such a function is
-- parsed and planned again in every transaction: about 50 µs each, a sixth of an intake
-- call. PL/pgSQL keeps its plans for the session. Strict: both gave NULL for NULL anyway.
-- tests/test_identity_helpers.py compares them with the first versions.

create or replace function private.normalize_email(p_email text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  v text := pg_catalog.lower(pg_catalog.btrim(p_email, e' \t\r\n\u00a0<>"'''));
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
'Email identity: trimmed and lower-cased when it looks like a deliverable address, else NULL '
'(an invalid email is kept raw on the lead but is not an identifier).';

create or replace function private.canonical_lead_source(p_source text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  k text := pg_catalog.translate(pg_catalog.lower(pg_catalog.btrim(p_source)), ' -', '__');
begin
  return case
    when k = '' then null
    when k in ('profitest', 'expresscourse') then k
    when pg_catalog.replace(k, '_', '') ~ '^prof+i?t+e?st' then 'profitest'
    when k ~ '^(express|ekspress|экспресс)' then 'expresscourse'
    else k
  end;
end;
$$;

comment on function private.canonical_lead_source(text) is
'Canonical lead source: lower-case, spaces/dashes as underscores; every spelling of the '
'legacy ''proftest'' typo becomes ''profitest'', express course variants ''expresscourse''.';
