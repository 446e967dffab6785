-- enqueue_account_email sends the e-mail-change notice to the old address as it is read.
--
-- Found by review: the check of p_old_email uses private.normalize_email, but the job's
-- recipient was the argument as sent, trimmed of spaces only. Since 20261214100400 reads a
-- pasted address ('mailto:old@example.kz', 'old@example.kz.', one inside bidirectional
-- marks), such a value passed the check and went to Resend as it was: refused there, the
-- job went dead and the notice never reached the old address. The job now goes to the
-- address normalize_email reads (A-Z lower-cased, as every identity address). Otherwise the
-- same function as 20261213100200.

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
    'to', case when p_template = 'email_changed' then private.normalize_email(p_old_email) else v_email end,
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
'address: pass p_old_email, an address; the notice goes to it as normalize_email reads it) or '
'password_changed. The two change notices need p_event_key (at most 200 characters), an id of '
'the change: one e-mail per key, compared exactly as sent, so a retried call sends once and a '
'later change again.';
