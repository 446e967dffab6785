-- The comment on private.utm_touch_value says where each macro form counts.
--
-- Issue 3 (found by review): the comment of 20261208100000 listed TikTok's
-- __CAMPAIGN_NAME__ among macros "left unexpanded anywhere in it", but the function takes a
-- __NAME__ macro only as the whole value (a value such as promo___CAMPAIGN_NAME__ stays a
-- value). The README says so since 20261209100000; the comment now does too. No change in
-- behaviour.

comment on function private.utm_touch_value(text) is
'The value a lead''s first or last touch records for one UTM field: the value trimmed of '
'blanks, or NULL when it is empty or a placeholder: a script''s text for nothing (undefined, '
'null, (null), nil, <nil>, (nil), NaN, [object Object], [object Undefined]), analytics'' words '
'for no campaign ((none), (not set), (not provided), (direct)), or an ad macro left '
'unexpanded: a brace anywhere in it ({{campaign.name}}, {campaignid}), %7B...%7D URL-encoded '
'once or twice, Mailchimp''s *|...|* anywhere, or TikTok''s __CAMPAIGN_NAME__ as the whole '
'value. A bare none is a value (Yandex Direct sends it). A utm_source placeholder makes no '
'touch. Used by find_or_create_unified_lead and onai-db consolidate; the journey keeps what '
'was sent.';
