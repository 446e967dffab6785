-- find_or_create_unified_lead(..., p_notify => true) queues the "Новый лид" Telegram message
-- in the intake call's own transaction.
--
-- The README had the backend call enqueue_lead_notification(lead_id) after a call that
-- returned created: two transactions. A backend that crashed, lost its connection or timed
-- out between them lost that message for good, and nothing swept for it (left from earlier
-- stops' lists). With p_notify => true the call that creates the lead queues its message
-- (one job per active group of type leads or leads_<source>), so both commit or neither.
--
-- It is off by default: a caller that does not ask keeps its behaviour (a backend that still
-- posts to Telegram by itself would otherwise announce every lead twice, and a sweep would
-- announce old leads). A lead found (created = false) is not announced, as before.
-- enqueue_lead_notification stays for other callers; its key makes a second call for the
-- same lead send nothing.
--
-- A parameter is added, so the function is made again, with its grant and comment.
-- PostgREST finds it by its named arguments: every existing call still matches. The body
-- is that of 20261129100100_find_or_create_unified_lead_logs_retries.sql, except that the
-- attempt's row is kept to queue the message before it is returned.

drop function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
);

create function public.find_or_create_unified_lead(
  p_name text default null,
  p_email text default null,
  p_phone text default null,
  p_source text default null,
  p_utm_source text default null,
  p_utm_medium text default null,
  p_utm_campaign text default null,
  p_utm_content text default null,
  p_utm_term text default null,
  p_stage text default 'lead_captured',
  p_metadata jsonb default '{}'::jsonb,
  p_event_key text default null,
  p_occurred_at timestamptz default null,
  p_notify boolean default false
)
returns table (
  lead_id uuid,
  created boolean,
  merged boolean,
  event_recorded boolean,
  no_identifier boolean
)
language plpgsql
volatile
-- security definer: runs private.find_or_create_unified_lead_attempt, which no API role
-- may reach; EXECUTE is granted to service_role only.
security definer
set search_path = ''
as $$
declare
  c_attempts constant integer := 5;
  v_attempt integer := 1;
  v_state text;
  v_message text;
  v_detail text;
  v_hint text;
  v_isolation text;
begin
  loop
    begin
      select a.lead_id, a.created, a.merged, a.event_recorded, a.no_identifier
      into lead_id, created, merged, event_recorded, no_identifier
      from private.find_or_create_unified_lead_attempt(
        p_name, p_email, p_phone, p_source,
        p_utm_source, p_utm_medium, p_utm_campaign, p_utm_content, p_utm_term,
        p_stage, p_metadata, p_event_key, p_occurred_at
      ) as a;
      if p_notify and created then
        -- in this transaction (and this attempt: a lost deadlock retries both)
        perform public.enqueue_lead_notification(lead_id);
      end if;
      return next;
      return;
    exception when deadlock_detected or serialization_failure then
      -- the attempt is rolled back with its locks; the other transaction goes on
      v_isolation := pg_catalog.current_setting('transaction_isolation');
      if v_isolation in ('repeatable read', 'serializable') then
        -- this transaction's snapshot would show the next attempt the same conflict
        get stacked diagnostics
          v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
        v_hint := pg_catalog.format(
          'This call ran in a %s transaction, which cannot see what the other transaction '
          'committed: retry the whole transaction (or make the call in a read committed '
          'one, as PostgREST does by default, where it retries by itself).',
          v_isolation
        );
        if v_detail = '' then  -- no detail in the error: none added (RAISE takes no NULL)
          raise exception using errcode = v_state, message = v_message, hint = v_hint;
        end if;
        raise exception using errcode = v_state, message = v_message, detail = v_detail, hint = v_hint;
      end if;
      if v_attempt >= c_attempts then
        raise;
      end if;
      -- the server log shows each retry (a caught error is not logged by itself): how often
      -- intake calls lose deadlocks or find a lead deleted under them, and with whom
      get stacked diagnostics
        v_state = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
      raise log using
        message = pg_catalog.format(
          'find_or_create_unified_lead: attempt %s of %s failed with %s, trying again: %s',
          v_attempt, c_attempts, v_state, v_message
        ),
        detail = v_detail;
      -- a moment for the other transaction to take the locks it waited for, so that this
      -- attempt does not take them back first and run into the same deadlock again
      perform pg_catalog.pg_sleep(0.01 * v_attempt * (1 + pg_catalog.random()));
      v_attempt := v_attempt + 1;
    end;
  end loop;
end;
$$;

comment on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz, boolean
) is
'Records one lead event: finds the person by normalized phone/email (or creates them), fills gaps, '
'keeps first/last-touch UTM, appends a journey event once per p_event_key, merges two leads of one person '
'into the older. Returns the live lead id and what happened. Race-free; a call that loses a deadlock or '
'finds a lead deleted under it is tried again (up to 5 times, each retry a LOG line in the server log), '
'except in a repeatable read or serializable transaction, where it fails at once (40P01/40001) with a '
'hint to retry the transaction. With p_notify, a lead it creates gets its "Новый лид" Telegram message '
'queued in the same transaction (enqueue_lead_notification). '
'service_role only.';

revoke execute on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz, boolean
) from public, anon, authenticated;
grant execute on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz, boolean
) to service_role;
