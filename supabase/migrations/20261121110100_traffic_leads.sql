-- traffic_leads: one live lead per person, in the same database as attribution.
--
-- Seed 004 (phases 1 and 3): leads lived in Landing DB (landing_leads, lead_tracking,
-- unified_lead_tracking) while attribution lived in Traffic DB, so no single query
-- could say which targetologist brought a lead. Seed 000: no unique constraints on
-- email/phone, no phone normalisation, UTM lost between systems, missing indexes.
--
-- Identity columns (phone_normalized, email_normalized, no_identifier) are derived from
-- the raw values by a trigger on every write of phone or email, so they can never
-- disagree with them (a plain trigger rather than generated columns: generated columns
-- are recomputed on every UPDATE, and most updates — flags, stages — never touch
-- identity). Partial unique indexes make two live leads with the same phone or email
-- impossible. A merged lead is kept, pointing at
-- the survivor through merged_into. Every column of the legacy landing_leads is here.

-- Tables -------------------------------------------------------------------------------

create table public.traffic_leads (
  id uuid primary key default gen_random_uuid(),
  lead_no bigint generated always as identity unique,
  name text check (pg_catalog.length(name) <= 200),
  email text check (pg_catalog.length(email) <= 320),
  email_normalized text,
  phone text check (pg_catalog.length(phone) <= 64),
  phone_normalized text,
  source text check (pg_catalog.length(source) <= 100),
  source_raw text check (pg_catalog.length(source_raw) <= 100),
  metadata jsonb not null default '{}'::jsonb
  check (pg_catalog.jsonb_typeof(metadata) = 'object' and pg_catalog.pg_column_size(metadata) <= 65536),
  -- AmoCRM
  amocrm_lead_id bigint,
  amocrm_contact_id bigint,
  amocrm_synced boolean not null default false,
  amocrm_synced_at timestamptz,
  -- outreach
  email_sent boolean not null default false,
  sms_sent boolean not null default false,
  email_clicked boolean not null default false,
  email_clicked_at timestamptz,
  sms_clicked boolean not null default false,
  sms_clicked_at timestamptz,
  click_count integer not null default 0 check (click_count >= 0),
  -- first touch that carried UTM, and the latest one
  first_utm_source text check (pg_catalog.length(first_utm_source) <= 255),
  first_utm_medium text check (pg_catalog.length(first_utm_medium) <= 255),
  first_utm_campaign text check (pg_catalog.length(first_utm_campaign) <= 255),
  first_utm_content text check (pg_catalog.length(first_utm_content) <= 255),
  first_utm_term text check (pg_catalog.length(first_utm_term) <= 255),
  first_touch_at timestamptz,
  last_utm_source text check (pg_catalog.length(last_utm_source) <= 255),
  last_utm_medium text check (pg_catalog.length(last_utm_medium) <= 255),
  last_utm_campaign text check (pg_catalog.length(last_utm_campaign) <= 255),
  last_utm_content text check (pg_catalog.length(last_utm_content) <= 255),
  last_utm_term text check (pg_catalog.length(last_utm_term) <= 255),
  last_touch_at timestamptz,
  stages text[] not null default '{}'::text[],
  utm_source text generated always as (pg_catalog.lower(pg_catalog.btrim(first_utm_source))) stored,
  -- provenance and merges
  legacy_source_table text,
  legacy_id text,
  merged_into uuid references public.traffic_leads (id),
  merged_at timestamptz,
  no_identifier boolean not null default true,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint traffic_leads_merge_consistent check ((merged_into is null) = (merged_at is null)),
  constraint traffic_leads_not_merged_into_self check (merged_into <> id)
);

comment on table public.traffic_leads is
'Unified leads (formerly Landing landing_leads / lead_tracking / unified_lead_tracking): '
'one live row per person; write through find_or_create_unified_lead().';
comment on column public.traffic_leads.lead_no is
'Human-friendly lead number; also orders leads created in the same instant (older = smaller).';
comment on column public.traffic_leads.email_normalized is
'Email identity (trimmed, lower-case; NULL when the raw email is not a valid address).';
comment on column public.traffic_leads.phone_normalized is
'Phone identity: E.164 from normalize_phone(phone), or NULL (set by trigger).';
comment on column public.traffic_leads.source is 'Canonical source (proftest spellings -> profitest).';
comment on column public.traffic_leads.source_raw is 'The source exactly as first received.';
comment on column public.traffic_leads.utm_source is
'Attribution key: the first-touch utm_source, trimmed and lower-case; joins traffic_user_utm_sources.';
comment on column public.traffic_leads.stages is
'Distinct journey stages this lead has reached (sorted), kept in step with traffic_lead_journey by trigger; '
'lets the dashboard count a funnel without scanning the journey.';
comment on column public.traffic_leads.merged_into is
'NULL for a live lead; otherwise the lead this one was merged into (kept, never deleted).';
comment on column public.traffic_leads.no_identifier is
'True when neither phone nor email is usable: stored and flagged for review, never dropped.';
comment on column public.traffic_leads.legacy_source_table is
'Where the lead first came from when imported (landing_leads, lead_tracking, ...).';

