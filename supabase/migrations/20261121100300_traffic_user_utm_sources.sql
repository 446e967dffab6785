-- UTM sources owned by targetologists: the key of lead attribution.
--
-- Seed 004: lead -> utm_source -> targetologist -> team. A UTM source belongs to at
-- most one targetologist (the primary key); values are stored trimmed and lower-case so
-- that `FB_Arystan` on a landing page and `fb_arystan` here match.

create table public.traffic_user_utm_sources (
  utm_source text primary key
  check (
    utm_source = pg_catalog.lower(pg_catalog.btrim(utm_source))
    and pg_catalog.length(utm_source) between 1 and 255
  ),
  user_id uuid not null references public.traffic_users (id) on delete cascade,
  created_at timestamptz not null default pg_catalog.now()
);

comment on table public.traffic_user_utm_sources is
'Which targetologist owns a utm_source (lower-case, trimmed); each source has at most one owner.';

create index traffic_user_utm_sources_user_id_idx on public.traffic_user_utm_sources (user_id);

grant select, insert, update, delete on public.traffic_user_utm_sources to authenticated, service_role;

-- security definer: reads traffic_users for the requesting user's team without that
-- table's RLS, so the policy below does one cheap lookup per statement.
create or replace function private.team_member_ids()
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return (
    select coalesce(pg_catalog.array_agg(u.id), '{}'::uuid [])
    from public.traffic_users as u
    where
      u.id = (select auth.uid())
      or (u.team_id is not null and u.team_id = (select private.current_team_id()))
  );
end;
$$;

comment on function private.team_member_ids() is
'Ids of the requesting user and everyone in their team (empty for anon).';

revoke all on function private.team_member_ids() from public;
grant execute on function private.team_member_ids() to authenticated, service_role;

alter table public.traffic_user_utm_sources enable row level security;

create policy "staff see all sources and targetologists see their team's"
on public.traffic_user_utm_sources
for select
to authenticated
using (
  (select private.is_staff())
  or (
    (select private.has_role('targetologist'))
    and array[user_id] <@ (select private.team_member_ids())
  )
);

create policy "admins assign sources"
on public.traffic_user_utm_sources
for insert
to authenticated
with check ((select private.has_role('admin')));

create policy "admins reassign sources"
on public.traffic_user_utm_sources
for update
to authenticated
using ((select private.has_role('admin')))
with check ((select private.has_role('admin')));

create policy "admins remove sources"
on public.traffic_user_utm_sources
for delete
to authenticated
using ((select private.has_role('admin')));
