-- Consolidation staging: the legacy lead rows in one shape, and the identity plan.
--
-- Seed 004 (phase 2) asks for a bulk move, not a row-by-row RPC loop. The backed-up
-- Landing tables are copied into scratch tables (created per run as
-- private.consolidation_raw_<table>), the three lead tables are unioned here in replay
-- order, and the identity plan (which rows are one person, in which batch) is loaded
-- next to them. Unlogged: scratch data, rebuilt from the backup by every run.

create unlogged table private.consolidation_stage_leads (
  ord bigint primary key,
  src text not null,
  legacy_id text not null,
  name text,
  email text,
  phone text,
  source text,
  source_canonical text,
  utm_source text,
  utm_medium text,
  utm_campaign text,
  utm_content text,
  utm_term text,
  metadata jsonb not null,
  amocrm_lead_id bigint,
  amocrm_contact_id bigint,
  amocrm_synced boolean not null,
  email_sent boolean not null,
  sms_sent boolean not null,
  click_count integer not null,
  created_at timestamptz not null,
  phone_n text,
  email_n text,
  problem text,
  unique (src, legacy_id)
);

comment on table private.consolidation_stage_leads is
'Scratch: every legacy lead row in one shape; ord = replay order (created_at, table, id); '
'phone_n/email_n = normalized identifiers; problem = why the row cannot be imported.';

create unlogged table private.consolidation_stage_plan (
  ord bigint primary key,
  comp bigint not null,
  comp_size integer not null,
  fill_rank integer not null,
  batch_no integer not null,
  creator boolean not null,
  existing_leads uuid[]
);

comment on table private.consolidation_stage_plan is
'Scratch: identity plan per staged row: comp = the person (all rows that end as one lead), comp_size = its rows, '
'fill_rank = precedence when filling gaps (as a one-by-one replay would apply them), batch_no = commit unit, '
'creator = the row whose lead survives, existing_leads = live target leads the person already has.';

create index consolidation_stage_plan_batch_idx on private.consolidation_stage_plan (batch_no);
