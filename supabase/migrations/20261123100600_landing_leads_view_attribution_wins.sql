-- landing_leads: the attributed UTM wins over utm_* keys in the lead's own metadata.
--
-- Issue 3, item 6 (security review of 20261122130500): the view put the first-touch UTM
-- into metadata and then the lead's stored metadata over it, so a caller of
-- find_or_create_unified_lead who sent p_metadata {"utm_source": "..."} showed legacy
-- readers (which attribute by metadata ->> 'utm_source') another source than the lead is
-- attributed to. The first-touch values now come last; a lead without a touch still shows
-- the utm_* keys of its own metadata (Landing rows imported with them). Otherwise the same
-- view as in 20261122130500.

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
  l.metadata || jsonb_strip_nulls(jsonb_build_object(
    'utm_source', l.first_utm_source,
    'utm_medium', l.first_utm_medium,
    'utm_campaign', l.first_utm_campaign,
    'utm_content', l.first_utm_content,
    'utm_term', l.first_utm_term
  )) as metadata,
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
'carries the first-touch utm_* keys (over any utm_* keys of the lead''s own metadata), synced_to_amocrm is '
'amocrm_synced, legacy_id the old Landing id.';
