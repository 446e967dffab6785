-- Kept app roles (traffic_users.suspended_roles) move only through (de)activation, and a
-- non-admin's role insert learns nothing about the user it names.
--
-- Security review of stop 23:
-- 1. authenticated had UPDATE and INSERT on every column of traffic_users, so an admin
--    could write suspended_roles (or change id) and have the definer trigger
--    restore_roles_of_reactivated_user grant those roles on reactivation: to themselves,
--    or as a dormant grant to someone else, with granted_by NULL, past the rule that
--    nobody grants themselves a role. The API roles now write only the profile's own
--    columns; suspended_roles is written by the triggers alone, id is set once on insert.
-- 2. private.refuse_roles_for_inactive_user runs before RLS's with-check, so any signed-in
--    user's insert into app_user_roles told them (55000 against 42501) whether an id
--    belonged to a deactivated Traffic user. It now checks only for callers who may grant
--    roles (admins, the service role, the owner); anyone else gets RLS's plain refusal.

revoke insert, update on public.traffic_users from authenticated;
grant insert (id, email, full_name, team_id, is_active) on public.traffic_users to authenticated;
grant update (email, full_name, team_id, is_active) on public.traffic_users to authenticated;

-- security definer: reads traffic_users whatever the granting user may see of it.
create or replace function private.refuse_roles_for_inactive_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- a signed-in user who is not an admin may grant nothing: RLS refuses the row after this
  -- trigger, and the trigger must not tell them first whether the user is deactivated
  if (select auth.uid()) is not null and not (select private.has_role('admin')) then
    return new;
  end if;
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
'BEFORE INSERT trigger on app_user_roles: no role for a deactivated Traffic user. Checks only '
'for callers who may grant roles; RLS refuses everyone else without telling them more.';
