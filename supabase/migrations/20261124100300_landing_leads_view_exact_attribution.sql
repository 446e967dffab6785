-- landing_leads: metadata carries exactly the attributed UTM, never a mix.
--
-- Issue 3, item 6 (review of 20261123100600): only the first-touch keys that were set
-- replaced the lead's own, so a lead attributed to fb_x whose caller had sent p_metadata
-- {"utm_campaign": "c1"} showed legacy readers campaign c1, and a lead with no touch at all
-- showed the utm_source of its caller's metadata, which is not its attribution (legacy
-- readers attribute by metadata ->> 'utm_source'). Now every utm_* key of the lead's own
-- metadata is left out and the first-touch ones put in; a Landing import without a touch
-- (its legacy UTM was blank) keeps its metadata as Landing showed it. Otherwise the same
-- view as in 20261123100600.

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
    -- a Landing import without a touch: its own utm_* keys, as Landing showed them
    when l.first_utm_source is null and l.legacy_source_table is not null then l.metadata
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
'a Landing import without a touch), synced_to_amocrm is amocrm_synced, legacy_id the old Landing id.';
