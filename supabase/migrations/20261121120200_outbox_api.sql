-- Outbox queue API: enqueue, claim, complete, fail, release, extend, requeue, recover, prune.
--
-- The claim follows what every Postgres queue does (research §1): a CTE picks due rows
-- `order by run_after limit n for update skip locked` and one UPDATE leases them to the
-- worker (owner + expiry). Finishing a job checks the lease, so a worker whose lease
-- expired and was taken over cannot complete or fail the job a second time. Failures
-- back off exponentially with equal jitter (half fixed, half random) and end `dead`
-- after max_attempts. Every finish writes its integration_logs row in the same statement.
-- Service role only: these functions change any job.

-- API: enqueue ---------------------------------------------------------------------------

create or replace function public.enqueue_outbox_job(
  p_kind public.outbox_kind,
  p_payload jsonb,
  p_idempotency_key text,
  p_run_after timestamptz default null,
  p_max_attempts integer default 8
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_id bigint;
begin
  if p_kind is null or p_payload is null or pg_catalog.jsonb_typeof(p_payload) <> 'object' then
    raise exception 'an outbox job needs a kind and a JSON object payload'
    using errcode = '22023', hint = 'kind is email, sms, telegram or amocrm; payload like {"to": ...}.';
  end if;
  if p_idempotency_key is null or pg_catalog.length(p_idempotency_key) not between 1 and 256 then
    raise exception 'idempotency key must be 1 to 256 characters'
    using errcode = '22023', hint = 'Use <event>/<entity id>, e.g. tripwire_welcome/<user id>.';
  end if;
  if p_payload ?| array[
    'password', 'generated_password', 'temp_password', 'action_link',
    'access_token', 'refresh_token', 'api_key', 'token'
  ] then
    raise exception 'outbox payloads must not carry passwords, links with tokens or credentials'
    using errcode = '22023',
    hint = 'Store ids and template names only; the worker builds links and reads keys at send time.';
  end if;
  if p_max_attempts is null or p_max_attempts not between 1 and 100 then
    raise exception 'max_attempts must be between 1 and 100' using errcode = '22023';
  end if;

  insert into public.outbox_jobs as j (kind, payload, idempotency_key, run_after, max_attempts)
  values (p_kind, p_payload, p_idempotency_key, coalesce(p_run_after, pg_catalog.now()), p_max_attempts)
  on conflict (idempotency_key) do nothing
  returning j.id into v_id;

  if v_id is null then
    select j.id into v_id from public.outbox_jobs as j where j.idempotency_key = p_idempotency_key;
  end if;
  return v_id;
end;
$$;

comment on function public.enqueue_outbox_job(public.outbox_kind, jsonb, text, timestamptz, integer) is
'Adds a job unless one with the same idempotency key exists; returns the job id either way. '
'Call it in the transaction that causes the job (transactional outbox).';

revoke execute on function public.enqueue_outbox_job(public.outbox_kind, jsonb, text, timestamptz, integer)
from public, anon, authenticated;
grant execute on function public.enqueue_outbox_job(public.outbox_kind, jsonb, text, timestamptz, integer)
to service_role;

-- API: lease recovery (also run by pg_cron or by the worker) -----------------------------

create or replace function public.recover_expired_outbox_leases(p_limit integer default 1000)
returns integer
language sql
volatile
set search_path = ''
as $$
  with expired as (
    select j.id, j.lease_owner
    from public.outbox_jobs as j
    where j.status = 'running' and j.lease_expires_at <= pg_catalog.clock_timestamp()
    order by j.lease_expires_at
    limit greatest(coalesce(p_limit, 1000), 1)
    for update skip locked
  ),

  moved as (
    update public.outbox_jobs as j
    set
      updated_at = pg_catalog.now(),
      status = case when j.attempts >= j.max_attempts then 'dead' else 'pending' end::public.outbox_status,
      run_after = case when j.attempts >= j.max_attempts then null else pg_catalog.now() end,
      lease_owner = null,
      lease_expires_at = null,
      last_error = 'lease of worker ' || e.lease_owner || ' expired before the job finished'
    from expired as e
    where j.id = e.id
    returning j.id, j.kind, j.payload, j.attempts, j.last_error
  ),

  logged as (
    insert into public.integration_logs (job_id, service_name, action, status, attempt, error_message)
    select m.id, 'outbox', 'lease_expired', 'failed', m.attempts, m.last_error
    from moved as m
    returning 1
  )

  select count(*)::integer from logged
$$;

comment on function public.recover_expired_outbox_leases(integer) is
'Jobs whose worker vanished (lease expired) go back to pending, or to dead when out of '
'attempts; each is logged. pg_cron runs it every minute; workers run it when idle and '
'every minute.';

revoke execute on function public.recover_expired_outbox_leases(integer) from public, anon, authenticated;
grant execute on function public.recover_expired_outbox_leases(integer) to service_role;

-- API: claim -----------------------------------------------------------------------------

create or replace function public.claim_outbox_jobs(
  p_worker text,
  p_limit integer default 10,
  p_lease_seconds double precision default 60,
  p_kinds public.outbox_kind[] default null
)
returns setof public.outbox_jobs
language plpgsql
volatile
set search_path = ''
as $$
begin
  if p_worker is null or pg_catalog.length(pg_catalog.btrim(p_worker)) not between 1 and 200 then
    raise exception 'worker id must be a non-empty name of at most 200 characters'
    using errcode = '22023', hint = 'Pass the worker id, e.g. host:pid:thread.';
  end if;
  if p_limit is null or p_limit not between 1 and 1000 then
    raise exception 'claim limit must be between 1 and 1000' using errcode = '22023';
  end if;
  if p_lease_seconds is null or p_lease_seconds <= 0 or p_lease_seconds > 86400 then
    raise exception 'lease must be between 0 and 86400 seconds'
    using errcode = '22023', hint = 'Pick a lease longer than the slowest provider call.';
  end if;

  return query
  with candidates as (
    select j.id
    from public.outbox_jobs as j
    where
      j.run_after <= pg_catalog.now()
      and (p_kinds is null or j.kind = any(p_kinds))
    order by j.run_after, j.id
    limit p_limit
    for update skip locked
  )

  update public.outbox_jobs as j
  set
    updated_at = pg_catalog.now(),
    status = 'running',
    run_after = null,
    attempts = j.attempts + 1,
    lease_owner = p_worker,
    lease_expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_lease_seconds)
  from candidates as c
  where j.id = c.id
  returning j.*;
