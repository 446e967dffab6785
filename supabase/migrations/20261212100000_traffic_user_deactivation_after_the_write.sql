-- Deactivating a Traffic user moves their app roles only when the row is written, keeps who
-- granted each role, and is refused for one's own profile.
--
-- Security review of stop 32 (20261123100700 landed; its functions are replaced here):
-- 1. The BEFORE INSERT trigger deleted the user's app_user_roles as soon as a proposed row
--    said is_active = false. PostgreSQL fires BEFORE INSERT row triggers before the ON
--    CONFLICT check, so an upsert (PostgREST's Prefer: resolution=ignore-duplicates or
--    merge-duplicates, supabase-js .upsert()) of an existing user deleted their roles for
--    good: with "do nothing" the active user simply lost them; with "do update" the proposed
--    row that had kept them was thrown away and reactivation restored nothing. An admin
--    could delete their own admin role that way. The BEFORE trigger now only reads; the
--    roles move in an AFTER trigger, which fires for the row actually written.
-- 2. Reactivation granted the roles again with granted_by NULL and a new granted_at, which
--    the column's comment reads as "granted by the service role": an admin could launder a
--    grant of their own. The suspended rows are kept whole in
--    private.suspended_app_user_roles and come back as they were.
-- 3. An admin could deactivate their own profile and so drop their own roles (a sole admin
--    locked everyone out), past the rule that nobody changes their own roles. Refused now
--    (42501); another admin or the service role can.

create table private.suspended_app_user_roles (
  user_id uuid not null references public.traffic_users (id) on delete cascade,
  role public.app_role not null,
  granted_by uuid,
  granted_at timestamptz not null,
  suspended_at timestamptz not null default pg_catalog.now(),
  primary key (user_id, role)
);

comment on table private.suspended_app_user_roles is
'The app_user_roles rows of a deactivated Traffic user, kept whole (who granted each role and when) '
'and granted again as they were on reactivation. Written by the traffic_users triggers only.';

-- security definer: reads the user's app_user_roles whoever (de)activates them (admins see
-- only what RLS shows them); it writes nothing but NEW.
create or replace function private.suspend_roles_of_inactive_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  if not new.is_active and (tg_op = 'INSERT' or old.is_active) then
    if new.id = (select auth.uid()) then
      raise exception using
        errcode = '42501',
        message = 'you cannot deactivate your own Traffic profile',
        hint = 'Nobody changes their own roles: another admin, or the service role, can deactivate you.';
    end if;
    -- what the AFTER trigger moves, for the row PostgREST returns; no side effect here: this
    -- also runs for an upsert's proposed row that ON CONFLICT then throws away
    new.suspended_roles := coalesce(
      (
        select pg_catalog.array_agg(r.role order by r.role)
        from public.app_user_roles as r
        where r.user_id = new.id
      ),
      '{}'
    );
  elsif new.is_active and tg_op = 'UPDATE' and not old.is_active then
    new.suspended_roles := '{}';
  end if;
  return new;
end;
$$;

comment on function private.suspend_roles_of_inactive_user() is
'BEFORE trigger on traffic_users: refuses deactivating one''s own profile, shows the roles a user '
'set inactive is about to lose in suspended_roles, and clears it on reactivation. Writes nothing '
'else (move_roles_of_deactivated_user moves the roles once the row is written).';

-- security definer: moves the user's rows of app_user_roles for whoever deactivates them
-- (admins may not change roles through that table's policies for everyone, and the kept rows
-- live in the private schema); it writes nothing else.
create function private.move_roles_of_deactivated_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  v_roles public.app_role[];
begin
  with gone as (
    delete from public.app_user_roles as r
    where r.user_id = new.id
    returning r.user_id, r.role, r.granted_by, r.granted_at
  )

  insert into private.suspended_app_user_roles as s (user_id, role, granted_by, granted_at)
  select gone.user_id, gone.role, gone.granted_by, gone.granted_at
  from gone
  on conflict (user_id, role) do update
    set granted_by = excluded.granted_by, granted_at = excluded.granted_at, suspended_at = pg_catalog.now();

  select coalesce(pg_catalog.array_agg(s.role order by s.role), '{}')
  into v_roles
  from private.suspended_app_user_roles as s
  where s.user_id = new.id;

  -- a role granted between the BEFORE trigger's read and the delete: the row says so too
  if v_roles is distinct from new.suspended_roles then
    update public.traffic_users as u
    set suspended_roles = v_roles
    where u.id = new.id;
  end if;
  return null;
end;
$$;

comment on function private.move_roles_of_deactivated_user() is
'AFTER trigger on traffic_users: the app_user_roles rows of a user set inactive move, whole, into '
'private.suspended_app_user_roles (suspended_roles lists them).';

revoke all on function private.move_roles_of_deactivated_user() from public;

-- security definer: as above.
create or replace function private.restore_roles_of_reactivated_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into public.app_user_roles (user_id, role, granted_by, granted_at)
  select
    new.id,
    s.role,
    -- the granting admin's account may have been deleted meanwhile
    (select a.id from auth.users as a where a.id = s.granted_by),
    s.granted_at
  from private.suspended_app_user_roles as s
  where s.user_id = new.id
  on conflict (user_id, role) do nothing;

  -- users deactivated before 20261212100000 have their roles in suspended_roles only
  insert into public.app_user_roles (user_id, role, granted_by)
  select new.id, k.role, null
  from pg_catalog.unnest(old.suspended_roles) as k (role)
  on conflict (user_id, role) do nothing;

  delete from private.suspended_app_user_roles as s
  where s.user_id = new.id;
  return null;
end;
$$;

comment on function private.restore_roles_of_reactivated_user() is
'AFTER trigger on traffic_users: a user set active again gets back their suspended roles as they '
'were granted (who and when), and those listed in suspended_roles alone.';

create trigger traffic_users_move_roles
after insert or update of is_active on public.traffic_users
for each row when (not new.is_active)
execute function private.move_roles_of_deactivated_user();
