-- The enqueue functions check their own arguments before they make an idempotency key.
--
-- Found by review of the outbox's enqueue functions:
-- 1. enqueue_account_email('tripwire_welcome', p_event_key => ...) added the key to the
--    job's idempotency key, so each call with a new key queued another welcome e-mail (each
--    with a new set-password link that cancels the one before), although the welcome e-mail
--    is once per user. The welcome e-mail's key is now the user alone; p_event_key is not
--    part of it (a backend passing one for every sign-up keeps working).
-- 2. email_changed took a blank or invalid p_old_email: the job went dead at send time
--    ("email job without a recipient", or Resend's 422), and requeueing could not help, as
--    the bad value was in the payload. It is now refused (22023) unless it is an address
--    private.normalize_email accepts.
-- 3. An over-long p_event_key (enqueue_account_email) or p_idempotency_key
--    (enqueue_telegram_notification) failed with enqueue_outbox_job's message about the
--    derived key, whose hint names an argument the caller never passed. The caller's own
--    argument is now checked (22001: at most 200 characters for an event key, 180 for a
--    Telegram key, so that the derived key, with the chat id and group type, fits).
-- 4. enqueue_telegram_notification with a NULL idempotency key failed only when an active
--    group existed (and with the derived key's message); with a NULL or empty p_group_types
--    it returned 0 in silence. Both are refused (22023) whatever groups exist.
-- Otherwise the same bodies as in 20261203100000_account_email_change_notices_need_an_event_key.sql
-- and 20261121120300_telegram_groups.sql.

-- security definer: reads the recipient's address from auth.users, which the API roles
-- (service_role included) have no grant on; it returns only the job id.
create or replace function public.enqueue_account_email(
  p_user_id uuid,
  p_template text,
  p_event_key text default null,
  p_old_email text default null
)
returns bigint
language plpgsql
volatile
security definer
set search_path = ''
as $$
declare
  v_email text;
  v_name text;
  v_payload jsonb;
begin
  if p_template is null or p_template not in ('tripwire_welcome', 'email_changed', 'password_changed') then
    raise exception 'unknown account e-mail template %', coalesce(p_template, 'NULL')
    using errcode = '22023', hint = 'Use tripwire_welcome, email_changed or password_changed.';
  end if;
  if p_template <> 'tripwire_welcome' and coalesce(pg_catalog.btrim(p_event_key), '') = '' then
    raise exception '% needs p_event_key: without it a later change of the same user would send nothing',
      p_template
    using errcode = '22023',
    hint = 'Pass an id of this change (the auth audit event id, or the time of the change): '
    'a retried call then queues one e-mail, and the next change another.';
  end if;
  if pg_catalog.length(p_event_key) > 200 then
    raise exception 'p_event_key is too long: % characters, at most 200 are allowed', pg_catalog.length(p_event_key)
    using errcode = '22001', hint = 'Pass a short id of the change (the auth audit event id).';
  end if;
  select u.email, coalesce(u.raw_user_meta_data ->> 'full_name', u.raw_user_meta_data ->> 'name')
  into v_email, v_name
  from auth.users as u
  where u.id = p_user_id;
  if v_email is null then
    raise exception 'no auth user % with an e-mail address', p_user_id
    using errcode = '22023', hint = 'Create the user in Supabase Auth first.';
  end if;
  if p_template = 'email_changed' and p_old_email is null then
    raise exception 'email_changed needs the previous address'
    using errcode = '22023', hint = 'The notice goes to the old address: pass p_old_email.';
  end if;
  if p_template = 'email_changed' and private.normalize_email(p_old_email) is null then
    raise exception 'p_old_email % is not an e-mail address', pg_catalog.quote_literal(p_old_email)
    using errcode = '22023',
    hint = 'Pass the previous address as the user had it (user@example.kz; a Cyrillic domain in its xn-- form).';
  end if;

  v_payload := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'template', p_template,
    'user_id', p_user_id,
    'to', case when p_template = 'email_changed' then pg_catalog.btrim(p_old_email) else v_email end,
    'new_email', case when p_template = 'email_changed' then v_email end,
    'name', v_name
  ));
  return public.enqueue_outbox_job(
    'email',
    v_payload,
    p_template || '/' || p_user_id
    || case when p_template <> 'tripwire_welcome' then '/' || p_event_key else '' end
  );
end;
$$;

comment on function public.enqueue_account_email(uuid, text, text, text) is
'Queues an account e-mail for an auth user: tripwire_welcome (once per user, whatever p_event_key '
'says; carries a set-password link made at send time, never a password), email_changed (to the old '
'address: pass p_old_email, an address) or password_changed. The two change notices need '
'p_event_key (at most 200 characters), an id of the change: one e-mail per key, compared exactly as '
'sent, so a retried call sends once and a later change again.';

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
  if coalesce(pg_catalog.cardinality(p_group_types), 0) = 0 or pg_catalog.array_position(p_group_types, null) is not null then
    raise exception 'p_group_types must name at least one group type, without NULLs'
    using errcode = '22023', hint = 'Pass the group types to notify, e.g. array[''leads''].';
  end if;
  if coalesce(pg_catalog.btrim(p_idempotency_key), '') = '' then
    raise exception 'p_idempotency_key must not be NULL or blank'
    using errcode = '22023',
    hint = 'Pass an id of the event (e.g. lead/<lead id>): a retried call then sends each group one message.';
  end if;
  if pg_catalog.length(p_idempotency_key) > 180 then
    raise exception 'p_idempotency_key is too long: % characters, at most 180 are allowed',
      pg_catalog.length(p_idempotency_key)
    using errcode = '22001', hint = 'Pass a short id of the event, e.g. lead/<lead id>.';
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
'own); returns how many jobs exist for it. Idempotent per p_idempotency_key (required, at most 180 '
'characters) and chat; p_group_types must name at least one type.';
