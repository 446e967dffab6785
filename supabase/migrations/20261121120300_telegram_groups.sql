-- telegram_groups: the chats the Telegram bots notify, per group type.
--
-- Seed 000, PART 2.3 (Landing DB `telegram_groups`): lead notifications go to every
-- active group of a type; a group that answers 403 (bot kicked, chat deactivated) or
-- 400 "chat not found" is deactivated automatically, and the audit asked for a way to
-- see how many groups are active. The worker deactivates through
-- deactivate_telegram_group(); admins manage the list; the monitor counts both states.

-- Tables -------------------------------------------------------------------------------

create table public.telegram_groups (
  id uuid primary key default gen_random_uuid(),
  chat_id bigint not null,
  group_type text not null check (group_type ~ '^[a-z][a-z0-9_]{0,49}$'),
  bot text not null default 'leads' check (bot in ('leads', 'admin', 'mentor')),
  title text check (pg_catalog.length(title) <= 255),
  is_active boolean not null default true,
  deactivated_at timestamptz,
  deactivation_reason text check (pg_catalog.length(deactivation_reason) <= 500),
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  unique (chat_id, group_type),
  constraint telegram_groups_deactivated_when_inactive check (is_active = (deactivated_at is null))
);

comment on table public.telegram_groups is
'Telegram chats notified per group type (e.g. leads, leads_proftest); inactive ones are skipped.';
comment on column public.telegram_groups.group_type is
'What the chat receives: leads (every lead), leads_<source> (one landing), admin, ...';
comment on column public.telegram_groups.bot is
'Which bot sends: leads, admin or mentor (TELEGRAM_LEADS_BOT_TOKEN, ..._ADMIN_..., ..._MENTOR_...).';
comment on column public.telegram_groups.deactivation_reason is
'Telegram''s description when the worker deactivated the group (e.g. Forbidden: bot was kicked ...).';

create index telegram_groups_active_type_idx on public.telegram_groups (group_type) where is_active;

-- Grants (policies/outbox.yaml) ------------------------------------------------------------

grant select, insert, update, delete on public.telegram_groups to authenticated, service_role;

-- Triggers -------------------------------------------------------------------------------

create trigger telegram_groups_set_updated_at
before update on public.telegram_groups
for each row execute function private.set_updated_at();

-- RLS ----------------------------------------------------------------------------------

alter table public.telegram_groups enable row level security;

create policy "admins see telegram groups"
on public.telegram_groups
for select
to authenticated
using ((select private.has_role('admin')));

create policy "admins add telegram groups"
on public.telegram_groups
for insert
to authenticated
with check ((select private.has_role('admin')));

create policy "admins update telegram groups"
on public.telegram_groups
for update
to authenticated
using ((select private.has_role('admin')))
with check ((select private.has_role('admin')));

create policy "admins delete telegram groups"
on public.telegram_groups
for delete
to authenticated
using ((select private.has_role('admin')));

-- API functions --------------------------------------------------------------------------

create or replace function public.deactivate_telegram_group(p_chat_id bigint, p_reason text)
returns integer
language sql
volatile
set search_path = ''
as $$
  with changed as (
    update public.telegram_groups as g
    set is_active = false, deactivated_at = pg_catalog.now(), deactivation_reason = pg_catalog.left(p_reason, 500)
    where g.chat_id = p_chat_id and g.is_active
    returning 1
  )

  select count(*)::integer from changed
$$;

comment on function public.deactivate_telegram_group(bigint, text) is
'Deactivates every group row of a chat (Telegram said 403 or chat not found); returns how many.';

revoke execute on function public.deactivate_telegram_group(bigint, text) from public, anon, authenticated;
grant execute on function public.deactivate_telegram_group(bigint, text) to service_role;

create or replace function public.enqueue_telegram_notification(
  p_group_types text[], p_text text, p_idempotency_key text
)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_count integer := 0;
  v_group record;
begin
  if p_text is null or pg_catalog.length(pg_catalog.btrim(p_text)) = 0 or pg_catalog.length(p_text) > 4096 then
    raise exception 'a Telegram message needs 1 to 4096 characters of text'
    using errcode = '22023', hint = 'Telegram rejects longer messages; shorten the text.';
  end if;
  for v_group in
    select g.chat_id, g.group_type, g.bot
    from public.telegram_groups as g
    where g.is_active and g.group_type = any(p_group_types)
    order by g.chat_id, g.group_type
  loop
    perform public.enqueue_outbox_job(
      'telegram',
      pg_catalog.jsonb_build_object(
        'chat_id', v_group.chat_id, 'group_type', v_group.group_type, 'bot', v_group.bot, 'text', p_text
      ),
      p_idempotency_key || '/' || v_group.chat_id || '/' || v_group.group_type
    );
    v_count := v_count + 1;
  end loop;
  return v_count;
end;
$$;

comment on function public.enqueue_telegram_notification(text[], text, text) is
'Fans a message out: one outbox job per active group of the given types (each retried on its '
'own); returns how many jobs exist for it. Idempotent per p_idempotency_key and chat.';

revoke execute on function public.enqueue_telegram_notification(text[], text, text)
from public, anon, authenticated;
grant execute on function public.enqueue_telegram_notification(text[], text, text) to service_role;
