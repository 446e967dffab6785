-- Legacy compatibility views: landing_leads and lead_journey, as the old code reads them.
--
-- Seed 000 ("Унифицировать таблицы лидов", step 3) and seed 004 (phase 3): the backend
-- still selects from landing_leads / lead_journey while it is switched over. These views
-- give it the seeds' shapes over the unified tables. security_invoker: the caller's RLS
-- applies exactly as on the tables (a view owned by postgres would otherwise bypass it).

create view public.landing_leads
with (security_invoker = true)
as
select
  l.id,
  l.email,
  l.name,
  l.phone,
  l.phone_normalized,
  coalesce(l.source_raw, l.source) as source,
  l.metadata,
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
  l.updated_at
from public.traffic_leads as l
where l.merged_into is null;

comment on view public.landing_leads is
'Compatibility: the legacy Landing landing_leads shape over live traffic_leads (read-only).';

create view public.lead_journey
with (security_invoker = true)
as
select
  j.id,
  j.lead_id,
  j.stage,
  j.source,
  j.metadata,
  j.occurred_at as created_at
from public.traffic_lead_journey as j;

comment on view public.lead_journey is
'Compatibility: the legacy Landing lead_journey shape over traffic_lead_journey (read-only).';

grant select on public.landing_leads to authenticated, service_role;
grant select on public.lead_journey to authenticated, service_role;
