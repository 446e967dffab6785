-- A deactivated Traffic user (traffic_users.is_active = false) loses their app roles until
-- they are active again.
--
-- Foundation (security review of stop 12): no policy or helper read is_active, so a
-- targetologist or sales manager an admin had deactivated kept seeing every lead they saw
-- before, until someone also removed their roles by hand. Every access rule reads
-- app_user_roles on every statement (private.has_role, private.is_staff, the dashboard, the
-- UTM-source helpers), so the one mechanism that covers all of them is that table itself:
-- deactivating a user moves their roles into traffic_users.suspended_roles, reactivating
-- moves them back (granted again, by nobody in particular), and no role can be granted to a
-- deactivated user meanwhile.

alter table public.traffic_users
add column suspended_roles public.app_role[] not null default '{}';

comment on column public.traffic_users.suspended_roles is
'The app roles the user held when deactivated (is_active = false); granted again on reactivation.';

-- security definer: moves the user's rows of app_user_roles for whoever (de)activates them
-- (admins may not change their own roles through that table's policies, and the service
-- role bypasses them anyway); it writes nothing else.
create or replace function private.suspend_roles_of_inactive_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not new.is_active and (tg_op = 'INSERT' or old.is_active) then
    with gone as (
      delete from public.app_user_roles as r
      where r.user_id = new.id
      returning r.role
    )

    select coalesce(pg_catalog.array_agg(gone.role order by gone.role), '{}') || new.suspended_roles
    into new.suspended_roles
    from gone;
  elsif new.is_active and tg_op = 'UPDATE' and not old.is_active then
    new.suspended_roles := '{}';
  end if;
  return new;
end;
$$;

comment on function private.suspend_roles_of_inactive_user() is
'BEFORE trigger on traffic_users: a user set inactive loses their app roles (kept in suspended_roles); '
'on reactivation suspended_roles is cleared (restore_roles_of_reactivated_user grants them again).';

revoke all on function private.suspend_roles_of_inactive_user() from public;

-- security definer: as above.
create or replace function private.restore_roles_of_reactivated_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.app_user_roles (user_id, role, granted_by)
  select new.id, s.role, null
  from pg_catalog.unnest(old.suspended_roles) as s (role)
  on conflict (user_id, role) do nothing;
  return null;
end;
$$;

comment on function private.restore_roles_of_reactivated_user() is
'AFTER trigger on traffic_users: a user set active again gets back the roles kept in suspended_roles.';

revoke all on function private.restore_roles_of_reactivated_user() from public;

-- security definer: reads traffic_users whatever the granting user may see of it.
create or replace function private.refuse_roles_for_inactive_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if exists (select 1 from public.traffic_users as u where u.id = new.user_id and not u.is_active) then
    raise exception using
      errcode = '55000',
      message = pg_catalog.format('user %s is deactivated: no role can be granted to them', new.user_id),
      hint = 'Set traffic_users.is_active = true first; their earlier roles come back with it.';
  end if;
  return new;
end;
$$;

comment on function private.refuse_roles_for_inactive_user() is
'BEFORE INSERT trigger on app_user_roles: no role for a deactivated Traffic user.';

revoke all on function private.refuse_roles_for_inactive_user() from public;

create trigger traffic_users_suspend_roles
before insert or update of is_active on public.traffic_users
for each row execute function private.suspend_roles_of_inactive_user();

create trigger traffic_users_restore_roles
after update of is_active on public.traffic_users
for each row when (new.is_active and not old.is_active)
execute function private.restore_roles_of_reactivated_user();

create trigger app_user_roles_refuse_inactive_user
before insert on public.app_user_roles
for each row execute function private.refuse_roles_for_inactive_user();

-- users deactivated before this migration lose their roles now
with gone as (
  delete from public.app_user_roles as r
  using public.traffic_users as u
  where u.id = r.user_id and not u.is_active
  returning r.user_id, r.role
)

update public.traffic_users as u
set suspended_roles = x.held_roles
from (
  select
    gone.user_id,
    pg_catalog.array_agg(gone.role order by gone.role) as held_roles
  from gone
  group by gone.user_id
) as x
where u.id = x.user_id;
