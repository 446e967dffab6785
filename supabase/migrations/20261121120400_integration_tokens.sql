-- integration_tokens: OAuth tokens of integrations (AmoCRM) and a single-flight refresh.
--
-- Seed 000, PART 2.1: AmoCRM tokens lived in the Landing DB `integration_tokens` and were
-- refreshed on 401 with an in-process request queue. An AmoCRM refresh token is single
-- use (each refresh returns a new pair and kills the old one; research §5.1), so with
-- several workers two refreshes would log the integration out. Refresh is therefore a
-- lease in the database: begin_integration_token_refresh() hands it to one worker; the
-- others see "busy" and wait until token_version moves, then use the new token.
-- Only the service role can read the table: it holds credentials.

-- Tables -------------------------------------------------------------------------------

create table public.integration_tokens (
  service_name text primary key check (service_name ~ '^[a-z][a-z0-9_]{1,49}$'),
  access_token text not null,
  refresh_token text,
  expires_at timestamptz,
  token_version bigint not null default 1,
  refresh_owner text,
  refresh_lease_expires_at timestamptz,
  last_refreshed_at timestamptz,
  last_refresh_error text check (pg_catalog.length(last_refresh_error) <= 2000),
  created_at timestamptz not null default pg_catalog.now(),
  updated_at timestamptz not null default pg_catalog.now(),
  constraint integration_tokens_refresh_lease check (
    (refresh_owner is null) = (refresh_lease_expires_at is null)
  )
);

comment on table public.integration_tokens is
'OAuth tokens per integration (service role only). Refresh under the single-flight lease: '
'begin_integration_token_refresh -> store_integration_token | abort_integration_token_refresh.';
comment on column public.integration_tokens.token_version is
'Bumped on every stored token; a worker that saw version n and got 401 refreshes only if it is still n.';
comment on column public.integration_tokens.refresh_owner is
'Worker holding the refresh lease (NULL = nobody is refreshing).';

-- Grants (policies/outbox.yaml) ------------------------------------------------------------

grant select, insert, update, delete on public.integration_tokens to service_role;

-- Triggers -------------------------------------------------------------------------------

create trigger integration_tokens_set_updated_at
before update on public.integration_tokens
for each row execute function private.set_updated_at();

-- RLS: service role only --------------------------------------------------------------------

alter table public.integration_tokens enable row level security;

-- API functions --------------------------------------------------------------------------

create or replace function public.begin_integration_token_refresh(
  p_service text, p_worker text, p_seen_version bigint, p_lease_seconds double precision default 30
)
returns text
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_row public.integration_tokens;
begin
  if p_worker is null or pg_catalog.length(pg_catalog.btrim(p_worker)) not between 1 and 200 then
    raise exception 'worker id must be a non-empty name of at most 200 characters'
    using errcode = '22023', hint = 'Pass the worker id, e.g. host:pid:thread.';
  end if;
  if p_lease_seconds is null or p_lease_seconds <= 0 or p_lease_seconds > 600 then
    raise exception 'refresh lease must be between 0 and 600 seconds' using errcode = '22023';
  end if;
  select * into v_row from public.integration_tokens as t where t.service_name = p_service for update;
  if not found then
    raise exception 'no tokens stored for %', p_service
    using errcode = 'P0002', hint = 'Store the first pair with store_integration_token() after the OAuth consent.';
  end if;
  if v_row.token_version > coalesce(p_seen_version, 0) then
    return 'refreshed';  -- someone else already refreshed: read the row again
  end if;
  if v_row.refresh_owner is not null
     and v_row.refresh_owner <> p_worker
     and v_row.refresh_lease_expires_at > pg_catalog.clock_timestamp() then
    return 'busy';  -- another worker is refreshing right now: wait for token_version to move
  end if;
  update public.integration_tokens as t
  set
    refresh_owner = p_worker,
    refresh_lease_expires_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => p_lease_seconds)
  where t.service_name = p_service;
  return 'acquired';
end;
$$;

comment on function public.begin_integration_token_refresh(text, text, bigint, double precision) is
'Single-flight refresh: acquired (you refresh, then store or abort), busy (another worker is '
'refreshing; wait), refreshed (token_version moved past p_seen_version; re-read the token).';

revoke execute on function public.begin_integration_token_refresh(text, text, bigint, double precision)
from public, anon, authenticated;
grant execute on function public.begin_integration_token_refresh(text, text, bigint, double precision)
to service_role;

create or replace function public.store_integration_token(
  p_service text,
  p_access_token text,
  p_refresh_token text,
  p_expires_in_seconds double precision,
  p_worker text default null
)
returns bigint
language plpgsql
volatile
set search_path = ''
as $$
declare
  v_version bigint;
begin
  if p_access_token is null or p_access_token = '' then
    raise exception 'an access token is required' using errcode = '22023';
  end if;
  insert into public.integration_tokens as t (service_name, access_token, refresh_token, expires_at, last_refreshed_at)
  values (
    p_service, p_access_token, p_refresh_token,
    pg_catalog.now() + pg_catalog.make_interval(secs => p_expires_in_seconds), pg_catalog.now()
  )
  on conflict (service_name) do update
    set
      access_token = excluded.access_token,
      refresh_token = coalesce(excluded.refresh_token, t.refresh_token),
      expires_at = excluded.expires_at,
      token_version = t.token_version + 1,
      last_refreshed_at = excluded.last_refreshed_at,
      last_refresh_error = null,
      refresh_owner = case when t.refresh_owner = p_worker then null else t.refresh_owner end,
      refresh_lease_expires_at = case when t.refresh_owner = p_worker then null else t.refresh_lease_expires_at end
  returning t.token_version into v_version;
  return v_version;
end;
$$;

comment on function public.store_integration_token(text, text, text, double precision, text) is
'Stores a token pair (first consent or a refresh) and bumps token_version; releases the refresh '
'lease of p_worker. The new pair is stored even if the lease lapsed: the provider already '
'invalidated the old refresh token.';

revoke execute on function public.store_integration_token(text, text, text, double precision, text)
from public, anon, authenticated;
grant execute on function public.store_integration_token(text, text, text, double precision, text)
to service_role;

create or replace function public.abort_integration_token_refresh(
  p_service text, p_worker text, p_error text
)
returns boolean
language sql
volatile
set search_path = ''
as $$
  with released as (
    update public.integration_tokens as t
    set refresh_owner = null, refresh_lease_expires_at = null, last_refresh_error = pg_catalog.left(p_error, 2000)
    where t.service_name = p_service and t.refresh_owner = p_worker
    returning 1
  )

  select exists (select 1 from released)
$$;

comment on function public.abort_integration_token_refresh(text, text, text) is
'Gives the refresh lease back after a failed refresh and records the (redacted) error.';

revoke execute on function public.abort_integration_token_refresh(text, text, text)
from public, anon, authenticated;
grant execute on function public.abort_integration_token_refresh(text, text, text) to service_role;
