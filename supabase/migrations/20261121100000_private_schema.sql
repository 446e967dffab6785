-- Private schema: helpers that RLS policies call and tables the API never serves.
--
-- PostgREST serves only the schemas in supabase/config.toml ([api] schemas = public).
-- Nothing here is reachable over HTTP: the API roles get no USAGE on this schema, so a
-- direct call such as `select private.has_role('admin')` fails with 42501, while RLS
-- policies can still call the helpers (schema usage is checked when a policy is created).

create schema if not exists private;
comment on schema private is
'Helpers for RLS policies and internal tables; never exposed through PostgREST.';

revoke all on schema private from public;

-- Shared trigger function ------------------------------------------------------------

create or replace function private.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := pg_catalog.now();
  return new;
end;
$$;

comment on function private.set_updated_at() is
'Trigger: stamps updated_at with the transaction time on every update.';

revoke all on function private.set_updated_at() from public;