end;
$$;

comment on function public.claim_outbox_jobs(text, integer, double precision, public.outbox_kind[]) is
'Leases up to p_limit due jobs (oldest run_after first, optionally of some kinds) to p_worker '
'for p_lease_seconds; concurrent callers never get the same job (for update skip locked).';

revoke execute on function public.claim_outbox_jobs(text, integer, double precision, public.outbox_kind[])
from public, anon, authenticated;
grant execute on function public.claim_outbox_jobs(text, integer, double precision, public.outbox_kind[])
to service_role;

-- API: complete --------------------------------------------------------------------------

create or replace function public.complete_outbox_jobs(
  p_worker text,
  p_ids bigint[],
  p_durations_ms integer[] default null,
  p_provider_refs text[] default null,
  p_log_status text default 'success',
  p_note text default null
)
returns setof bigint
language sql
volatile
set search_path = ''
as $$
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

  select l.job_id from logged as l
$$;

comment on function public.complete_outbox_jobs(text, bigint[], integer[], text[], text, text) is
'Marks jobs done that p_worker still leases and logs one row each (p_log_status success or '
'skipped); returns the ids it completed (a job whose lease was lost is not among them).';

revoke execute on function public.complete_outbox_jobs(text, bigint[], integer[], text[], text, text)
from public, anon, authenticated;
grant execute on function public.complete_outbox_jobs(text, bigint[], integer[], text[], text, text)
to service_role;

