-- Lead identity helpers: email normalisation and the canonical lead source.
--
-- Seed 000: no unique constraints on email/phone and the source typo 'proftest'
-- (instead of 'profitest') spread over the Landing tables. These pure functions are
-- the single definition of "the same email" and "the same source" used by
-- find_or_create_unified_lead and by `onai-db consolidate`. Phone numbers have their
-- own migration (public.normalize_phone).

create or replace function private.normalize_email(p_email text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case
    when
      v ~ '^[a-z0-9!#$%&''*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)+$'
      and pg_catalog.length(v) <= 254
      and pg_catalog.strpos(v, '..') = 0
      and v !~ '(^\.|\.@|@-|-\.|\.-|-$)'
      then v
  end
  from (select pg_catalog.lower(pg_catalog.btrim(p_email, e' \t\r\n\u00a0<>"''')) as v) as s
$$;

comment on function private.normalize_email(text) is
'Email identity: trimmed and lower-cased when it looks like a deliverable address, else NULL '
'(an invalid email is kept raw on the lead but is not an identifier).';

revoke all on function private.normalize_email(text) from public;
-- traffic_leads.email_normalized is derived from it by trigger: whoever may write a lead's
-- email must be able to run it (the schema itself stays closed to the API roles).
grant execute on function private.normalize_email(text) to authenticated, service_role;

create or replace function private.canonical_lead_source(p_source text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case
    when k is null or k = '' then null
    when k in ('profitest', 'expresscourse') then k
    when pg_catalog.replace(k, '_', '') ~ '^prof+i?t+e?st' then 'profitest'
    when k ~ '^(express|ekspress|экспресс)' then 'expresscourse'
    else k
  end
  from (
    select pg_catalog.translate(pg_catalog.lower(pg_catalog.btrim(p_source)), ' -', '__') as k
  ) as s
$$;

comment on function private.canonical_lead_source(text) is
'Canonical lead source: lower-case, spaces/dashes as underscores; every spelling of the '
'legacy ''proftest'' typo becomes ''profitest'', express course variants ''expresscourse''.';

revoke all on function private.canonical_lead_source(text) from public;
