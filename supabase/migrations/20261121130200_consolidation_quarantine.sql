-- Consolidation quarantine: legacy rows that could not be imported, with the reason.
--
-- Seed 004 (phase 5: every record accounted for): a journey row whose lead does not
-- exist, a lead row with no name, email or phone, an unreadable stage... is never
-- dropped silently; it is kept here verbatim with the reason, for review.

create table private.consolidation_quarantine (
  source_table text not null check (pg_catalog.length(source_table) between 1 and 63),
  legacy_id text not null check (pg_catalog.length(legacy_id) between 1 and 100),
  reason text not null check (pg_catalog.length(reason) between 1 and 200),
  row_data jsonb not null,
  run_id bigint not null references private.consolidation_runs (id),
  quarantined_at timestamptz not null default pg_catalog.now(),
  primary key (source_table, legacy_id)
);

comment on table private.consolidation_quarantine is
'Legacy rows not imported by onai-db consolidate, verbatim (row_data) with the reason.';

create index consolidation_quarantine_run_id_idx on private.consolidation_quarantine (run_id);
