-- find_or_create_unified_lead refuses a stage that is a placeholder (22023).
--
-- The attempt (20261213100000) takes any snake_case name for a stage, so 'undefined',
-- 'null', 'nil' and 'nan' (what a script makes of a missing value: String(undefined),
-- a template's null) were recorded as journey stages, and the dashboard counted and
-- charted them. onai-db consolidate already quarantines such stages in Landing's journey
-- (the same rule: private.utm_touch_value, the one the UTM fields follow). A call with one
-- is now refused with 22023 and a hint, like a stage that is no snake_case name
-- ('[object Object]', '{{stage}}', which now get this clearer message too); nothing is
-- written, and the caller still has the call. A blank stage is lead_captured, as before.
--
-- The check sits in the wrapper, before the attempts: the attempt's body is unchanged. The
-- wrapper is made again with the body of 20261205100000_find_or_create_unified_lead_notifies.sql
-- and the check; same arguments, so its grant stays; the comment says the new rule.
-- Stages recorded before stay as they are: journey rows are never deleted.
create or replace function public.find_or_create_unified_lead(
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
  -- blanks as the attempt trims them (20261123100400)
  c_blank constant text := U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF';
begin
  -- a stage that is a script's text for nothing or an unexpanded macro is no stage: the
  -- attempt took 'undefined', 'null', 'nil' and 'nan' for stage names (snake_case) and the
  -- dashboard counted them; blank still means lead_captured
  if p_stage <> 'lead_captured'
    and private.utm_touch_value(p_stage) is null
    and pg_catalog.btrim(p_stage, c_blank) <> '' then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format(
        'p_stage %L is a placeholder a script sent for a missing value, not a stage', p_stage
      ),
      hint = 'Leave p_stage out (the event is recorded as lead_captured) or send the stage the '
        'page meant, e.g. proftest_submitted; nothing was recorded.';
  end if;
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
'queued in the same transaction (enqueue_lead_notification). A stage that is a placeholder (undefined, '
'null, nil, NaN, [object Object], {{stage}}) is refused with 22023; a blank one is lead_captured. '
'service_role only.';