create unique index traffic_leads_live_phone_key on public.traffic_leads (phone_normalized)
where merged_into is null and phone_normalized is not null;
create unique index traffic_leads_live_email_key on public.traffic_leads (email_normalized)
where merged_into is null and email_normalized is not null;
-- attribution and the dashboard: live leads of some UTM sources in a period, covering the
-- funnel stages so the dashboard is an index-only scan
create index traffic_leads_live_utm_source_created_at_idx on public.traffic_leads (utm_source, created_at)
include (stages) where merged_into is null;
create index traffic_leads_created_at_idx on public.traffic_leads (created_at);
create index traffic_leads_merged_into_idx on public.traffic_leads (merged_into);
create index traffic_leads_amocrm_unsynced_idx on public.traffic_leads (created_at)
where amocrm_synced = false and merged_into is null;

create table private.traffic_lead_identifiers (
  kind text not null check (kind in ('phone', 'email')),
  value text not null,
  lead_id uuid not null references public.traffic_leads (id),
  created_at timestamptz not null default pg_catalog.now(),
  primary key (kind, value)
);

comment on table private.traffic_lead_identifiers is
'Every normalized phone and email ever seen, and the lead it belongs to (moved to the survivor on merge). '
'Lets a later event find the person by a secondary phone or email.';

create index traffic_lead_identifiers_lead_id_idx on private.traffic_lead_identifiers (lead_id);

-- Grants (policies/leads.yaml) --------------------------------------------------------------

grant select on public.traffic_leads to authenticated;
grant update (name, metadata) on public.traffic_leads to authenticated;
grant select, insert, update, delete on public.traffic_leads to service_role;

-- Helpers and triggers ----------------------------------------------------------------------

-- security definer: reads traffic_user_utm_sources for the requesting user without that
-- table's RLS, once per statement, so the lead policy is a plain index condition.
create or replace function private.my_utm_sources()
returns text[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
  return (
    select coalesce(pg_catalog.array_agg(s.utm_source), '{}'::text [])
    from public.traffic_user_utm_sources as s
    where
      s.user_id = (select auth.uid())
      and exists (
        select 1 from public.app_user_roles as r
        where r.user_id = s.user_id and r.role = 'targetologist'
      )
  );
end;
$$;

comment on function private.my_utm_sources() is
'UTM sources owned by the requesting user while they hold the targetologist role (empty otherwise). '
'Use as (select private.my_utm_sources()).';

revoke all on function private.my_utm_sources() from public;
grant execute on function private.my_utm_sources() to authenticated, service_role;

-- security definer: the trigger fires for whoever writes a lead (service role, sales
-- managers), and it calls private.normalize_email, in a schema the API roles cannot use.
create or replace function private.set_lead_identity()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  new.phone_normalized := public.normalize_phone(new.phone);
  new.email_normalized := private.normalize_email(new.email);
  new.no_identifier := new.phone_normalized is null and new.email_normalized is null;
  return new;
end;
$$;

comment on function private.set_lead_identity() is
'Trigger: derives phone_normalized, email_normalized and no_identifier from the raw phone and email.';

revoke all on function private.set_lead_identity() from public;

create trigger traffic_leads_set_identity
before insert on public.traffic_leads
for each row execute function private.set_lead_identity();

-- on update only when an identity column really changes (most updates fill other gaps)
create trigger traffic_leads_reset_identity
before update of phone, email, phone_normalized, email_normalized, no_identifier
on public.traffic_leads
for each row
when (
  old.phone is distinct from new.phone
  or old.email is distinct from new.email
  or old.phone_normalized is distinct from new.phone_normalized
  or old.email_normalized is distinct from new.email_normalized
  or old.no_identifier is distinct from new.no_identifier
)
execute function private.set_lead_identity();

create trigger traffic_leads_set_updated_at
before update on public.traffic_leads
for each row execute function private.set_updated_at();

-- RLS ------------------------------------------------------------------------------------

alter table public.traffic_leads enable row level security;

create policy "staff see all leads and targetologists see leads attributed to them"
on public.traffic_leads
for select
to authenticated
using (
  (select private.is_staff())
  or utm_source = any((select private.my_utm_sources())::text[])
);

create policy "sales managers and admins work leads"
on public.traffic_leads
for update
to authenticated
using ((select private.is_staff()))
with check ((select private.is_staff()));
