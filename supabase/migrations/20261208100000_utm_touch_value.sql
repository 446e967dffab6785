-- private.utm_touch_value(text): a UTM placeholder is no value for a touch.
--
-- Issue 3, items 1 and 7 (first and last touch, attribution; found by review of the legacy
-- fixture against the seeds): a landing page sends a UTM field it had no value for as the
-- text its script makes of nothing ('undefined', 'null', 'NaN', '[object Object]',
-- 'None'), and an ad platform's macro arrives unexpanded when its link is opened outside
-- the ad ('{{campaign.name}}' on Facebook, '{campaign_id}' on Google Ads and Yandex Direct,
-- '__CAMPAIGN_NAME__' on TikTok, URL-encoded '%7B%7B...'). A utm_source like that became a
-- lead's first touch, so the lead could never be attributed: a later real touch only
-- became its last touch. This helper gives the value a touch records for one UTM field:
-- the value, or NULL when it is such a placeholder (or empty). Callers pass the value
-- already trimmed. What was sent stays in the event's journey row.

create or replace function private.utm_touch_value(p_value text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
begin
  if p_value = ''
    -- what scripts make of a missing value
    or pg_catalog.lower(p_value) in (
      'undefined', 'null', '(null)', 'nil', '<nil>', 'none', '(none)', 'nan', '[object object]', '(not set)'
    )
    -- an unexpanded macro: {{name}} or {name}, also URL-encoded, or TikTok's __NAME__
    or pg_catalog.strpos(p_value, '{') > 0
    or pg_catalog.strpos(p_value, '}') > 0
    or pg_catalog.strpos(pg_catalog.lower(p_value), '%7b') > 0
    or pg_catalog.strpos(pg_catalog.lower(p_value), '%7d') > 0
    or (pg_catalog.length(p_value) > 4 and pg_catalog.left(p_value, 2) = '__' and pg_catalog.right(p_value, 2) = '__')
    then
    return null;
  end if;
  return p_value;
end;
$$;

comment on function private.utm_touch_value(text) is
'The value a lead''s first or last touch records for one (trimmed) UTM field: the value, or '
'NULL when it is empty or a placeholder: a script''s text for nothing (undefined, null, NaN, '
'[object Object], None, nil, (not set)) or an unexpanded ad macro ({{campaign.name}}, '
'{campaignid}, %7B%7B...%7D%7D, __CAMPAIGN_NAME__). A utm_source placeholder makes no touch. '
'Used by find_or_create_unified_lead and onai-db consolidate; the journey keeps what was sent.';

revoke all on function private.utm_touch_value(text) from public;
