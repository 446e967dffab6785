-- A change notice (email_changed, password_changed) needs p_event_key.
--
-- The job's idempotency key was '<template>/<user id>' plus the event key when given. A
-- notice queued without one was therefore once per user: the second password change of a
-- user queued nothing, and the notice was silently lost. Such a call is now refused
-- (22023) with a hint; the welcome e-mail stays once per user.

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

  v_payload := pg_catalog.jsonb_strip_nulls(pg_catalog.jsonb_build_object(
    'template', p_template,
    'user_id', p_user_id,
    'to', case when p_template = 'email_changed' then p_old_email else v_email end,
    'new_email', case when p_template = 'email_changed' then v_email end,
    'name', v_name
  ));
  return public.enqueue_outbox_job(
    'email',
    v_payload,
    p_template || '/' || p_user_id || coalesce('/' || p_event_key, '')
  );
end;
$$;

comment on function public.enqueue_account_email(uuid, text, text, text) is
'Queues an account e-mail for an auth user: tripwire_welcome (once per user; carries a '
'set-password link made at send time, never a password), email_changed (to the old address; '
'pass p_old_email) or password_changed. The two change notices need p_event_key, an id of '
'the change: one e-mail per key, so a retried call sends once and a later change again.';
