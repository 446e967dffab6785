-- Legacy Landing DB (fixture for tests and the demo; never a migration of onai-db).
--
-- Seed 004 lists landing_leads' columns and lead_journey's; seed 000 names
-- lead_tracking, unified_lead_tracking and scheduled_notifications without their
-- columns: the shapes below are our reconstruction (docs/consolidation.md). Like the
-- original there are no unique constraints on email/phone and no foreign keys from
-- the journey, so duplicates and orphans are possible.

drop table if exists public.scheduled_notifications;
drop table if exists public.lead_journey;
drop table if exists public.unified_lead_tracking;
drop table if exists public.lead_tracking;
drop table if exists public.landing_leads;

create table public.landing_leads (
  id uuid primary key default gen_random_uuid(),
  email text,
  name text,
  phone text,
  phone_normalized text,
  source text,
  metadata jsonb default '{}'::jsonb,
  amocrm_lead_id bigint,
  amocrm_contact_id bigint,
  amocrm_synced boolean default false,
  email_sent boolean default false,
  sms_sent boolean default false,
  click_count integer default 0,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

create table public.lead_tracking (
  id bigserial primary key,
  name text,
  email text,
  phone text,
  source text,
  utm_source text,
  utm_medium text,
  utm_campaign text,
  utm_content text,
  utm_term text,
  page_url text,
  created_at timestamptz default now()
);

create table public.unified_lead_tracking (
  id uuid primary key default gen_random_uuid(),
  landing_lead_id uuid,
  full_name text,
  email text,
  phone text,
  source text,
  utm_source text,
  utm_medium text,
  utm_campaign text,
  utm_content text,
  utm_term text,
  current_stage text,
  metadata jsonb default '{}'::jsonb,
  created_at timestamptz default now(),
  updated_at timestamptz default now()
);

create table public.lead_journey (
  id bigserial primary key,
  lead_id uuid,
  stage text,
  source text,
  metadata jsonb default '{}'::jsonb,
  created_at timestamptz default now()
);

create table public.scheduled_notifications (
  id bigserial primary key,
  lead_id uuid,
  channel text,
  recipient text,
  template text,
  payload jsonb default '{}'::jsonb,
  scheduled_for timestamptz,
  status text default 'pending',
  sent_at timestamptz,
  created_at timestamptz default now()
);

create index idx_landing_leads_email on public.landing_leads (email);
create index lead_journey_lead_id_idx on public.lead_journey (lead_id);
