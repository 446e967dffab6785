-- A first or last touch of traffic_leads has its time.
--
-- Issue 3, item 7 (found by a review): first and last touch are decided by time (a call's
-- event replaces the first touch when it is earlier, a merge keeps the earlier of the two
-- leads'), and both read a missing time as "no touch". A lead written straight into the
-- table by the service role with first_utm_source but no first_touch_at therefore lost its
-- attribution to the next call that named any utm_source (the lead moved to another
-- targetologist), or to a merge. A touch without its time is now refused (23514). Rows
-- written so far without one get the lead's created_at, the time the attribution was
-- written with the lead.

update public.traffic_leads
set
  first_touch_at = case
    when first_utm_source is not null and first_touch_at is null then created_at
    else first_touch_at
  end,
  last_touch_at = case
    when last_utm_source is not null and last_touch_at is null then created_at
    else last_touch_at
  end
where
  (first_utm_source is not null and first_touch_at is null)
  or (last_utm_source is not null and last_touch_at is null);

alter table public.traffic_leads
add constraint traffic_leads_touch_times_check check (
  (first_utm_source is null or first_touch_at is not null)
  and (last_utm_source is null or last_touch_at is not null)
);

comment on constraint traffic_leads_touch_times_check on public.traffic_leads is
'A first or last touch (a utm_source) has its time: touches are decided by time.';