-- API: fail ------------------------------------------------------------------------------

create or replace function public.fail_outbox_job(
  p_id bigint,
  p_worker text,
  p_error text,
  p_duration_ms integer default null,
  p_retry_in_seconds double precision default null,
  p_permanent boolean default false,
  p_count_attempt boolean default true,
  p_backoff_base_seconds double precision default 10,
  p_backoff_cap_seconds double precision default 3600
)
returns public.outbox_status
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_job public.outbox_jobs;
  v_attempts integer;
  v_status public.outbox_status;
  v_delay double precision;
begin
  if p_worker is null or pg_catalog.length(pg_catalog.btrim(p_worker)) not between 1 and 200 then
    raise exception 'worker id must be a non-empty name of at most 200 characters'
    using errcode = '22023', hint = 'Pass the worker id, e.g. host:pid:thread.';
  end if;
  if p_backoff_base_seconds is null or p_backoff_base_seconds < 0
     or p_backoff_cap_seconds is null or p_backoff_cap_seconds < p_backoff_base_seconds then
    raise exception 'backoff needs 0 <= base <= cap seconds' using errcode = '22023';
  end if;

  select * into v_job
  from public.outbox_jobs as j
  where j.id = p_id and j.status = 'running' and j.lease_owner = p_worker
  for update;
  if not found then
    return null;  -- the lease was lost (expired and taken over): nothing to record
  end if;

  v_attempts := case when coalesce(p_count_attempt, true) then v_job.attempts else v_job.attempts - 1 end;
  if coalesce(p_permanent, false) or v_attempts >= v_job.max_attempts then
    v_status := 'dead';
  else
    v_status := 'pending';
  end if;
  -- equal jitter: half of the exponential delay is fixed, the other half random
  v_delay := coalesce(
    p_retry_in_seconds,
    least(p_backoff_cap_seconds, p_backoff_base_seconds * 2.0 ^ least(greatest(v_attempts - 1, 0), 30))
    * (0.5 + pg_catalog.random() / 2)
  );

  update public.outbox_jobs as j
  set
    updated_at = pg_catalog.now(),
    status = v_status,
    attempts = v_attempts,
    run_after = case
      when v_status = 'pending' then pg_catalog.now() + pg_catalog.make_interval(secs => greatest(v_delay, 0))
    end,
    lease_owner = null,
    lease_expires_at = null,
    last_error = pg_catalog.left(coalesce(p_error, 'unknown error'), 2000)
  where j.id = p_id;

  insert into public.integration_logs (job_id, service_name, action, status, attempt, duration_ms, error_message)
  values (
    p_id,
    v_job.service_name,
    v_job.action,
    'failed',
    v_job.attempts,
    p_duration_ms,
    pg_catalog.left(coalesce(p_error, 'unknown error'), 2000)
  );
  return v_status;
end;
$$;

comment on function public.fail_outbox_job(
  bigint, text, text, integer, double precision, boolean, boolean, double precision, double precision
) is
'Records a failed attempt by the lease holder: pending again after exponential backoff with '
'jitter (or after p_retry_in_seconds when the provider said so), dead when p_permanent or out '
'of attempts. p_count_attempt = false gives the attempt back (rate-limit snooze). '
'Returns the new status, NULL when p_worker no longer holds the lease.';

revoke execute on function public.fail_outbox_job(
  bigint, text, text, integer, double precision, boolean, boolean, double precision, double precision
) from public, anon, authenticated;
grant execute on function public.fail_outbox_job(
  bigint, text, text, integer, double precision, boolean, boolean, double precision, double precision
) to service_role;

-- API: release and extend (graceful shutdown, long jobs) ---------------------------------

