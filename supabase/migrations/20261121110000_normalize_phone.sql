-- PROVISIONAL (lead's scratch, replaced by the phone branch): E.164 for +7 only.
create or replace function public.normalize_phone(p_phone text)
returns text
language sql
immutable
parallel safe
set search_path = ''
as $$
  select case
    when d ~ '^[78][0-9]{10}$' then '+7' || pg_catalog.substr(d, 2)
    when d ~ '^[0-9]{10}$' then '+7' || d
  end
  from (select pg_catalog.regexp_replace(p_phone, '\D', '', 'g') as d) as s
$$;
comment on function public.normalize_phone(text) is 'provisional';
revoke all on function public.normalize_phone(text) from public, anon;
grant execute on function public.normalize_phone(text) to authenticated, service_role;
