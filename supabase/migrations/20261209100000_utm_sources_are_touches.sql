-- A targetologist's UTM source is a value a touch can record.
--
-- Issue 3, item 7 (found by review): since 20261208100100 a UTM placeholder ('nil', 'nan',
-- 'null', '(direct)', a macro; private.utm_touch_value) makes no touch, so a lead is never
-- attributed through it. A source like that in traffic_user_utm_sources was accepted and
-- then matched nothing, with no word to the admin who assigned it. It is refused now (23514,
-- naming this constraint). A row stored before is left as it is (nothing is deleted): the
-- constraint is validated when there is none, otherwise the migration names them in a
-- warning and checks every new or changed row only.

alter table public.traffic_user_utm_sources
add constraint traffic_user_utm_sources_utm_source_is_a_touch check (
  private.utm_touch_value(utm_source) is not null
) not valid;

comment on constraint traffic_user_utm_sources_utm_source_is_a_touch on public.traffic_user_utm_sources is
'The source is a value a touch can record, not a placeholder such as nil, null, (direct) or '
'{campaign} (private.utm_touch_value): a lead is never attributed through a placeholder.';

-- the check runs as the role that writes the row (an admin through PostgREST)
grant execute on function private.utm_touch_value(text) to authenticated, service_role;

do $$
declare
  v_found text;
begin
  select pg_catalog.string_agg(pg_catalog.quote_literal(s.utm_source), ', ' order by s.utm_source)
  into v_found
  from public.traffic_user_utm_sources as s
  where private.utm_touch_value(s.utm_source) is null;
  if v_found is null then
    alter table public.traffic_user_utm_sources validate constraint traffic_user_utm_sources_utm_source_is_a_touch;
  else
    raise warning using
      message = pg_catalog.format(
        'traffic_user_utm_sources holds UTM placeholders no lead is attributed through: %s', v_found
      ),
      hint = 'Delete or rename them; then validate the constraint '
      || 'traffic_user_utm_sources_utm_source_is_a_touch.';
  end if;
end;
$$;
