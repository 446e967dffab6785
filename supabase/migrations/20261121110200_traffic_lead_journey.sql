-- traffic_lead_journey: every step a lead takes, never lost.
--
-- Seed 004: lead_journey (proftest_submitted, expresscourse_clicked,
-- expresscourse_submitted, payment_*) lived in Landing DB, away from the leads'
-- attribution. Here each event belongs to a lead (no cascade: a lead with a journey
-- cannot be deleted), keeps the raw input it came with, and carries an optional
-- idempotency key so a retried webhook is recorded once.

create table public.traffic_lead_journey (
  id bigint generated always as identity primary key,
  lead_id uuid not null references public.traffic_leads (id) on delete restrict,
  stage text not null check (stage ~ '^[a-z][a-z0-9_]{0,62}$'),
  source text check (pg_catalog.length(source) <= 100),
  utm_source text check (pg_catalog.length(utm_source) <= 255),
  utm_medium text check (pg_catalog.length(utm_medium) <= 255),
  utm_campaign text check (pg_catalog.length(utm_campaign) <= 255),
  utm_content text check (pg_catalog.length(utm_content) <= 255),
  utm_term text check (pg_catalog.length(utm_term) <= 255),
  input jsonb not null default '{}'::jsonb check (pg_catalog.jsonb_typeof(input) = 'object'),
  metadata jsonb not null default '{}'::jsonb
  check (pg_catalog.jsonb_typeof(metadata) = 'object' and pg_catalog.pg_column_size(metadata) <= 65536),
  event_key text check (pg_catalog.length(event_key) between 1 and 255),
  occurred_at timestamptz not null default pg_catalog.now(),
  created_at timestamptz not null default pg_catalog.now(),
  moved_from_lead_id uuid references public.traffic_leads (id),
  legacy_source_table text,
  legacy_id text
);

comment on table public.traffic_lead_journey is
'Customer journey events of unified leads (formerly Landing lead_journey); append-only.';
comment on column public.traffic_lead_journey.stage is
'proftest_submitted, expresscourse_clicked, expresscourse_submitted, payment_* ... (snake_case).';
comment on column public.traffic_lead_journey.input is
'The raw name / email / phone / source this event arrived with, so merging never loses a value.';
comment on column public.traffic_lead_journey.event_key is
'Idempotency key of the event (e.g. a webhook delivery id): the same key is recorded once.';
comment on column public.traffic_lead_journey.moved_from_lead_id is
'Set when the event was moved by a merge: the lead it was first recorded on.';

create unique index traffic_lead_journey_event_key_key on public.traffic_lead_journey (event_key);
create index traffic_lead_journey_lead_id_occurred_at_idx on public.traffic_lead_journey (lead_id, occurred_at);
create index traffic_lead_journey_moved_from_lead_id_idx on public.traffic_lead_journey (moved_from_lead_id)
where moved_from_lead_id is not null;

grant select on public.traffic_lead_journey to authenticated;
grant select, insert, update, delete on public.traffic_lead_journey to service_role;

alter table public.traffic_lead_journey enable row level security;

create policy "journey is visible with its lead"
on public.traffic_lead_journey
for select
to authenticated
using (
  (select private.is_staff())
  or lead_id in (
    select l.id
    from public.traffic_leads as l
    where l.utm_source = any((select private.my_utm_sources())::text[])
  )
);

-- Keep traffic_leads.stages in step with the journey ------------------------------------

create or replace function private.refresh_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.traffic_leads as l
  set stages = coalesce(
    (
      select pg_catalog.array_agg(distinct j.stage order by j.stage)
      from public.traffic_lead_journey as j
      where j.lead_id = l.id
    ),
    '{}'::text []
  )
  where l.id in (
    select n.lead_id from new_rows as n
    union
    select o.lead_id from old_rows as o
  );
  return null;
end;
$$;

comment on function private.refresh_lead_stages() is
'Statement trigger: recomputes traffic_leads.stages for every lead whose journey rows were updated '
'(moved by a merge, restaged).';

create or replace function private.append_lead_stages()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  update public.traffic_leads as l
  set stages = (
    select pg_catalog.array_agg(distinct s.stage order by s.stage)
    from (
      select pg_catalog.unnest(l.stages) as stage
      union
      select n.stage from new_rows as n where n.lead_id = l.id
    ) as s
  )
  where l.id in (select n.lead_id from new_rows as n)
    and exists (
      select 1 from new_rows as n
      where n.lead_id = l.id and not (n.stage = any(l.stages))
    );
  return null;
end;
$$;

comment on function private.append_lead_stages() is
'Statement trigger: adds the stages of newly inserted journey rows to their leads (set-based, so a bulk '
'import updates each lead once).';

revoke all on function private.refresh_lead_stages() from public;
revoke all on function private.append_lead_stages() from public;

create trigger traffic_lead_journey_append_stages
after insert on public.traffic_lead_journey
referencing new table as new_rows
for each statement execute function private.append_lead_stages();

create trigger traffic_lead_journey_refresh_stages
after update on public.traffic_lead_journey
referencing old table as old_rows new table as new_rows
for each statement execute function private.refresh_lead_stages();
