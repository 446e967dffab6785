-- merge_leads: a merge keeps the winner's AmoCRM sync, and fills by the current rules.
--
-- Issue 3, item 4 ("nothing lost"; found by a review of 20261125100100):
-- 1. The winner's amocrm_synced followed the lead whose amocrm_lead_id survived, and when
--    neither had one (a lead synced as a contact only, or marked synced by the service role)
--    the loser's false replaced the winner's true: enqueue_amocrm_lead_sync then queued the
--    person again and AmoCRM got a second deal. Now the survivor is synced when either lead
--    was, as onai-db consolidate has always combined them (bool_or).
-- 2. Which phone (email) survives is decided by the stored normalized values; a stored NULL
--    is now read again by the current rules (normalize_phone of the raw value). While the
--    stored values follow the rules this changes nothing (a NULL there means no valid value);
--    renormalize_lead_identities (20261202100200) clears the stored values it replaces before
--    it merges, and needs the merge to keep the valid number over an invalid one.
-- Otherwise the same function as in 20261125100100.

create or replace function private.merge_leads(
  p_winner uuid, p_loser uuid, p_reason text, p_matched_on jsonb default '{}'::jsonb
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  w public.traffic_leads;
  l public.traffic_leads;
  v_moved integer;
begin
  -- callers hold row locks on both leads (select ... for update, in id order)
  select * into strict w from public.traffic_leads where id = p_winner;
  select * into strict l from public.traffic_leads where id = p_loser;
  if w.merged_into is not null or l.merged_into is not null then
    raise exception using
      errcode = '55000',
      message = pg_catalog.format('cannot merge %s into %s: one of them is already merged', p_loser, p_winner),
      hint = 'Resolve both ids with private.live_lead() under lock first.';
  end if;

  -- the loser stops being live first, so its identifiers can move to the winner
  update public.traffic_leads
  set merged_into = p_winner, merged_at = pg_catalog.now()
  where id = p_loser;

  update public.traffic_leads
  set merged_into = p_winner
  where merged_into = p_loser;

  update public.traffic_lead_journey
  set lead_id = p_winner, moved_from_lead_id = coalesce(moved_from_lead_id, p_loser)
  where lead_id = p_loser;
  get diagnostics v_moved = row_count;

  update private.traffic_lead_identifiers
  set lead_id = p_winner
  where lead_id = p_loser;

  -- both leads' own phone and email stay findable: a value written straight into
  -- traffic_leads (service role) may never have been registered, and once the loser is
  -- merged the fallback lookup on live leads' columns no longer sees its values
  insert into private.traffic_lead_identifiers (kind, value, lead_id)
  select x.kind, x.value, p_winner
  from (
    values
    ('phone', l.phone_normalized), ('email', l.email_normalized),
    ('phone', w.phone_normalized), ('email', w.email_normalized)
  ) as x (kind, value)
  where x.value is not null
  on conflict (kind, value) do nothing;

  update public.traffic_leads as t
  set
    name = coalesce(w.name, l.name),
    -- a stored NULL is read again by the current rules: renormalize_lead_identities clears
    -- the stored values it is about to replace before it merges
    phone = case
      when
        coalesce(w.phone_normalized, public.normalize_phone(w.phone)) is null
        and coalesce(l.phone_normalized, public.normalize_phone(l.phone)) is not null
        then l.phone
      else coalesce(w.phone, l.phone)
    end,
    email = case
      when
        coalesce(w.email_normalized, private.normalize_email(w.email)) is null
        and coalesce(l.email_normalized, private.normalize_email(l.email)) is not null
        then l.email
      else coalesce(w.email, l.email)
    end,
    source = coalesce(w.source, l.source),
    source_raw = coalesce(w.source_raw, l.source_raw),
    -- the loser keeps its own metadata (it is never deleted) when the union would pass the limit
    metadata = case when pg_catalog.pg_column_size(l.metadata || w.metadata) <= 65536 then l.metadata || w.metadata
      else w.metadata end,
    amocrm_lead_id = coalesce(w.amocrm_lead_id, l.amocrm_lead_id),
    amocrm_contact_id = coalesce(w.amocrm_contact_id, l.amocrm_contact_id),
    amocrm_synced = w.amocrm_synced or l.amocrm_synced,
    amocrm_synced_at = coalesce(w.amocrm_synced_at, l.amocrm_synced_at),
    email_sent = w.email_sent or l.email_sent,
    sms_sent = w.sms_sent or l.sms_sent,
    email_clicked = w.email_clicked or l.email_clicked,
    email_clicked_at = least(w.email_clicked_at, l.email_clicked_at),
    sms_clicked = w.sms_clicked or l.sms_clicked,
    sms_clicked_at = least(w.sms_clicked_at, l.sms_clicked_at),
    click_count = least(w.click_count::bigint + l.click_count, 2147483647)::integer,
    first_utm_source = case when l.first_touch_at < coalesce(w.first_touch_at, 'infinity') then l.first_utm_source
      else w.first_utm_source end,
    first_utm_medium = case when l.first_touch_at < coalesce(w.first_touch_at, 'infinity') then l.first_utm_medium
      else w.first_utm_medium end,
    first_utm_campaign = case when l.first_touch_at < coalesce(w.first_touch_at, 'infinity') then l.first_utm_campaign
      else w.first_utm_campaign end,
    first_utm_content = case when l.first_touch_at < coalesce(w.first_touch_at, 'infinity') then l.first_utm_content
      else w.first_utm_content end,
    first_utm_term = case when l.first_touch_at < coalesce(w.first_touch_at, 'infinity') then l.first_utm_term
      else w.first_utm_term end,
    first_touch_at = least(w.first_touch_at, l.first_touch_at),
    last_utm_source = case when l.last_touch_at > coalesce(w.last_touch_at, '-infinity') then l.last_utm_source
      else w.last_utm_source end,
    last_utm_medium = case when l.last_touch_at > coalesce(w.last_touch_at, '-infinity') then l.last_utm_medium
      else w.last_utm_medium end,
    last_utm_campaign = case when l.last_touch_at > coalesce(w.last_touch_at, '-infinity') then l.last_utm_campaign
      else w.last_utm_campaign end,
    last_utm_content = case when l.last_touch_at > coalesce(w.last_touch_at, '-infinity') then l.last_utm_content
      else w.last_utm_content end,
    last_utm_term = case when l.last_touch_at > coalesce(w.last_touch_at, '-infinity') then l.last_utm_term
      else w.last_utm_term end,
    last_touch_at = greatest(w.last_touch_at, l.last_touch_at),
    legacy_source_table = coalesce(w.legacy_source_table, l.legacy_source_table),
    legacy_id = coalesce(w.legacy_id, l.legacy_id),
    created_at = least(w.created_at, l.created_at),
    -- both leads' stages: a stage written straight into traffic_leads has no journey row
    stages = coalesce(
      (
        select pg_catalog.array_agg(distinct s.stage order by s.stage)
        from pg_catalog.unnest(t.stages || w.stages || l.stages) as s (stage)
      ),
      '{}'::text []
    )
  where t.id = p_winner;

  insert into public.traffic_lead_merges (winner_id, loser_id, reason, matched_on, journey_rows_moved)
  values (p_winner, p_loser, p_reason, coalesce(p_matched_on, '{}'::jsonb), v_moved);

  return v_moved;
end;
$$;

comment on function private.merge_leads(uuid, uuid, text, jsonb) is
'Folds lead p_loser into p_winner (both live and locked by the caller): journey and identifiers move (both '
'leads'' own phone and email registered for the winner), '
'gaps are filled, both leads'' stages kept, first/last touch kept, synced to AmoCRM when either was, '
'the loser stays with merged_into, '
'a merge record is written. '
'Returns the number of journey rows moved.';

revoke all on function private.merge_leads(uuid, uuid, text, jsonb) from public;
