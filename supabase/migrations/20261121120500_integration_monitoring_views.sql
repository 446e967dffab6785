-- Monitoring views over the outbox, integration_logs and telegram_groups.
--
-- Seed 000, task 2.3 asks for a dashboard: successes and failures per service per day,
-- the last errors, the AmoCRM sync state; PART 2.3 asks how many Telegram groups are
-- active. `onai-db monitor` renders these views. They are security_invoker, so they show
-- exactly what the caller may read: the service role (the tables are service role only).

-- Views --------------------------------------------------------------------------------

create view public.integration_daily_stats
with (security_invoker = true) as
select
  l.service_name,
  (l.created_at at time zone 'utc')::date as log_date,
  count(*) filter (where l.status = 'success') as successes,
  count(*) filter (where l.status = 'failed') as failures,
  count(*) filter (where l.status = 'skipped') as skipped,
  round(avg(l.duration_ms))::integer as avg_duration_ms
from public.integration_logs as l
group by l.service_name, (l.created_at at time zone 'utc')::date;

comment on view public.integration_daily_stats is
'Per service per UTC day: successful, failed and skipped attempts, mean duration.';

create view public.integration_recent_errors
with (security_invoker = true) as
select
  l.id,
  l.created_at,
  l.service_name,
  l.action,
  l.job_id,
  l.attempt,
  l.error_message
from public.integration_logs as l
where l.status = 'failed'
order by l.created_at desc, l.id desc
limit 50;

comment on view public.integration_recent_errors is 'The 50 most recent failed attempts, newest first.';

create view public.outbox_queue_stats
with (security_invoker = true) as
select
  k.kind,
  count(j.id) filter (where j.status = 'pending') as pending,
  count(j.id) filter (where j.status = 'pending' and j.run_after <= pg_catalog.now()) as due,
  count(j.id) filter (where j.status = 'running') as running,
  count(j.id) filter (where j.status = 'dead') as dead,
  count(j.id) filter (where j.status = 'done') as done,
  pg_catalog.now() - min(j.created_at) filter (where j.status = 'pending') as oldest_pending_age
from unnest(pg_catalog.enum_range(null::public.outbox_kind)) as k (kind)
left join public.outbox_jobs as j on k.kind = j.kind
group by k.kind;

comment on view public.outbox_queue_stats is
'Queue depth per kind: pending (of which due now), running, dead, done, and the age of the '
'oldest pending job.';

create view public.outbox_dead_jobs
with (security_invoker = true) as
select
  j.id,
  j.kind,
  j.idempotency_key,
  j.attempts,
  j.last_error,
  j.created_at,
  j.updated_at
from public.outbox_jobs as j
where j.status = 'dead';

comment on view public.outbox_dead_jobs is
'Jobs that failed for good; requeue_dead_outbox_jobs() revives them once the cause is fixed.';

create view public.telegram_group_stats
with (security_invoker = true) as
select
  g.group_type,
  count(*) filter (where g.is_active) as active,
  count(*) filter (where not g.is_active) as deactivated,
  max(g.deactivated_at) as last_deactivated_at
from public.telegram_groups as g
group by g.group_type;

comment on view public.telegram_group_stats is 'Telegram groups per type: active and deactivated.';

-- Grants (policies/outbox.yaml) ------------------------------------------------------------

grant select on public.integration_daily_stats to service_role;
grant select on public.integration_recent_errors to service_role;
grant select on public.outbox_queue_stats to service_role;
grant select on public.outbox_dead_jobs to service_role;
grant select on public.telegram_group_stats to service_role;
