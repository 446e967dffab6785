-- integration_logs: one row per attempt at an outgoing integration call.
--
-- Seed 000, PART 2 ("Нет логирования", "Нет мониторинга") and task 2 sketch the table:
-- service_name, action, status, error_message, created_at. Added here: the outbox job it
-- belongs to, the attempt number, the duration and a provider reference (the id the
-- provider gave back). Written by the queue functions in the same transaction as the
-- job's status change, so a job and its log never disagree. Error messages are redacted
-- by the worker before they arrive; message bodies and credentials are never logged.

-- Tables -------------------------------------------------------------------------------

create table public.integration_logs (
  id bigint generated always as identity primary key,
  job_id bigint,
  service_name text not null check (service_name in ('resend', 'mobizon', 'telegram', 'amocrm', 'outbox')),
  action text not null check (pg_catalog.length(action) between 1 and 100),
  status text not null check (status in ('success', 'failed', 'skipped', 'pending')),
  attempt integer check (attempt >= 0),
  duration_ms integer check (duration_ms >= 0),
  error_message text check (pg_catalog.length(error_message) <= 2000),
  provider_ref text check (pg_catalog.length(provider_ref) <= 200),
  created_at timestamptz not null default pg_catalog.now()
);

comment on table public.integration_logs is
'One row per attempt at an integration call (seed 000 task 2). Service role only; '
'no secrets and no message bodies.';
comment on column public.integration_logs.service_name is
'resend, mobizon, telegram, amocrm; outbox for queue events (a lease that expired).';
comment on column public.integration_logs.status is
'success; failed (will be retried or the job is dead); skipped (nothing to do, e.g. a '
'deactivated Telegram group); pending (reserved for callers that log before sending).';
comment on column public.integration_logs.job_id is
'The outbox job (no foreign key on purpose: logs outlive pruned jobs, and the hot path '
'skips a referential check per attempt).';
comment on column public.integration_logs.attempt is 'The job''s attempt number this row records.';
comment on column public.integration_logs.provider_ref is
'What the provider returned to identify the result (Resend e-mail id, AmoCRM lead id, ...).';

-- append-only, so created_at follows the physical order: a BRIN index is tiny and nearly free
create index integration_logs_created_at_idx on public.integration_logs using brin (created_at);
-- job ids grow with time too: BRIN again (lookups of one job's attempts stay cheap enough)
create index integration_logs_job_id_idx on public.integration_logs using brin (job_id);
create index integration_logs_failed_idx on public.integration_logs (created_at desc)
where status = 'failed';

-- Grants (policies/outbox.yaml) ------------------------------------------------------------

grant select, insert, delete on public.integration_logs to service_role;

-- RLS: service role only --------------------------------------------------------------------

alter table public.integration_logs enable row level security;
