-- A job that meets a rate limit again and again backs off, whatever Retry-After says.
--
-- Found by the outbox review: a 429 gives the attempt back and the job waits exactly what
-- the provider asked (at least 1 s). A provider that keeps answering 429 with
-- `Retry-After: 1` (a quota used up, a broken limiter) had a long-running worker call it
-- every second for as long as it lasted, with an integration_logs row each time: 86,400
-- calls and rows a day for one job. The job now counts its rate-limit snoozes in a row;
-- from the fourth one it waits at least the usual backoff, counted from that snooze:
-- min(cap, base * 2^(snoozes - 3)) with equal jitter (5-10 s, 10-20 s, ... up to the cap,
-- an hour by default). The first three honour Retry-After exactly, so a burst that only
-- crosses a per-second limit is not slowed down. A failure that counts an attempt (or a
-- dead job) resets the count, and so do an expired lease (recover_expired_outbox_leases
-- counts that attempt) and a requeue of a dead job (found by review: a requeued job waited
-- the backoff of snoozes from before it died). Otherwise the same functions as
-- 20261121120200.

alter table public.outbox_jobs
add column rate_limited_in_a_row integer not null default 0;

comment on column public.outbox_jobs.rate_limited_in_a_row is
'Rate-limit snoozes (fail_outbox_job with p_count_attempt = false) since the last counted attempt; '
'from the fourth, the job waits at least the exponential backoff. Written by fail_outbox_job only.';

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
  v_snooze boolean := not coalesce(p_count_attempt, true);
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

  v_attempts := case when v_snooze then v_job.attempts - 1 else v_job.attempts end;
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
  -- the fourth snooze in a row and later: at least the backoff, counted from the fourth
  if v_snooze and v_job.rate_limited_in_a_row >= 3 then
    v_delay := greatest(
      v_delay,
      least(p_backoff_cap_seconds, p_backoff_base_seconds * 2.0 ^ least(v_job.rate_limited_in_a_row - 3, 30))
      * (0.5 + pg_catalog.random() / 2)
    );
  end if;

  update public.outbox_jobs as j
  set
    updated_at = pg_catalog.now(),
    status = v_status,
    attempts = v_attempts,
    rate_limited_in_a_row = case when v_snooze and v_status = 'pending' then j.rate_limited_in_a_row + 1 else 0 end,
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
'of attempts. p_count_attempt = false gives the attempt back (rate-limit snooze); from the fourth '
'snooze in a row the job waits at least min(cap, base * 2^(snoozes - 3)) with jitter. '
'Returns the new status, NULL when p_worker no longer holds the lease.';

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
      rate_limited_in_a_row = 0,
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
    set
      status = 'pending',
      attempts = 0,
      rate_limited_in_a_row = 0,
      run_after = pg_catalog.now(),
      completed_at = null,
      updated_at = pg_catalog.now()
    where
      j.status = 'dead'
      and (p_ids is null or j.id = any(p_ids))
      and (p_kind is null or j.kind = p_kind)
    returning 1
  )

  select count(*)::integer from revived
$$;

comment on function public.recover_expired_outbox_leases(integer) is
'Jobs whose worker vanished (lease expired) go back to pending, or to dead when out of '
'attempts (the attempt counts, and the rate-limit snoozes in a row start again); each is '
'logged. pg_cron runs it every minute; workers run it when idle and every minute.';

comment on function public.requeue_dead_outbox_jobs(bigint[], public.outbox_kind) is
'Dead jobs (all, the given ids, or one kind) become pending now with a fresh attempt count '
'and no rate-limit snoozes; last_error is kept until the next attempt.';
