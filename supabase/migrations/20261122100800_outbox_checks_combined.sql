-- Fewer check constraints on outbox_jobs and integration_logs; the same rules.
--
-- PostgreSQL 15 reads every check constraint of a table from its stored text and prepares
-- it again for each INSERT or UPDATE statement, so a claim + complete round paid for 14 of
-- them (see 20261122100300 for the same change on the lead tables). The rules about a
-- job's state and the log row's values are now one constraint each; the secrets rule
-- stays on its own so that a rejected payload names it. Adding a constraint checks the
-- existing rows (one scan of each table, under the lock the migration holds).

alter table public.outbox_jobs
drop constraint outbox_jobs_attempts_check,
drop constraint outbox_jobs_max_attempts_check,
drop constraint outbox_jobs_idempotency_key_check,
drop constraint outbox_jobs_payload_is_object,
drop constraint outbox_jobs_run_after_when_pending,
drop constraint outbox_jobs_lease_when_running,
add constraint outbox_jobs_state_check check (
  attempts >= 0
  and max_attempts between 1 and 100
  and length(idempotency_key) between 1 and 256
  and jsonb_typeof(payload) = 'object'
  and (status = 'pending') = (run_after is not null)
  and (status = 'running') = (lease_owner is not null and lease_expires_at is not null)
);

comment on constraint outbox_jobs_state_check on public.outbox_jobs is
'attempts not negative, max_attempts 1 to 100, idempotency_key 1 to 256 characters, payload a JSON '
'object; run_after set exactly when pending; lease_owner and lease_expires_at set exactly when running.';

alter table public.integration_logs
drop constraint integration_logs_action_check,
drop constraint integration_logs_attempt_check,
drop constraint integration_logs_duration_ms_check,
drop constraint integration_logs_error_message_check,
drop constraint integration_logs_provider_ref_check,
drop constraint integration_logs_service_name_check,
drop constraint integration_logs_status_check,
add constraint integration_logs_values_check check (
  length(action) between 1 and 100
  and attempt >= 0
  and duration_ms >= 0
  and length(error_message) <= 2000
  and length(provider_ref) <= 200
  and service_name in ('resend', 'mobizon', 'telegram', 'amocrm', 'outbox')
  and status in ('success', 'failed', 'skipped', 'pending')
);

comment on constraint integration_logs_values_check on public.integration_logs is
'action 1 to 100 characters, attempt and duration_ms not negative, error_message at most 2000 and '
'provider_ref at most 200 characters; service_name one of resend, mobizon, telegram, amocrm, outbox; '
'status one of success, failed, skipped, pending.';
