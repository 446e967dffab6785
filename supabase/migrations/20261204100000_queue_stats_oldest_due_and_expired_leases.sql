-- The queue stats tell a worker that is not running from a retry that waits.
--
-- `oldest_pending_age` counts from a job's creation: a retry waiting out its backoff, or a
-- dead job just requeued, showed days although every worker was healthy, and a job whose
-- worker died (status running, lease expired) showed as an ordinary "running" (found by
-- review). Two columns are added at the end (the existing ones keep their meaning):
-- `oldest_due_age`, how long the longest-waiting due job has been due (from its run_after,
-- or from its creation when it was queued with an earlier run_after), and
-- `expired_leases`, running jobs whose lease has run out.

create or replace view public.outbox_queue_stats
with (security_invoker = true) as
select
  k.kind,
  count(j.id) filter (where j.status = 'pending') as pending,
  count(j.id) filter (where j.status = 'pending' and j.run_after <= pg_catalog.now()) as due,
  count(j.id) filter (where j.status = 'running') as running,
  count(j.id) filter (where j.status = 'dead') as dead,
  count(j.id) filter (where j.status = 'done') as done,
  pg_catalog.now() - min(j.created_at) filter (where j.status = 'pending') as oldest_pending_age,
  pg_catalog.now()
  - min(greatest(j.run_after, j.created_at)) filter (
    where j.status = 'pending' and j.run_after <= pg_catalog.now()
  ) as oldest_due_age,
  count(j.id) filter (
    where j.status = 'running' and j.lease_expires_at < pg_catalog.now()
  ) as expired_leases
from unnest(pg_catalog.enum_range(null::public.outbox_kind)) as k (kind)
left join public.outbox_jobs as j on k.kind = j.kind
group by k.kind;

comment on view public.outbox_queue_stats is
'Queue depth per kind: pending (of which due now), running, dead, done; the age of the oldest '
'pending job (from its creation); how long the oldest due job has been due (a large value '
'with due > 0: no worker serves this kind); running jobs whose lease has expired (their '
'worker is gone; lease recovery makes them pending again).';
