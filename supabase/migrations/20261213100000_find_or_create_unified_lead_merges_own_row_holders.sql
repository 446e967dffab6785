-- find_or_create_unified_lead: a live lead holding the call's phone or email in its own row
-- is merged even when the identifiers file that value under another lead.
--
-- Issue 3, items 4 and 5 (found by identity review): the lookup read a live lead's own
-- phone_normalized / email_normalized only when private.traffic_lead_identifiers knew
-- nothing of the value. A lead the service role wrote straight into traffic_leads (or
-- updated) with a phone or email registered as another lead's second one was therefore
-- never found: every call went to the registered lead, and the person kept two live leads
-- for ever. Now both are read in the same statement, and a live lead holding the value in
-- its own row that is not the registered lead is merged like the holder the gap-filling
-- update meets. After a merge the lookup runs again (within its 16 rounds), so a third
-- lead of the same person is merged in the same call. Otherwise the same body as in
-- 20261208100100_find_or_create_unified_lead_utm_placeholders.sql.

create or replace function private.find_or_create_unified_lead_attempt(
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
-- security definer: writes private.traffic_lead_identifiers and takes advisory locks,
-- which no API role may do directly; no API role may execute it (only
-- public.find_or_create_unified_lead calls it).
security definer
set search_path = ''
as $$
declare
  -- what counts as blank around a value: spaces, tabs, line breaks, no-break and other
  -- unicode spaces, zero-width spaces (forms post every field, often as '' or '\r\n')
  c_blank constant text := U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF';
  v_name text := nullif(pg_catalog.btrim(p_name, c_blank), '');
  v_email_raw text := nullif(pg_catalog.btrim(p_email, c_blank), '');
  v_phone_raw text := nullif(pg_catalog.btrim(p_phone, c_blank), '');
  v_source_raw text := nullif(pg_catalog.btrim(p_source, c_blank), '');
  v_phone text;
  v_email text;
  v_source text;
  v_stage text := coalesce(nullif(pg_catalog.btrim(p_stage, c_blank), ''), 'lead_captured');
  v_at timestamptz := coalesce(p_occurred_at, pg_catalog.now());
  v_utm_source text := nullif(pg_catalog.btrim(p_utm_source, c_blank), '');
  v_utm_medium text := nullif(pg_catalog.btrim(p_utm_medium, c_blank), '');
  v_utm_campaign text := nullif(pg_catalog.btrim(p_utm_campaign, c_blank), '');
  v_utm_content text := nullif(pg_catalog.btrim(p_utm_content, c_blank), '');
  v_utm_term text := nullif(pg_catalog.btrim(p_utm_term, c_blank), '');
  -- what the lead's first/last touch records: placeholders are no value
  v_touch_source text := private.utm_touch_value(v_utm_source);
  v_touch_medium text := private.utm_touch_value(v_utm_medium);
  v_touch_campaign text := private.utm_touch_value(v_utm_campaign);
  v_touch_content text := private.utm_touch_value(v_utm_content);
  v_touch_term text := private.utm_touch_value(v_utm_term);
  -- a touch counts for the lead's first/last touch only when it names a source
  v_has_utm boolean := v_touch_source is not null;
  v_meta jsonb := coalesce(p_metadata, '{}'::jsonb);
  v_too_long text;
  v_by_phone uuid;
  v_by_email uuid;
  v_next uuid;
  v_next_email uuid;
  v_lead uuid;
  v_loser uuid;
  v_created boolean := false;
  v_merged boolean := false;
  v_merged_now boolean;   -- a merge in this round of the lookup
  v_holder uuid;          -- a live lead found holding this phone or email in its own row
  v_own_phone uuid;       -- the live lead holding this phone in its own row
  v_own_email uuid;       -- the live lead holding this email in its own row
  v_rounds integer := 0;  -- rounds of the lookup: bounded, whatever concurrent writers do
  v_recorded boolean;
  v_no_identifier boolean;
begin
  -- Validate: nothing is truncated, nothing malformed is stored.
  if v_name is null and v_email_raw is null and v_phone_raw is null then
    raise exception using
      errcode = '22023',
      message = 'find_or_create_unified_lead needs at least one of p_name, p_email, p_phone',
      hint = 'Pass the person''s phone or email (a name alone is stored but flagged as having no identifier).';
  end if;
  v_too_long := case
    when pg_catalog.length(p_name) > 200 then 'p_name:200:' || pg_catalog.length(p_name)
    when pg_catalog.length(p_email) > 320 then 'p_email:320:' || pg_catalog.length(p_email)
    when pg_catalog.length(p_phone) > 64 then 'p_phone:64:' || pg_catalog.length(p_phone)
    when pg_catalog.length(p_source) > 100 then 'p_source:100:' || pg_catalog.length(p_source)
    when pg_catalog.length(p_utm_source) > 255 then 'p_utm_source:255:' || pg_catalog.length(p_utm_source)
    when pg_catalog.length(p_utm_medium) > 255 then 'p_utm_medium:255:' || pg_catalog.length(p_utm_medium)
    when pg_catalog.length(p_utm_campaign) > 255 then 'p_utm_campaign:255:' || pg_catalog.length(p_utm_campaign)
    when pg_catalog.length(p_utm_content) > 255 then 'p_utm_content:255:' || pg_catalog.length(p_utm_content)
    when pg_catalog.length(p_utm_term) > 255 then 'p_utm_term:255:' || pg_catalog.length(p_utm_term)
    when pg_catalog.length(p_event_key) > 255 then 'p_event_key:255:' || pg_catalog.length(p_event_key)
  end;
  if v_too_long is not null then
    raise exception using
      errcode = '22001',
      message = pg_catalog.format('%s is too long: %s characters, at most %s are allowed',
        pg_catalog.split_part(v_too_long, ':', 1), pg_catalog.split_part(v_too_long, ':', 3),
        pg_catalog.split_part(v_too_long, ':', 2)),
      hint = 'Values are never truncated; send a shorter value or put long text into p_metadata.';
  end if;
  if pg_catalog.jsonb_typeof(v_meta) <> 'object' then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('p_metadata must be a JSON object, got a JSON %s', pg_catalog.jsonb_typeof(v_meta)),
      hint = 'Send metadata as {"key": value, ...}.';
  end if;
  if pg_catalog.pg_column_size(v_meta) > 65536 then
    raise exception using
      errcode = '22001',
      message = 'p_metadata is too large (more than 64 KiB)',
      hint = 'Store large payloads elsewhere and reference them from metadata.';
  end if;
  if v_stage !~ '^[a-z][a-z0-9_]*$' or pg_catalog.length(v_stage) > 63 then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('p_stage %L is not a valid stage name', p_stage),
      hint = 'Stages are snake_case, e.g. proftest_submitted, expresscourse_clicked, payment_succeeded.';
  end if;
  if p_occurred_at is not null and (
    not pg_catalog.isfinite(p_occurred_at)
    or p_occurred_at < '1970-01-01 00:00:00+00'::timestamptz
    or p_occurred_at > pg_catalog.now() + interval '1 day'
  ) then
    raise exception using
      errcode = '22023',
      message = pg_catalog.format('p_occurred_at %s is out of range', p_occurred_at),
      hint = 'Pass when the event happened (from 1970 to at most a day ahead), or NULL for now.';
  end if;
  if p_event_key is not null and pg_catalog.btrim(p_event_key, c_blank) = '' then
    raise exception using
      errcode = '22023',
      message = 'p_event_key must not be empty',
      hint = 'Pass NULL when the event has no idempotency key.';
  end if;

  v_phone := public.normalize_phone(v_phone_raw);
  v_email := private.normalize_email(v_email_raw);
  v_source := private.canonical_lead_source(v_source_raw);

  -- Serialize, in one statement: the event key first, then the identifiers in sorted
  -- order, so two calls can never wait on each other in a cycle.
  perform pg_catalog.pg_advisory_xact_lock(k.h)
  from (
    select pg_catalog.hashtextextended(x.key, 0) as h
    from (
      values
      (0, 'lead-event:' || p_event_key),
      (1, 'lead-id:phone:' || v_phone),
      (1, 'lead-id:email:' || v_email)
    ) as x (rank, key)
    where x.key is not null
    order by x.rank, x.key
  ) as k;

  -- A writer that does not take these locks (the consolidation, a direct insert by the
  -- service role) may commit a lead with this phone or email while this call inserts
  -- one, or gives its phone or email to another lead: the insert or the update gives way
  -- (on conflict do nothing; a unique violation caught below) and the lookup runs again.
  <<resolve>>
  loop
  loop
    v_rounds := v_rounds + 1;
    if v_rounds > 16 then
      raise exception using
        errcode = '40001',
        message = pg_catalog.format(
          'could not settle which lead phone %s / email %s belong to in %s rounds: concurrent writers kept '
          'changing them', coalesce(v_phone, '-'), coalesce(v_email, '-'), v_rounds - 1),
        hint = 'Retry the call.';
    end if;
    v_merged_now := false;
    -- Who is it? A replayed event key answers at once. Otherwise every identifier ever
    -- seen first, live leads' own columns when no identifier names the value; a live lead
    -- holding the value in its own row that is not the lead the identifiers name (written
    -- straight into the table) is one more lead of this person. Merges re-point earlier
    -- losers, so merged_into is always one hop from a live lead. (One statement, taken
    -- after the locks, so it sees what the previous holder committed.)
    select
      (
        select coalesce(l.merged_into, l.id)
        from public.traffic_lead_journey as j
        join public.traffic_leads as l on j.lead_id = l.id
        where j.event_key = p_event_key
      ),
      (
        select coalesce(l.merged_into, l.id)
        from private.traffic_lead_identifiers as i
        join public.traffic_leads as l on i.lead_id = l.id
        where i.kind = 'phone' and i.value = v_phone
      ),
      (select l.id from public.traffic_leads as l where l.phone_normalized = v_phone and l.merged_into is null),
      (
        select coalesce(l.merged_into, l.id)
        from private.traffic_lead_identifiers as i
        join public.traffic_leads as l on i.lead_id = l.id
        where i.kind = 'email' and i.value = v_email
      ),
      (select l.id from public.traffic_leads as l where l.email_normalized = v_email and l.merged_into is null)
    into v_lead, v_by_phone, v_own_phone, v_by_email, v_own_email;
    if v_holder is null then
      v_holder := case
        when v_own_phone <> v_by_phone then v_own_phone
        when v_own_email <> v_by_email then v_own_email
      end;
    end if;
    v_by_phone := coalesce(v_by_phone, v_own_phone);
    v_by_email := coalesce(v_by_email, v_own_email);
    -- the lead the gap-filling update found holding this phone or email in its own row (the
    -- identifiers may name another lead: a lead whose own value was cleared, a lead written
    -- straight into the table) is one more lead of this person, merged like the others
    if v_holder is not null and v_holder is distinct from v_by_phone and v_holder is distinct from v_by_email then
      if v_by_phone is null then
        v_by_phone := v_holder;
      elsif v_by_email is null or v_by_email = v_by_phone then
        v_by_email := v_holder;
      end if;
    end if;
    v_holder := null;
    if v_lead is not null then
      select l.no_identifier into v_no_identifier from public.traffic_leads as l where l.id = v_lead;
      lead_id := v_lead;
      created := false;
      merged := false;
      event_recorded := false;
      no_identifier := v_no_identifier;
      return next;
      return;
    end if;

    if v_by_phone is not null and v_by_email is not null and v_by_phone <> v_by_email then
      -- Two leads for one person: lock both (id order), merge into the older. Unless both are
      -- still live once locked, lock_live_leads releases its locks: this call never holds a
      -- lock while it resolves a lead merged meanwhile, so a merge that re-points that lead's
      -- earlier losers never waits for it in turn.
      loop
        exit when private.lock_live_leads(array[v_by_phone, v_by_email]);
        v_next := private.live_lead(v_by_phone);
        v_next_email := private.live_lead(v_by_email);
        if v_next = v_by_phone and v_next_email = v_by_email then
          -- neither was merged, so one of them is gone
          raise exception using
            errcode = '40001',
            message = pg_catalog.format('lead %s or %s was deleted while this call was waiting for it',
              v_by_phone, v_by_email),
            hint = 'Retry the call: it finds or creates the lead again.';
        end if;
        v_by_phone := v_next;
        v_by_email := v_next_email;
        exit when v_by_phone = v_by_email;
      end loop;
      if v_by_phone <> v_by_email then
        select l.id into v_lead from public.traffic_leads as l
        where l.id in (v_by_phone, v_by_email) order by l.created_at, l.lead_no limit 1;
        v_loser := case when v_lead = v_by_phone then v_by_email else v_by_phone end;
        perform private.merge_leads(
          v_lead, v_loser, 'find_or_create_unified_lead',
          pg_catalog.jsonb_build_object('phone', v_phone, 'email', v_email)
        );
        v_merged := true;
        v_merged_now := true;
      end if;
    end if;

    if v_merged_now then
      -- v_lead: the surviving lead, locked. Look again: another live lead may still hold
      -- this phone or email in its own row (the next round merges it, or finds none).
      v_lead := null;
    elsif coalesce(v_by_phone, v_by_email) is not null then
      -- Lock the live lead. Uncontended, at once: a row another call holds is skipped, not
      -- waited for. Otherwise lock_live_leads waits for it and releases the lock when the row
      -- turned out merged meanwhile (PostgreSQL locks a row's newest version before it checks
      -- the condition again, and keeps the lock), and the winner is locked instead.
      v_lead := coalesce(v_by_phone, v_by_email);
      loop
        perform 1 from public.traffic_leads as l where l.id = v_lead and l.merged_into is null
        for update skip locked;
        exit when found;
        exit when private.lock_live_leads(array[v_lead]);
        v_next := private.live_lead(v_lead);
        if v_next = v_lead then
          raise exception using
            errcode = '40001',
            message = pg_catalog.format('lead %s was deleted while this call was waiting for it', v_lead),
            hint = 'Retry the call: it finds or creates the lead again.';
        end if;
        v_lead := v_next;
      end loop;
    else
      insert into public.traffic_leads as t (
        name, email, phone, source, source_raw, metadata, stages,
        first_utm_source, first_utm_medium, first_utm_campaign, first_utm_content, first_utm_term, first_touch_at,
        last_utm_source, last_utm_medium, last_utm_campaign, last_utm_content, last_utm_term, last_touch_at,
        created_at
      ) values (
        v_name, v_email_raw, v_phone_raw, v_source, v_source_raw, v_meta, array[v_stage],
        case when v_has_utm then v_touch_source end, case when v_has_utm then v_touch_medium end,
        case when v_has_utm then v_touch_campaign end, case when v_has_utm then v_touch_content end,
        case when v_has_utm then v_touch_term end, case when v_has_utm then v_at end,
        case when v_has_utm then v_touch_source end, case when v_has_utm then v_touch_medium end,
        case when v_has_utm then v_touch_campaign end, case when v_has_utm then v_touch_content end,
        case when v_has_utm then v_touch_term end, case when v_has_utm then v_at end,
        v_at
      )
      on conflict do nothing
      returning t.id, t.no_identifier into v_lead, v_no_identifier;
      v_created := v_lead is not null;
    end if;
    exit when v_lead is not null;
  end loop;

  exit resolve when v_created;
  -- Fill gaps; a known value is never replaced by NULL; first/last touch by time. A writer
  -- that does not take the identity locks may have given this phone or email to another
  -- live lead meanwhile (its unique index): then only this update is undone, and the lookup
  -- finds both leads and merges them.
  begin
    update public.traffic_leads as l
    set
      name = coalesce(l.name, v_name),
      phone = case when l.phone_normalized is null and v_phone is not null then v_phone_raw
        else coalesce(l.phone, v_phone_raw) end,
      email = case when l.email_normalized is null and v_email is not null then v_email_raw
        else coalesce(l.email, v_email_raw) end,
      source = coalesce(l.source, v_source),
      source_raw = coalesce(l.source_raw, v_source_raw),
      -- the event's metadata is in its journey row when the union would pass the limit
      metadata = case when pg_catalog.pg_column_size(v_meta || l.metadata) <= 65536 then v_meta || l.metadata
        else l.metadata end,
      stages = case when v_stage = any(l.stages) then l.stages
        else (select pg_catalog.array_agg(x order by x) from pg_catalog.unnest(l.stages || v_stage) as x) end,
      first_utm_source = case when v_has_utm and v_at < coalesce(l.first_touch_at, 'infinity')
        then v_touch_source else l.first_utm_source end,
      first_utm_medium = case when v_has_utm and v_at < coalesce(l.first_touch_at, 'infinity')
        then v_touch_medium else l.first_utm_medium end,
      first_utm_campaign = case when v_has_utm and v_at < coalesce(l.first_touch_at, 'infinity')
        then v_touch_campaign else l.first_utm_campaign end,
      first_utm_content = case when v_has_utm and v_at < coalesce(l.first_touch_at, 'infinity')
        then v_touch_content else l.first_utm_content end,
      first_utm_term = case when v_has_utm and v_at < coalesce(l.first_touch_at, 'infinity')
        then v_touch_term else l.first_utm_term end,
      first_touch_at = case when v_has_utm then least(l.first_touch_at, v_at) else l.first_touch_at end,
      last_utm_source = case when v_has_utm and v_at >= coalesce(l.last_touch_at, '-infinity')
        then v_touch_source else l.last_utm_source end,
      last_utm_medium = case when v_has_utm and v_at >= coalesce(l.last_touch_at, '-infinity')
        then v_touch_medium else l.last_utm_medium end,
      last_utm_campaign = case when v_has_utm and v_at >= coalesce(l.last_touch_at, '-infinity')
        then v_touch_campaign else l.last_utm_campaign end,
      last_utm_content = case when v_has_utm and v_at >= coalesce(l.last_touch_at, '-infinity')
        then v_touch_content else l.last_utm_content end,
      last_utm_term = case when v_has_utm and v_at >= coalesce(l.last_touch_at, '-infinity')
        then v_touch_term else l.last_utm_term end,
      last_touch_at = case when v_has_utm then greatest(l.last_touch_at, v_at) else l.last_touch_at end,
      created_at = least(l.created_at, v_at)
    where l.id = v_lead
    returning l.no_identifier into v_no_identifier;
    exit resolve;
  exception when unique_violation then
    -- the lead holding the value: found and merged in the next round. A repeatable read or
    -- serializable snapshot may not see it (committed after the snapshot): no round would,
    -- so the caller gets 40001 at once (public.find_or_create_unified_lead adds the hint to
    -- retry the whole transaction).
    select l.id into v_holder
    from public.traffic_leads as l
    where
      l.merged_into is null and l.id <> v_lead
      and ((v_phone is not null and l.phone_normalized = v_phone) or (v_email is not null and l.email_normalized = v_email))
    order by l.created_at, l.lead_no
    limit 1;
    if v_holder is null
      and pg_catalog.current_setting('transaction_isolation') in ('repeatable read', 'serializable') then
      raise exception using
        errcode = '40001',
        message = pg_catalog.format(
          'lead %s cannot take phone %s / email %s: a transaction this snapshot cannot see gave it to another lead',
          v_lead, coalesce(v_phone, '-'), coalesce(v_email, '-')),
        hint = 'Retry the whole transaction.';
    end if;
    v_lead := null;
  end;
  end loop;

  insert into private.traffic_lead_identifiers (kind, value, lead_id)
  select x.kind, x.value, v_lead
  from (values ('phone', v_phone), ('email', v_email)) as x (kind, value)
  where x.value is not null
  on conflict (kind, value) do nothing;

  insert into public.traffic_lead_journey (
    lead_id, stage, source, utm_source, utm_medium, utm_campaign, utm_content, utm_term,
    input, metadata, event_key, occurred_at
  ) values (
    v_lead, v_stage, v_source,
    v_utm_source, v_utm_medium, v_utm_campaign, v_utm_content, v_utm_term,
    pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
      'name', p_name, 'email', p_email, 'phone', p_phone, 'source', p_source
    )),
    v_meta, p_event_key, v_at
  )
  on conflict (event_key) do nothing;
  v_recorded := found;
  if not v_recorded then
    -- only a key can conflict, and the call found it free at its start: a writer that does
    -- not take the key's lock recorded it since. Undo this attempt's changes to the lead.
    raise exception using
      errcode = '40001',
      message = pg_catalog.format('event key %L was recorded by another transaction during this call', p_event_key),
      hint = 'Retry: the event is recorded once; the next attempt returns its lead and changes nothing.';
  end if;

  lead_id := v_lead;
  created := v_created;
  merged := v_merged;
  event_recorded := v_recorded;
  no_identifier := v_no_identifier;
  return next;
end;
$$;

comment on function private.find_or_create_unified_lead_attempt(
  text, text, text, text, text, text, text, text, text, text, jsonb, text, timestamptz
) is
'One attempt of public.find_or_create_unified_lead (its whole body; see that function). '
'Called only by it, which runs it again when it loses a deadlock or a lead it waited for '
'was deleted. A phone or email that another live lead holds in its own row merges that '
'lead; the lookup is bounded (40001 after 16 rounds). An event key recorded by another '
'transaction during the attempt fails it with 40001 (run again, it changes nothing). '
'A UTM placeholder (private.utm_touch_value) is no value for the first or last touch. '
'A live lead holding the phone or email in its own row is merged even when the identifiers '
'name another lead for it (a lead written straight into the table).';
