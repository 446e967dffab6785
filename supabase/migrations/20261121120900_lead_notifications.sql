-- Telegram notification of a new lead to every active lead group.
--
-- Seed 000, PART 2.3: sendLeadNotification() posted each lead to all active groups,
-- split by lead type (ПРОФТЕСТ / ЭКСПРЕСС КУРС). Here the message goes to groups of type
-- `leads` (all leads) and `leads_<source>` (one landing), one outbox job per group.

create or replace function public.enqueue_lead_notification(p_lead_id uuid)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_lead public.traffic_leads;
  v_label text;
  v_text text;
begin
  select * into v_lead from public.traffic_leads as l where l.id = p_lead_id;
  if not found then
    raise exception 'no lead %', p_lead_id using errcode = '22023', hint = 'Pass a traffic_leads.id.';
  end if;
  v_label := case v_lead.source
    when 'profitest' then 'ПРОФТЕСТ'
    when 'expresscourse' then 'ЭКСПРЕСС КУРС'
    else pg_catalog.upper(coalesce(v_lead.source, 'без источника'))
  end;
  v_text := pg_catalog.concat_ws(
    E'\n',
    'Новый лид (' || v_label || ')',
    'Имя: ' || coalesce(v_lead.name, '—'),
    'Телефон: ' || coalesce(v_lead.phone_normalized, v_lead.phone, '—'),
    'Email: ' || coalesce(v_lead.email, '—'),
    'UTM: ' || pg_catalog.concat_ws(' / ', v_lead.first_utm_source, v_lead.first_utm_medium, v_lead.first_utm_campaign)
  );
  return public.enqueue_telegram_notification(
    array['leads', 'leads_' || coalesce(v_lead.source, 'unknown')],
    pg_catalog.left(v_text, 4096),
    'lead_notification/' || p_lead_id
  );
end;
$$;

comment on function public.enqueue_lead_notification(uuid) is
'Queues the "new lead" Telegram message to every active group of type leads or '
'leads_<source>; once per lead and chat. Returns the number of groups.';

revoke execute on function public.enqueue_lead_notification(uuid) from public, anon, authenticated;
grant execute on function public.enqueue_lead_notification(uuid) to service_role;
