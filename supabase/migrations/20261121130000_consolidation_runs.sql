-- Consolidation run ledger: every `onai-db consolidate` run and each committed batch.
--
-- Seed 004 (phase 2, data migration; phase 5, verification): the Landing -> Traffic
-- move is done in committed batches so a killed run can be resumed; the ledger records
-- what a run did, which batches are committed and the final verification report.
-- Private schema: read and written only by the migration owner (the CLI connects as
-- postgres), never exposed through the API.

create table private.consolidation_runs (
  id bigint generated always as identity primary key,
  source_fingerprint text not null check (pg_catalog.length(source_fingerprint) between 1 and 200),
  status text not null default 'running'
  check (status in ('running', 'completed', 'failed', 'interrupted', 'dry_run')),
  phase text,
  batch_size integer not null check (batch_size > 0),
  resumed_from bigint references private.consolidation_runs (id),
  changes jsonb not null default '{}'::jsonb,
  report jsonb,
  started_at timestamptz not null default pg_catalog.now(),
  finished_at timestamptz
);

comment on table private.consolidation_runs is
'One row per onai-db consolidate run: status, current phase, changes made and the verification report.';
comment on column private.consolidation_runs.source_fingerprint is
'Checksum over the backed-up source tables, so a re-run can tell whether Landing changed since.';
comment on column private.consolidation_runs.resumed_from is
'The interrupted run (status running when this one started) this run finished.';

create index consolidation_runs_resumed_from_idx on private.consolidation_runs (resumed_from);

create table private.consolidation_batches (
  run_id bigint not null references private.consolidation_runs (id),
  phase text not null,
  batch_no integer not null,
  rows_in integer not null default 0,
  leads_created integer not null default 0,
  journey_rows integer not null default 0,
  committed_at timestamptz not null default pg_catalog.now(),
  primary key (run_id, phase, batch_no)
);

comment on table private.consolidation_batches is
'Batches committed by a consolidation run, written in the same transaction as the batch itself.';
