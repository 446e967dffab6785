-- Platform bootstrap: what hosted Supabase already provides before any migration runs.
--
-- This file is NOT a migration and is never pushed to a hosted project: there the
-- platform (the supabase/postgres image and GoTrue) has created all of it already.
-- `onai-db local up` runs it once, as the cluster superuser `supabase_admin`, on a
-- plain PostgreSQL 15 cluster so that `supabase db push` finds the same starting
-- point as on hosted Supabase (see ../shared/research/supabase-platform.md §1-§3, §9).
--
-- It is idempotent: every statement is guarded, so re-running it changes nothing.

-- Roles ------------------------------------------------------------------------------

do $roles$
begin
  if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
    create role anon nologin inherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
    create role authenticated nologin inherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
    create role service_role nologin inherit bypassrls;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'supabase_auth_admin') then
    create role supabase_auth_admin login noinherit nocreaterole noreplication;
  end if;
  if not exists (select from pg_catalog.pg_roles where rolname = 'postgres') then
    create role postgres login;
  end if;
end
$roles$;

-- `postgres` on hosted Supabase is demoted: no superuser, but CREATEDB, CREATEROLE,
-- REPLICATION and BYPASSRLS, and a member of the three API roles.
alter role postgres nosuperuser createdb createrole login replication bypassrls;
alter role service_role bypassrls;
alter role authenticator noinherit login;
grant anon, authenticated, service_role to authenticator;
grant anon, authenticated, service_role to postgres;

alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';
alter role authenticator set statement_timeout = '8s';
alter role authenticator set lock_timeout = '8s';
alter role postgres set search_path = "$user", public, extensions;

-- The database belongs to postgres, as on hosted projects; the exposed schemas are
-- what PostgREST serves (Supabase's default: public). Splinter reads this setting.
do $db$
begin
  execute format('alter database %I owner to postgres', current_database());
  execute format('alter database %I set pgrst.db_schemas = %L', current_database(), 'public');
end
$db$;

-- Schemas ----------------------------------------------------------------------------

alter schema public owner to postgres;
grant usage on schema public to postgres, anon, authenticated, service_role;

create schema if not exists extensions;
grant usage on schema extensions to postgres, anon, authenticated, service_role;
grant create on schema extensions to postgres;

create extension if not exists "uuid-ossp" with schema extensions;
create extension if not exists pgcrypto with schema extensions;

-- Supabase installs plpgsql_check on demand for `supabase db lint`; postgres may not
-- create it (it is not a trusted extension), so the platform provides it.
do $lint$
begin
  if exists (select from pg_catalog.pg_available_extensions where name = 'plpgsql_check') then
    create extension if not exists plpgsql_check with schema extensions;
  end if;
end
$lint$;

-- pg_cron is preloaded and created by the platform (supautils lets postgres create it
-- as superuser on hosted, always in pg_catalog, with its objects in schema cron).
-- Locally: created when the server preloads it and this is its database.
do $cron$
begin
  if exists (select from pg_catalog.pg_available_extensions where name = 'pg_cron')
     and pg_catalog.current_setting('shared_preload_libraries') like '%pg_cron%'
     and pg_catalog.current_setting('cron.database_name', true) = pg_catalog.current_database() then
    create extension if not exists pg_cron with schema pg_catalog;
    grant usage on schema cron to postgres;
    grant all on all tables in schema cron to postgres;
    grant execute on all functions in schema cron to postgres;
  end if;
end
$cron$;

-- Default privileges (2026-10-30 default: new tables are NOT exposed) ------------------
-- First the legacy grants the image makes, then the revoke Supabase applies when
-- "Default privileges for new entities" is off. Running both reproduces the exact
-- residue of hosted projects (TRUNCATE/REFERENCES/TRIGGER remain; functions fall back
-- to PostgreSQL's PUBLIC EXECUTE).

alter default privileges for role postgres in schema public
  grant all on tables to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on functions to postgres, anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  grant all on sequences to postgres, anon, authenticated, service_role;

alter default privileges for role postgres in schema public
  revoke select, insert, update, delete on tables from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke usage, select on sequences from anon, authenticated, service_role;
alter default privileges for role postgres in schema public
  revoke execute on functions from anon, authenticated, service_role;

-- auth schema (owned by GoTrue's role) -------------------------------------------------

create schema if not exists auth authorization supabase_auth_admin;
grant usage on schema auth to postgres, anon, authenticated, service_role;

create table if not exists auth.users (
  instance_id uuid,
  id uuid not null primary key,
  aud varchar(255),
  role varchar(255),
  email varchar(255),
  encrypted_password varchar(255),
  email_confirmed_at timestamptz,
  invited_at timestamptz,
  confirmation_token varchar(255),
  confirmation_sent_at timestamptz,
  recovery_token varchar(255),
  recovery_sent_at timestamptz,
  email_change_token_new varchar(255),
  email_change varchar(255),
  email_change_sent_at timestamptz,
  last_sign_in_at timestamptz,
  raw_app_meta_data jsonb,
  raw_user_meta_data jsonb,
  is_super_admin boolean,
  created_at timestamptz,
  updated_at timestamptz,
  phone text unique default null,
  phone_confirmed_at timestamptz,
  phone_change text default '',
  phone_change_token varchar(255) default '',
  phone_change_sent_at timestamptz,
  confirmed_at timestamptz generated always as (least(email_confirmed_at, phone_confirmed_at)) stored,
  email_change_token_current varchar(255) default '',
  email_change_confirm_status smallint default 0
    check (email_change_confirm_status >= 0 and email_change_confirm_status <= 2),
  banned_until timestamptz,
  reauthentication_token varchar(255) default '',
  reauthentication_sent_at timestamptz,
  is_sso_user boolean not null default false,
  deleted_at timestamptz,
  is_anonymous boolean not null default false
);
alter table auth.users owner to supabase_auth_admin;
create unique index if not exists users_email_partial_key on auth.users (email)
  where is_sso_user = false;
alter table auth.users enable row level security;
grant all on auth.users to postgres;
comment on table auth.users is 'Auth: Stores user login data within a secure schema.';

-- The four JWT helpers, with GoTrue's current definitions: the legacy per-claim GUC
-- wins over the JSON claims that PostgREST >= v11 sets.
create or replace function auth.uid() returns uuid
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.email() returns text
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.email', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

alter function auth.uid() owner to supabase_auth_admin;
alter function auth.role() owner to supabase_auth_admin;
alter function auth.email() owner to supabase_auth_admin;
alter function auth.jwt() owner to supabase_auth_admin;
comment on function auth.uid() is 'Deprecated. Use auth.jwt() -> ''sub'' instead.';
comment on function auth.role() is 'Deprecated. Use auth.jwt() -> ''role'' instead.';
comment on function auth.email() is 'Deprecated. Use auth.jwt() -> ''email'' instead.';

-- Marker so that `onai-db local status` can tell a bootstrapped cluster apart.
comment on schema extensions is 'onai-db platform bootstrap v1: hosted Supabase stand-in';
