-- landing_leads: metadata's utm_source is the attribution key, as the utm_source column.
--
-- Issue 3, item 6 (found by a review of 20261128100200): legacy readers attribute by
-- metadata ->> 'utm_source' (20261124100300), and the view put the first touch's
-- utm_source there as it was sent ('FB_Arystan'), while the attribution key, the view's
-- utm_source column and traffic_user_utm_sources are trimmed and lower-case
-- ('fb_arystan'): a legacy join of the two found nothing. Now metadata carries the
-- attribution key; the other first-touch utm_* values stay as sent. Otherwise the same
-- view as in 20261128100200.

create or replace view public.landing_leads
with (security_invoker = true)
as
select
  l.id,
  l.email,
  l.name,
  l.phone,
  l.phone_normalized,
  coalesce(l.source_raw, l.source) as source,
  case
    -- a Landing import without a touch: its own utm_* keys, as Landing showed them, but no
    -- utm_source: its import found none (a non-blank one would have made a touch), so one
    -- there now came with a later call's metadata and is not the lead's attribution
    when l.first_utm_source is null and l.legacy_source_table is not null then l.metadata - 'utm_source'
    else
      (l.metadata - array['utm_source', 'utm_medium', 'utm_campaign', 'utm_content', 'utm_term'])
      || jsonb_strip_nulls(jsonb_build_object(
        'utm_source', l.utm_source,
        'utm_medium', l.first_utm_medium,
        'utm_campaign', l.first_utm_campaign,
        'utm_content', l.first_utm_content,
        'utm_term', l.first_utm_term
      ))
  end as metadata,
  l.amocrm_lead_id,
  l.amocrm_contact_id,
  l.amocrm_synced,
  l.email_sent,
  l.sms_sent,
  l.email_clicked,
  l.email_clicked_at,
  l.sms_clicked,
  l.sms_clicked_at,
  l.click_count,
  l.utm_source,
  l.created_at,
  l.updated_at,
  l.amocrm_synced as synced_to_amocrm,
  l.legacy_id
from public.traffic_leads as l
where l.merged_into is null;

comment on view public.landing_leads is
'Compatibility: the legacy Landing landing_leads shape over live traffic_leads (read-only); metadata '
'carries exactly the first-touch utm_* keys, utm_source as the attribution key (lower-case, like the '
'utm_source column); utm_* keys of the lead''s own metadata are left out, except on a Landing import '
'without a touch, which shows its other utm_* keys and no utm_source; synced_to_amocrm is amocrm_synced, '
'legacy_id the old Landing id.';
