-- Legacy lead map: every Landing lead row (table, id) and the lead it became.
--
-- Seed 004 (phase 5: "all links preserved") and seed 000 ("Унифицировать таблицы
-- лидов"): after consolidation any old id from landing_leads, lead_tracking or
-- unified_lead_tracking must still resolve to its person. The map stores the lead the
-- row was imported into; private.legacy_lead() follows later merges to the live lead.

create table private.legacy_lead_map (
  source_table text not null
  check (source_table in ('landing_leads', 'lead_tracking', 'unified_lead_tracking')),
  legacy_id text not null check (pg_catalog.length(legacy_id) between 1 and 100),
  -- no foreign key: every mapped lead carries the row's lead_captured journey event, whose
  -- foreign key (on delete restrict) already keeps the lead; a second one would only slow
  -- the bulk import and block truncating traffic_leads in test fixtures
  lead_id uuid not null,
  outcome text not null check (outcome in ('migrated', 'merged')),
  run_id bigint not null references private.consolidation_runs (id),
  mapped_at timestamptz not null default pg_catalog.now(),
  primary key (source_table, legacy_id)
);

comment on table private.legacy_lead_map is
'Every imported legacy lead row -> the traffic lead it became. outcome: migrated = the row that created '
'the surviving lead; merged = folded into a lead created by another row (or an existing lead).';

create index legacy_lead_map_lead_id_idx on private.legacy_lead_map (lead_id);
create index legacy_lead_map_run_id_idx on private.legacy_lead_map (run_id);

create or replace function private.legacy_lead(p_source_table text, p_legacy_id text)
returns uuid
language sql
stable
set search_path = ''
as $$
  select private.live_lead(m.lead_id)
  from private.legacy_lead_map as m
  where m.source_table = p_source_table and m.legacy_id = p_legacy_id
$$;

comment on function private.legacy_lead(text, text) is
'The live traffic lead a legacy Landing row (table, id) belongs to today, or NULL when never imported.';

revoke all on function private.legacy_lead(text, text) from public;
