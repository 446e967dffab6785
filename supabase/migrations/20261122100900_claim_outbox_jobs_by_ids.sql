-- claim_outbox_jobs picks the ids first, then updates those rows by primary key.
--
-- Issue 5's queue benchmark, profiled: the claim joined its `for update skip locked`
-- candidates back to outbox_jobs, and PL/pgSQL's generic plan for that join (which
-- assumes a limit of a tenth of the table) hashed the whole table on some calls, a
-- sequential scan per claimed batch. Locking the due rows into an array and updating
-- `where id = any(...)` leaves the planner nothing but the primary key. Same behaviour:
-- the same jobs are leased, and returned in the same order (oldest run_after first).

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
declare
  v_ids bigint[];
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

  v_ids := array(
    select j.id
    from public.outbox_jobs as j
    where
      j.run_after <= pg_catalog.now()
      and (p_kinds is null or j.kind = any(p_kinds))
    order by j.run_after, j.id
    limit p_limit
    for update skip locked
  );
  if pg_catalog.cardinality(v_ids) = 0 then
    return;
  end if;

  return query
  with claimed as (
    update public.outbox_jobs as j
    set
      updated_at = pg_catalog.now(),
      status = 'running',
      run_after = null,
      attempts = j.attempts + 1,
      lease_owner = p_worker,
      lease_expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_lease_seconds)
    where j.id = any(v_ids)
    returning j.*
  )

  select c.*
  from claimed as c
  join pg_catalog.unnest(v_ids) with ordinality as u (id, n) on c.id = u.id
  order by u.n;
end;
$$;

comment on function public.claim_outbox_jobs(text, integer, double precision, public.outbox_kind[]) is
'Leases up to p_limit due jobs (oldest run_after first, optionally of some kinds) to p_worker '
'for p_lease_seconds; concurrent callers never get the same job (for update skip locked).';
