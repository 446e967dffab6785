-- Traffic Dashboard people: teams of targetologists and their profiles.
--
-- Seed 000: traffic_users had a local password_hash login, so sales managers did not
-- exist in auth.users and could not see students. Here a traffic user *is* an auth
-- user (id references auth.users); authentication is Supabase Auth, no password column.
-- Targetologists read themselves and their team; admins manage everything; sales
-- managers read all (they work the leads these people bring).

-- Tables -------------------------------------------------------------------------------

create table public.traffic_teams (
  id uuid primary key default gen_random_uuid(),
  name text not null unique check (pg_catalog.length(pg_catalog.btrim(name)) between 1 and 200),
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now()
);

comment on table public.traffic_teams is 'Teams of targetologists (ad buyers).';

create table public.traffic_users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text not null check (email = pg_catalog.lower(pg_catalog.btrim(email)) and email like '%_@_%'),
  full_name text not null check (pg_catalog.length(pg_catalog.btrim(full_name)) between 1 and 200),
  team_id uuid references public.traffic_teams (id) on delete set null,
  is_active boolean not null default true,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now()
);

comment on table public.traffic_users is
'Traffic Dashboard profile of an auth user (targetologist, sales manager, admin). '
'No password column: authentication is Supabase Auth.';
comment on column public.traffic_users.team_id is 'The team the person works in; NULL = no team.';

create index traffic_users_team_id_idx on public.traffic_users (team_id);
create unique index traffic_users_email_key on public.traffic_users (email);

-- Grants (policies/traffic.yaml) ----------------------------------------------------------

grant select, insert, update, delete on public.traffic_teams to authenticated, service_role;
grant select, insert, update, delete on public.traffic_users to authenticated, service_role;

-- Helpers and triggers ---------------------------------------------------------------------

-- security definer: policies on traffic_users call it, so it must read traffic_users
-- without that table's RLS (otherwise the policy would recurse).
create or replace function private.current_team_id()
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return (select u.team_id from public.traffic_users as u where u.id = (select auth.uid()));
end;
$$;

comment on function private.current_team_id() is
'The team of the requesting user, or NULL. Use as (select private.current_team_id()).';

revoke all on function private.current_team_id() from public;
grant execute on function private.current_team_id() to authenticated, service_role;

create trigger traffic_teams_set_updated_at
before update on public.traffic_teams
for each row execute function private.set_updated_at();

create trigger traffic_users_set_updated_at
before update on public.traffic_users
for each row execute function private.set_updated_at();

-- RLS ----------------------------------------------------------------------------------

alter table public.traffic_teams enable row level security;
alter table public.traffic_users enable row level security;

create policy "staff see all teams and targetologists see their own"
on public.traffic_teams
for select
to authenticated
using (
  (select private.is_staff())
  or ((select private.has_role('targetologist')) and id = (select private.current_team_id()))
);

create policy "admins create teams"
on public.traffic_teams
for insert
to authenticated
with check ((select private.has_role('admin')));

create policy "admins update teams"
on public.traffic_teams
for update
to authenticated
using ((select private.has_role('admin')))
with check ((select private.has_role('admin')));

create policy "admins delete teams"
on public.traffic_teams
for delete
to authenticated
using ((select private.has_role('admin')));

create policy "staff see everyone and targetologists see themselves and their team"
on public.traffic_users
for select
to authenticated
using (
  (select private.is_staff())
  or (
    (select private.has_role('targetologist'))
    and (id = (select auth.uid()) or team_id = (select private.current_team_id()))
  )
);

create policy "admins create traffic users"
on public.traffic_users
for insert
to authenticated
with check ((select private.has_role('admin')));

create policy "admins update traffic users"
on public.traffic_users
for update
to authenticated
using ((select private.has_role('admin')))
with check ((select private.has_role('admin')));

create policy "admins delete traffic users"
on public.traffic_users
for delete
to authenticated
using ((select private.has_role('admin')));
