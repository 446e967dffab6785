-- A targetologist's UTM source is exactly the value a touch records: no blanks around it.
--
-- Issue 3, item 7 (found by review of 20261209100000): the constraint refused placeholders
-- but took a source with a no-break space, a tab or a zero-width space around it
-- ('fb_nbsp' || U&'\00A0'). A touch records the value with those trimmed
-- (private.utm_touch_value), so the source matched no lead, with no word to the admin who
-- assigned it: the case that constraint was written to close. It now asks that the source
-- be what utm_touch_value makes of it (23514, same constraint name). Rows stored before are
-- left as they are (nothing is deleted or renamed): the constraint is validated when there
-- is none, otherwise it checks new and changed rows only, and
-- `onai-db monitor` lists it among the constraints not yet validated.

alter table public.traffic_user_utm_sources
drop constraint traffic_user_utm_sources_utm_source_is_a_touch;

alter table public.traffic_user_utm_sources
add constraint traffic_user_utm_sources_utm_source_is_a_touch check (
  private.utm_touch_value(utm_source) is not distinct from utm_source
) not valid;

comment on constraint traffic_user_utm_sources_utm_source_is_a_touch on public.traffic_user_utm_sources is
'The source is a value a touch records (private.utm_touch_value): not a placeholder such as '
'nil, null, (direct) or {campaign}, no blanks around it. A lead is attributed by the exact '
'value.';

do $$
begin
  if not exists (
    select from public.traffic_user_utm_sources as s
    where private.utm_touch_value(s.utm_source) is distinct from s.utm_source
  ) then
    alter table public.traffic_user_utm_sources validate constraint traffic_user_utm_sources_utm_source_is_a_touch;
  end if;
end;
$$;
