-- find_or_create_unified_lead tries again, alone, when it loses a deadlock (40P01) or a
-- lead it waited for was deleted (40001), instead of failing the call.
--
-- Issue 3, item 4 ("nothing lost") and item 5 (race-free): a call could still lose a
-- deadlock with a writer that does not take the identity locks, such as a consolidation
-- batch merging leads a concurrent writer had tied together (about once in 14 hammer runs
-- during a consolidation), and a call whose merge partner was deleted while it waited
-- failed with 40001 and a hint to retry. PostgREST does not retry and most forms post once,
-- so either error lost the event unless the caller retried.
--
-- The body is unchanged: it is renamed and moved to the private schema (no copy), and
-- the public function, same signature, same result, runs it in a block. A block with an
-- exception handler is a subtransaction: when the body loses, everything it did and every
-- lock it took (the advisory locks, the row locks) is rolled back, the other transaction
-- goes on, and the body runs again from the start (it then finds whatever the other
-- transaction committed), after a pause of 10-20 ms times the attempt, so that the other
-- transaction takes the locks it waited for before this one asks again. At most 5
-- attempts; then the last error is raised as it was.
-- The cost is one subtransaction per call.

alter function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) rename to find_or_create_unified_lead_attempt;

alter function public.find_or_create_unified_lead_attempt(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) set schema private;

revoke all on function private.find_or_create_unified_lead_attempt(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) from public, anon, authenticated, service_role;

comment on function private.find_or_create_unified_lead_attempt(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) is
'One attempt of public.find_or_create_unified_lead (its whole body; see that function). '
'Called only by it, which runs it again when it loses a deadlock or a lead it waited for '
'was deleted.';

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
  p_occurred_at timestamptz default null
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
begin
  loop
    begin
      return query
      select a.lead_id, a.created, a.merged, a.event_recorded, a.no_identifier
      from private.find_or_create_unified_lead_attempt(
        p_name, p_email, p_phone, p_source,
        p_utm_source, p_utm_medium, p_utm_campaign, p_utm_content, p_utm_term,
        p_stage, p_metadata, p_event_key, p_occurred_at
      ) as a;
      return;
    exception when deadlock_detected or serialization_failure then
      -- the attempt is rolled back with its locks; the other transaction goes on
      if v_attempt >= c_attempts then
        raise;
      end if;
      -- a moment for the other transaction to take the locks it waited for, so that this
      -- attempt does not take them back first and run into the same deadlock again
      perform pg_catalog.pg_sleep(0.01 * v_attempt * (1 + pg_catalog.random()));
      v_attempt := v_attempt + 1;
    end;
  end loop;
end;
$$;

comment on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) is
'Records one lead event: finds the person by normalized phone/email (or creates them), fills gaps, '
'keeps first/last-touch UTM, appends a journey event once per p_event_key, merges two leads of one person '
'into the older. Returns the live lead id and what happened. Race-free; a call that loses a deadlock or '
'finds a lead deleted under it is tried again (up to 5 times). service_role only.';

revoke all on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) from public, anon, authenticated;
grant execute on function public.find_or_create_unified_lead(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) to service_role;
