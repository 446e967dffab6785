-- traffic_leads.merged_into: index only the merged leads.
--
-- Issue 3, item 8 (no index costs more than it serves): the index finds the leads merged
-- into a given lead (re-pointing them when that lead is merged in turn, and the foreign key
-- check when a lead is deleted). Both look for one non-null value, but the index also held
-- every live lead's NULL, so each new lead added an entry nobody reads. Now it holds the
-- merged leads only; `merged_into = $1` implies `merged_into is not null`, so the same
-- queries use it.

drop index public.traffic_leads_merged_into_idx;

create index traffic_leads_merged_into_idx on public.traffic_leads (merged_into)
where merged_into is not null;

comment on index public.traffic_leads_merged_into_idx is
'Leads merged into a given lead (merge chains, the foreign key check on delete); merged leads only.';
