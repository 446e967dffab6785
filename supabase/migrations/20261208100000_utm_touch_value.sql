-- private.utm_touch_value(text): a UTM placeholder is no value for a touch.
--
-- Issue 3, items 1 and 7 (first and last touch, attribution; found by review of the legacy
-- fixture against the seeds): a landing page sends a UTM field it had no value for as the
-- text its script makes of nothing ('undefined', 'null', 'NaN', '[object Object]'), and an
-- ad platform's macro arrives unexpanded when its link is opened outside the ad
-- ('{{campaign.name}}' on Facebook, '{campaign_id}' on Google Ads and Yandex Direct,
-- '__CAMPAIGN_NAME__' on TikTok, URL-encoded '%7B%7B...%7D%7D', '*|CAMPAIGN|*' in a
-- Mailchimp letter). A utm_source like that became a lead's first touch, so the lead could
-- never be attributed: a later real touch only became its last touch. Pages that copy
-- Google Analytics' or sourcebuster's values into the form send '(direct)' / '(none)' for a
-- visit that came from no campaign: no touch either (analytics' "last non-direct click").
-- Not placeholders: a bare 'none', which Yandex Direct sends as a real value ({source} on
-- search, {position_type} outside it), and a value with a literal percent sign.
-- This helper gives the value a touch records for one UTM field: the value trimmed of the
-- blanks find_or_create_unified_lead trims, or NULL when it is empty or such a
-- placeholder. What was sent stays in the event's journey row.

create or replace function private.utm_touch_value(p_value text)
returns text
language plpgsql
immutable
strict
parallel safe
set search_path = ''
as $$
declare
  -- blanks as find_or_create_unified_lead trims them (20261123100400)
  c_blank constant text := U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF';
  v_value text := pg_catalog.btrim(p_value, c_blank);
  v_lower text := pg_catalog.lower(v_value);
begin
  if v_value = ''
    -- what scripts make of a missing value, and analytics' words for "no campaign"
    or v_lower in (
      'undefined', 'null', '(null)', 'nil', '<nil>', '(nil)', '(none)', 'nan', '[object object]',
      '[object undefined]', '(not set)', '(not provided)', '(direct)'
    )
    -- an unexpanded macro, whole or within the value: {{name}} or {name}, TikTok's __NAME__,
    -- Mailchimp's *|NAME|*, URL-encoded (once or twice) %7B...%7D
    or pg_catalog.strpos(v_value, '{') > 0
    or pg_catalog.strpos(v_value, '}') > 0
    or (pg_catalog.length(v_value) > 4 and pg_catalog.left(v_value, 2) = '__' and pg_catalog.right(v_value, 2) = '__')
    or (pg_catalog.strpos(v_value, '*|') > 0 and pg_catalog.strpos(v_value, '|*') > 0)
    or (pg_catalog.strpos(v_value, '%') > 0 and v_lower ~ '%(25)*7b.*%(25)*7d')
    then
    return null;
  end if;
  return v_value;
end;
$$;

comment on function private.utm_touch_value(text) is
'The value a lead''s first or last touch records for one UTM field: the value trimmed of '
'blanks, or NULL when it is empty or a placeholder: a script''s text for nothing (undefined, '
'null, (null), nil, <nil>, (nil), NaN, [object Object], [object Undefined]), analytics'' words '
'for no campaign ((none), (not set), (not provided), (direct)), or an ad macro left '
'unexpanded anywhere in it ({{campaign.name}}, {campaignid}, %7B%7B...%7D%7D, '
'__CAMPAIGN_NAME__, *|CAMPAIGN|*). A bare none is a value (Yandex Direct sends it). A '
'utm_source placeholder makes no touch. Used by find_or_create_unified_lead and onai-db '
'consolidate; the journey keeps what was sent.';

revoke all on function private.utm_touch_value(text) from public;
