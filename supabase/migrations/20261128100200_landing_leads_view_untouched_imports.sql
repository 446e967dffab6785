-- landing_leads: a Landing import without a touch shows no utm_source.
--
-- Issue 3, item 6 (found by a review of 20261124100300): legacy readers attribute by
-- metadata ->> 'utm_source', and a Landing import without a touch showed its metadata as
-- stored, which includes the keys later calls merge in from p_metadata: a call sending
-- {"utm_source": "fb_t2"} without p_utm_source made legacy readers attribute the lead to
-- fb_t2 while it has no attribution (a lead not from Landing showed none). Its import found
-- no utm_source (a non-blank one makes a touch), so the view leaves that key out; the other
-- utm_* keys stay as Landing showed them. Otherwise the same view as in 20261124100300.

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
        'utm_source', l.first_utm_source,
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
'carries exactly the first-touch utm_* keys (utm_* keys of the lead''s own metadata are left out, except on '
'a Landing import without a touch, which shows its other utm_* keys and no utm_source), synced_to_amocrm is '
'amocrm_synced, legacy_id the old Landing id.';
