-- complete_outbox_jobs as PL/pgSQL, for speed; same behaviour.
--
-- Issue 5's queue benchmark (claim + complete, batches of 50, 4 workers), re-measured on a
-- quiet machine: 0.58x the minimal skip-locked loop (target 0.7x). complete_outbox_jobs
-- was a SQL function with `set search_path = ''`, which PostgreSQL 15 never inlines and,
-- called from a prepared statement, parses and plans again on every call: its two
-- data-modifying CTEs cost more to plan than to run for 50 jobs. PL/pgSQL keeps the plan
-- for the session.

create or replace function public.complete_outbox_jobs(
  p_worker text,
  p_ids bigint[],
  p_durations_ms integer[] default null,
  p_provider_refs text[] default null,
  p_log_status text default 'success',
  p_note text default null
)
returns setof bigint
language plpgsql
volatile
set search_path = ''
as $$
begin
  return query
  with finished as (
    update public.outbox_jobs as j
    set
      updated_at = pg_catalog.now(),
      status = 'done',
      completed_at = pg_catalog.now(),
      lease_owner = null,
      lease_expires_at = null
    where j.id = any(p_ids) and j.status = 'running' and j.lease_owner = p_worker
    returning j.id, j.service_name, j.action, j.attempts
  ),

  logged as (
    insert into public.integration_logs
    (job_id, service_name, action, status, attempt, duration_ms, provider_ref, error_message)
    select
      f.id,
      f.service_name,
      f.action,
      coalesce(p_log_status, 'success'),
      f.attempts,
      r.ms,
      r.ref,
      pg_catalog.left(p_note, 2000)
    from finished as f
    left join unnest(p_ids, p_durations_ms, p_provider_refs) as r (id, ms, ref) on f.id = r.id
    returning job_id
  )

  select l.job_id from logged as l;
end;
$$;

comment on function public.complete_outbox_jobs(text, bigint[], integer[], text[], text, text) is
'Marks jobs done that p_worker still leases and logs one row each (p_log_status success or '
'skipped); returns the ids it completed (a job whose lease was lost is not among them).';