create or replace function public.release_outbox_jobs(p_worker text, p_ids bigint[])
returns integer
language sql
volatile
set search_path = ''
as $$
  with released as (
    update public.outbox_jobs as j
    set
      updated_at = pg_catalog.now(),
      status = 'pending',
      attempts = greatest(j.attempts - 1, 0),
      run_after = pg_catalog.now(),
      lease_owner = null,
      lease_expires_at = null
    where j.id = any(p_ids) and j.status = 'running' and j.lease_owner = p_worker
    returning 1
  )

  select count(*)::integer from released
$$;

comment on function public.release_outbox_jobs(text, bigint[]) is
'Gives claimed but unstarted jobs back (pending now, the attempt not counted): a worker '
'shutting down calls it for jobs it will not run.';

revoke execute on function public.release_outbox_jobs(text, bigint[]) from public, anon, authenticated;
grant execute on function public.release_outbox_jobs(text, bigint[]) to service_role;

create or replace function public.extend_outbox_leases(
  p_worker text, p_ids bigint[], p_lease_seconds double precision default 60
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with extended as (
    update public.outbox_jobs as j
    set lease_expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_lease_seconds)
    where
      j.id = any(p_ids) and j.status = 'running' and j.lease_owner = p_worker
      and p_lease_seconds > 0 and p_lease_seconds <= 86400
    returning 1
  )

  select count(*)::integer from extended
$$;

comment on function public.extend_outbox_leases(text, bigint[], double precision) is
'Heartbeat: pushes the lease of jobs p_worker still holds p_lease_seconds into the future.';

revoke execute on function public.extend_outbox_leases(text, bigint[], double precision)
from public, anon, authenticated;
grant execute on function public.extend_outbox_leases(text, bigint[], double precision) to service_role;

-- API: requeue dead jobs -----------------------------------------------------------------

create or replace function public.requeue_dead_outbox_jobs(
  p_ids bigint[] default null, p_kind public.outbox_kind default null
)
returns integer
language sql
volatile
set search_path = ''
as $$
  with revived as (
    update public.outbox_jobs as j
    set status = 'pending', attempts = 0, run_after = pg_catalog.now(), completed_at = null, updated_at = pg_catalog.now()
    where
      j.status = 'dead'
      and (p_ids is null or j.id = any(p_ids))
      and (p_kind is null or j.kind = p_kind)
    returning 1
  )

  select count(*)::integer from revived
$$;

comment on function public.requeue_dead_outbox_jobs(bigint[], public.outbox_kind) is
'Dead jobs (all, the given ids, or one kind) become pending now with a fresh attempt count; '
'last_error is kept until the next attempt.';

revoke execute on function public.requeue_dead_outbox_jobs(bigint[], public.outbox_kind)
from public, anon, authenticated;
grant execute on function public.requeue_dead_outbox_jobs(bigint[], public.outbox_kind) to service_role;

-- API: retention -------------------------------------------------------------------------

create or replace function public.prune_integration_history(p_keep_days integer default 30)
returns table (logs_deleted bigint, jobs_deleted bigint)
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_cutoff timestamptz;
begin
  if p_keep_days is null or p_keep_days < 1 then
    raise exception 'keep at least one day of history' using errcode = '22023';
  end if;
  v_cutoff := pg_catalog.now() - pg_catalog.make_interval(days => p_keep_days);
  delete from public.integration_logs as l where l.created_at < v_cutoff;
  get diagnostics logs_deleted = row_count;
  delete from public.outbox_jobs as j where j.status = 'done' and j.completed_at < v_cutoff;
  get diagnostics jobs_deleted = row_count;
  return next;
end;
$$;

comment on function public.prune_integration_history(integer) is
'Retention: deletes integration_logs and done outbox jobs older than p_keep_days (dead and '
'pending jobs are kept). pg_cron runs it daily; without pg_cron, onai-db worker does.';

revoke execute on function public.prune_integration_history(integer) from public, anon, authenticated;
grant execute on function public.prune_integration_history(integer) to service_role;
