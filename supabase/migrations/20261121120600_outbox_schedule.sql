-- Scheduled outbox housekeeping: lease recovery every minute, log retention daily.
--
-- Seed 000, task 5 ("cron job для retry"): where pg_cron is available (hosted Supabase;
-- locally the database named by cron.database_name), this schedules
-- recover_expired_outbox_leases() and prune_integration_history(30). Where it is not,
-- nothing is scheduled and the migration still applies: `onai-db worker` runs the same
-- two functions itself (claims recover lost leases anyway). cron.schedule() with a job
-- name replaces an existing job of that name, so re-running is safe.

do $schedule$
begin
  if exists (select 1 from pg_catalog.pg_extension where extname = 'pg_cron') then
    perform cron.schedule(
      'onai-outbox-recover-leases', '* * * * *', 'select public.recover_expired_outbox_leases()'
    );
    perform cron.schedule(
      'onai-integration-retention', '17 3 * * *', 'select * from public.prune_integration_history(30)'
    );
  else
    raise notice 'pg_cron is not installed here: onai-db worker runs lease recovery and retention';
  end if;
end
$schedule$;
