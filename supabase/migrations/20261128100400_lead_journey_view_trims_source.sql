-- lead_journey: the source as sent, trimmed like every argument; blank is no source.
--
-- Issue 3, item 6 (found by a review): the view showed the journey row's raw input
-- (input ->> 'source', the argument untouched), so a form posting ' proftest\r\n' showed
-- that, and a blank field showed '' where landing_leads.source (trimmed) and the README
-- ("what is left empty is no value") say proftest and NULL. The raw value is trimmed of the
-- same blanks as find_or_create_unified_lead trims its arguments; an empty one falls back
-- to the row's canonical source (NULL for a blank field). Otherwise the same view as in
-- 20261122130500.

create or replace view public.lead_journey
with (security_invoker = true)
as
select
  j.id,
  j.lead_id,
  j.stage,
  coalesce(
    nullif(
      pg_catalog.btrim(
        j.input ->> 'source',
        U&' \0009\000A\000B\000C\000D\0085\00A0\1680\2000\2001\2002\2003\2004\2005'
        || U&'\2006\2007\2008\2009\200A\200B\2028\2029\202F\205F\3000\FEFF'
      ),
      ''
    ),
    j.source
  ) as source,
  j.metadata,
  j.occurred_at as created_at
from public.traffic_lead_journey as j;

comment on view public.lead_journey is
'Compatibility: the legacy Landing lead_journey shape over traffic_lead_journey (read-only); source as sent '
'(trimmed; blank is NULL).';
