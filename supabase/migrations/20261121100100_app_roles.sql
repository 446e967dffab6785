-- App roles: who is an admin, targetologist, sales manager or student.
--
-- Seed 000 found four user stores and a `users` table mixing roles; this is the one
-- source of truth, keyed by auth.users. RLS asks `private.has_role()`, which reads this
-- table on every statement, so a revoked role stops working on the very next request
-- (JWT claims would stay valid until the token expires). Only admins (for other users)
-- and the service role can grant or revoke; nobody can change their own roles.

-- Types and tables -----------------------------------------------------------------------

create type public.app_role as enum ('admin', 'targetologist', 'sales_manager', 'student');
comment on type public.app_role is
'Application roles on top of Supabase''s anon / authenticated / service_role.';

create table public.app_user_roles (
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.app_role not null,
  granted_by uuid default auth.uid() references auth.users (id) on delete set null,
  granted_at timestamptz not null default pg_catalog.now(),
  primary key (user_id, role)
);

comment on table public.app_user_roles is
'Source of truth for app roles: one row per (user, role). Managed by admins and the service role.';
comment on column public.app_user_roles.granted_by is
'The admin who granted the role (NULL when granted by the service role or a deleted user).';

create index app_user_roles_granted_by_idx on public.app_user_roles (granted_by);

-- Grants (policies/roles.yaml) ---------------------------------------------------------

grant select, insert, delete on public.app_user_roles to authenticated;
grant select, insert, update, delete on public.app_user_roles to service_role;

-- Helpers --------------------------------------------------------------------------------

-- security definer: reads app_user_roles without going through its own RLS (a policy
-- on that table calls this helper, which would otherwise recurse) and without granting
-- the API roles wider access to the table.
create or replace function private.has_role(p_role public.app_role)
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  -- plpgsql, not sql: its query plan is cached for the session instead of being planned
  -- on every call, and every policy calls this once per statement
  return exists (
    select 1
    from public.app_user_roles as r
    where r.user_id = (select auth.uid()) and r.role = p_role
  );
end;
$$;

comment on function private.has_role(public.app_role) is
'True when the requesting user (auth.uid()) holds the app role. Use as (select private.has_role(...)).';

revoke all on function private.has_role(public.app_role) from public;
grant execute on function private.has_role(public.app_role) to authenticated, service_role;

-- security definer: as has_role, reads app_user_roles without its RLS.
create or replace function private.is_staff()
returns boolean
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return exists (
    select 1
    from public.app_user_roles as r
    where r.user_id = (select auth.uid()) and r.role in ('admin', 'sales_manager')
  );
end;
$$;

comment on function private.is_staff() is
'True for admins and sales managers, who see every lead and person. Use as (select private.is_staff()).';

revoke all on function private.is_staff() from public;
grant execute on function private.is_staff() to authenticated, service_role;

-- RLS ----------------------------------------------------------------------------------

alter table public.app_user_roles enable row level security;

create policy "users see their own roles and admins see all"
on public.app_user_roles
for select
to authenticated
using (user_id = (select auth.uid()) or (select private.has_role('admin')));

create policy "admins grant roles to other users"
on public.app_user_roles
for insert
to authenticated
with check (
  (select private.has_role('admin'))
  and user_id <> (select auth.uid())
  and granted_by = (select auth.uid())
);

create policy "admins revoke roles of other users"
on public.app_user_roles
for delete
to authenticated
using ((select private.has_role('admin')) and user_id <> (select auth.uid()));
