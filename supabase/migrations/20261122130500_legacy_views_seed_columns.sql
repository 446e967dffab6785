-- Legacy views: the columns and values old code reads, as the seeds show them.
--
-- Issue 3, item 6 (review of the compatibility views). Same views, same rights
-- (security_invoker), three changes:
-- * landing_leads.synced_to_amocrm: seed 000 (1.3) counts leads by this column; it is
--   amocrm_synced under its legacy name. landing_leads.legacy_id: the old Landing id of an
--   imported lead, so old references can still be looked up.
-- * landing_leads.metadata carries the first-touch UTM as utm_source, utm_medium,
--   utm_campaign, utm_content and utm_term keys, where the legacy Landing app kept them
--   (the lead's own metadata keys win).
-- * lead_journey.source is the source as sent (the legacy spelling, e.g. proftest), as in
--   landing_leads.source, so one filter works on both views.

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
  jsonb_strip_nulls(jsonb_build_object(
    'utm_source', l.first_utm_source,
    'utm_medium', l.first_utm_medium,
    'utm_campaign', l.first_utm_campaign,
    'utm_content', l.first_utm_content,
    'utm_term', l.first_utm_term
  )) || l.metadata as metadata,
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
'carries the first-touch utm_* keys, synced_to_amocrm is amocrm_synced, legacy_id the old Landing id.';

create or replace view public.lead_journey
with (security_invoker = true)
as
select
  j.id,
  j.lead_id,
  j.stage,
  coalesce(j.input ->> 'source', j.source) as source,
  j.metadata,
  j.occurred_at as created_at
from public.traffic_lead_journey as j;

comment on view public.lead_journey is
'Compatibility: the legacy Landing lead_journey shape over traffic_lead_journey (read-only); source as sent.';
