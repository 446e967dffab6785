-- deactivate_telegram_group: only the groups the refused bot serves; moving a migrated chat.
--
-- Found by a review of the worker (20261121120300): one chat may be registered for several
-- group types, each sent by its own bot (leads, admin, mentor). A 403 ("bot was kicked")
-- answers for one bot, but deactivate_telegram_group(chat_id, reason) switched off every
-- group of the chat, so the other bots' notifications stopped too, silently. It now takes
-- the bot and deactivates that bot's groups of the chat only; the two-argument form is
-- dropped (the worker was its only caller).
--
-- And when Telegram says a group became a supergroup (migrate_to_chat_id), the worker moved
-- every row of the old chat id to the new one in one UPDATE, which failed on the unique
-- (chat_id, group_type) when the new chat was registered for that group type already: the
-- job was retried until dead and the message never sent. move_telegram_chat moves the rows
-- the new chat lacks and deactivates the others (the new chat's own row stays as it is).

drop function public.deactivate_telegram_group(bigint, text);

create function public.deactivate_telegram_group(p_chat_id bigint, p_reason text, p_bot text)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_count integer;
begin
  if p_bot is null then
    raise exception using
      errcode = '22023',
      message = 'p_bot must not be NULL',
      hint = 'Name the bot Telegram refused (leads, admin or mentor): other bots may still serve the chat.';
  end if;
  update public.telegram_groups as g
  set is_active = false, deactivated_at = pg_catalog.now(), deactivation_reason = pg_catalog.left(p_reason, 500)
  where g.chat_id = p_chat_id and g.bot = p_bot and g.is_active;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

comment on function public.deactivate_telegram_group(bigint, text, text) is
'Deactivates the groups of a chat that bot p_bot sends to (Telegram answered that bot 403 or chat not '
'found); the groups other bots send to stay active. Returns how many.';

revoke execute on function public.deactivate_telegram_group(bigint, text, text) from public, anon, authenticated;
grant execute on function public.deactivate_telegram_group(bigint, text, text) to service_role;

create function public.move_telegram_chat(p_old_chat_id bigint, p_new_chat_id bigint)
returns integer
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_moved integer;
begin
  if p_old_chat_id is null or p_new_chat_id is null then
    raise exception using
      errcode = '22023',
      message = 'both chat ids are required',
      hint = 'Pass the old chat id and Telegram''s migrate_to_chat_id.';
  end if;
  if p_old_chat_id = p_new_chat_id then
    return 0;
  end if;
  -- a group type the new chat is registered for already keeps the new chat's row
  update public.telegram_groups as o
  set
    is_active = false,
    deactivated_at = coalesce(o.deactivated_at, pg_catalog.now()),
    deactivation_reason = pg_catalog.format('migrated to supergroup %s, registered there already', p_new_chat_id)
  where
    o.chat_id = p_old_chat_id
    and exists (
      select 1 from public.telegram_groups as n
      where n.chat_id = p_new_chat_id and n.group_type = o.group_type
    );
  update public.telegram_groups as o
  set chat_id = p_new_chat_id
  where
    o.chat_id = p_old_chat_id
    and not exists (
      select 1 from public.telegram_groups as n
      where n.chat_id = p_new_chat_id and n.group_type = o.group_type
    );
  get diagnostics v_moved = row_count;
  return v_moved;
end;
$$;

comment on function public.move_telegram_chat(bigint, bigint) is
'Telegram migrated a group to a supergroup: its rows move to the new chat id, except group types the new '
'chat is registered for already (those old rows are deactivated). Returns how many rows moved.';

revoke execute on function public.move_telegram_chat(bigint, bigint) from public, anon, authenticated;
grant execute on function public.move_telegram_chat(bigint, bigint) to service_role;
