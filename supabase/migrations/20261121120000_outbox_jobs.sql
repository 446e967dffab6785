-- Integrations outbox: one durable queue for outgoing work (email, SMS, Telegram, AmoCRM).
--
-- Seed 000, PART 2 and tasks 2 and 5: e-mails that failed were never retried, there was
-- no record of what was sent, and the Tripwire welcome e-mail needed a plaintext
-- `generated_password`. Every outgoing call is now a row here, written in the same
-- transaction as the change that causes it, claimed by `onai-db worker` with
-- `for update skip locked` and a lease, retried with backoff, and parked as `dead`
-- after max_attempts. The queue API (claim, complete, fail, ...) is in 20261121120200.
-- Only the service role (the worker, the backend) touches it.

-- Types and tables -----------------------------------------------------------------------

create type public.outbox_kind as enum ('email', 'sms', 'telegram', 'amocrm');
comment on type public.outbox_kind is
'What an outbox job does: email (Resend), sms (Mobizon), telegram (Bot API), amocrm (CRM sync).';

create type public.outbox_status as enum ('pending', 'running', 'done', 'dead');
comment on type public.outbox_status is
'pending = waiting for run_after; running = leased by a worker; done = succeeded (or skipped); '
'dead = failed permanently or max_attempts reached (requeue_dead_outbox_jobs revives it).';

create table public.outbox_jobs (
  id bigint generated always as identity primary key,
  kind public.outbox_kind not null,
  payload jsonb not null default '{}'::jsonb,
  idempotency_key text not null unique
  check (pg_catalog.length(idempotency_key) between 1 and 256),
  status public.outbox_status not null default 'pending',
  attempts integer not null default 0 check (attempts >= 0),
  max_attempts integer not null default 8 check (max_attempts between 1 and 100),
  run_after timestamptz default pg_catalog.now(),
  lease_owner text,
  lease_expires_at timestamptz,
  last_error text,
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  completed_at timestamptz,
  service_name text generated always as (
    case kind
      when 'email' then 'resend'
      when 'sms' then 'mobizon'
      when 'telegram' then 'telegram'
      when 'amocrm' then 'amocrm'
    end
  ) stored,
  action text generated always as (
    coalesce(
      payload ->> 'action',
      case kind
        when 'email' then 'send_email'
        when 'sms' then 'send_sms'
        when 'telegram' then 'send_message'
        when 'amocrm' then 'sync_lead'
      end
    )
  ) stored,
  constraint outbox_jobs_payload_is_object check (pg_catalog.jsonb_typeof(payload) = 'object'),
  -- the audit found a plaintext password kept for the welcome e-mail: never again
  constraint outbox_jobs_payload_has_no_secrets check (
    not payload ?| array[
      'password', 'generated_password', 'temp_password', 'action_link',
      'access_token', 'refresh_token', 'api_key', 'token'
    ]
  ),
  constraint outbox_jobs_run_after_when_pending check ((status = 'pending') = (run_after is not null)),
  constraint outbox_jobs_lease_when_running check (
    (status = 'running') = (lease_owner is not null and lease_expires_at is not null)
  )
)
-- room on each page so that completing a job is a HOT update (no index touched)
with (fillfactor = 50);

comment on table public.outbox_jobs is
'Durable queue of outgoing integration work; one row per job, unique per idempotency_key. '
'Service role only. Payloads never hold passwords, links with tokens or API credentials.';
comment on column public.outbox_jobs.payload is
'What the worker needs to build the request (ids, recipient, template name); no secrets.';
comment on column public.outbox_jobs.idempotency_key is
'Caller-chosen key, e.g. tripwire_welcome/<user id>; enqueueing it twice returns the first job. '
'Also sent to Resend as the Idempotency-Key header.';
comment on column public.outbox_jobs.attempts is
'Attempts started so far (incremented at claim; a rate-limit snooze gives it back).';
comment on column public.outbox_jobs.run_after is
'Pending jobs only: not claimed before this time (backoff). NULL for running, done and dead '
'jobs, so that the claim index holds exactly the pending ones.';
comment on column public.outbox_jobs.lease_owner is 'Worker id holding the job while status = running.';
comment on column public.outbox_jobs.lease_expires_at is
'After this time the worker is presumed lost and the job becomes claimable again.';
comment on column public.outbox_jobs.service_name is
'integration_logs.service_name of the job: email -> resend, sms -> mobizon, telegram, amocrm.';
comment on column public.outbox_jobs.action is
'integration_logs.action of the job: payload.action, else send_email / send_sms / send_message / sync_lead.';
comment on column public.outbox_jobs.updated_at is
'Last change made by a queue function (set by the functions, not a trigger: the claim path is hot).';
comment on column public.outbox_jobs.last_error is 'Last failure, redacted (no secrets, no bodies).';

-- claim: the oldest due pending jobs. This is the only index besides the keys, and it
-- names no status: completing a job (running -> done) then changes no indexed column and
-- is a HOT update. Lease recovery, dead-job listings and retention scan the table; they
-- run once a minute or less, on a table of integration calls (thousands a day).
create index outbox_jobs_pending_idx on public.outbox_jobs (run_after, id) where run_after is not null;

-- Grants (policies/outbox.yaml) ------------------------------------------------------------

grant select, insert, update, delete on public.outbox_jobs to service_role;

-- RLS: no policy for authenticated or anon; the service role bypasses RLS ------------------

alter table public.outbox_jobs enable row level security;
