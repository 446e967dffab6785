-- Retention keeps the idempotency keys of done jobs: it empties their payloads instead.
--
-- Review of stop 23: prune_integration_history deleted done jobs after p_keep_days, and
-- with them the only record that their idempotency key was used. Queuing again after a
-- month (enqueue_lead_notifications() or enqueue_welcome_emails() for every lead or
-- student, a repeated lesson-stage event) then sent "Новый лид", welcome e-mails with new
-- set-password links, and stage moves a second time. Now a done job past retention keeps
-- its row and key; its payload keeps only `action` and `template` (no addresses, phone
-- numbers, names or texts). Logs past retention are deleted as before.

drop function public.prune_integration_history(integer);

create function public.prune_integration_history(p_keep_days integer default 30)
returns table (logs_deleted bigint, jobs_emptied bigint)
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
  update public.outbox_jobs as j
  set
    payload = pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'action', j.payload -> 'action', 'template', j.payload -> 'template'
    )),
    last_error = null
  where
    j.status = 'done'
    and j.completed_at < v_cutoff
    and j.payload - 'action' - 'template' <> '{}'::jsonb;
  get diagnostics jobs_emptied = row_count;
  return next;
end;
$$;

comment on function public.prune_integration_history(integer) is
'Retention: deletes integration_logs older than p_keep_days and empties the payloads of done '
'outbox jobs completed before then (only action and template stay). The jobs keep their '
'rows, so an idempotency key is never used twice; dead and pending jobs are untouched. '
'pg_cron runs it daily; without pg_cron, onai-db worker does.';

revoke execute on function public.prune_integration_history(integer) from public, anon, authenticated;
grant execute on function public.prune_integration_history(integer) to service_role;
