-- Account e-mails through the outbox: Tripwire welcome, e-mail changed, password changed.
--
-- Seed 000, PART 1.2 and 2.2: the welcome e-mail carried a login and a password kept in
-- plaintext (`tripwire_users.generated_password`) and was never retried. Now a job holds
-- only the user id, the address and the template name; at send time the worker asks
-- Supabase Auth for a one-time set-password (recovery) link and puts it only into the
-- e-mail it sends. No password exists anywhere: not in tables, queue payloads or logs.

-- API functions --------------------------------------------------------------------------

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
'pass p_old_email) or password_changed. p_event_key makes repeated events distinct.';

revoke execute on function public.enqueue_account_email(uuid, text, text, text)
from public, anon, authenticated;
grant execute on function public.enqueue_account_email(uuid, text, text, text) to service_role;
