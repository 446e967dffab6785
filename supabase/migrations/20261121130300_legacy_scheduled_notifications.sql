-- Legacy scheduled notifications, imported with their lead remapped.
--
-- Seed 004 (phase 1: traffic_scheduled_notifications, optional; phase 3: email/SMS
-- jobs read from Traffic). Landing's scheduled_notifications rows are kept here with
-- the unified lead id, so nothing is lost at cut-over; pending ones are handed to the
-- outbox queue by a follow-up (docs/consolidation.md).

create table private.legacy_scheduled_notifications (
  legacy_id text primary key check (pg_catalog.length(legacy_id) between 1 and 100),
  lead_id uuid not null, -- a mapped lead (see private.legacy_lead_map: no foreign key, on purpose)
  delivery_channel text,
  recipient text,
  template_name text,
  payload jsonb,
  scheduled_for timestamptz,
  status text,
  sent_at timestamptz,
  created_at timestamptz,
  run_id bigint not null references private.consolidation_runs (id)
);

comment on table private.legacy_scheduled_notifications is
'Landing scheduled_notifications rows (raw values) with lead_id remapped to the unified lead.';
comment on column private.legacy_scheduled_notifications.lead_id is
'The traffic lead at import time; resolve with private.live_lead() after later merges.';

create index legacy_scheduled_notifications_lead_id_idx on private.legacy_scheduled_notifications (lead_id);
create index legacy_scheduled_notifications_run_id_idx on private.legacy_scheduled_notifications (run_id);
create index legacy_scheduled_notifications_pending_idx on private.legacy_scheduled_notifications (scheduled_for)
where status = 'pending';
