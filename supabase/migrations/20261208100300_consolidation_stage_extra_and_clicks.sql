-- Consolidation staging: landing_leads' click columns, and the other columns apart.
--
-- Issue 4 (every source row accounted for, nothing lost; found by review of the
-- consolidation's handling of columns beyond the reconstructed schema):
-- * email_clicked, email_clicked_at, sms_clicked and sms_clicked_at are columns of the seeds'
--   landing_leads and of traffic_leads; a Landing that has them had their values put into
--   the lead's metadata, while traffic_leads' own columns (and the landing_leads view) said
--   false. They are staged now, and merged as merge_leads merges them (either clicked, the
--   earliest time);
-- * the values of columns the import does not know are staged apart (extra) from the row's
--   own metadata: an over-large one no longer quarantines the row (its lead and journey)
--   through the metadata's 64 KiB check, and it is left out of the row's fingerprint (a
--   column Landing keeps updating is not a change of what the import reads).

alter table private.consolidation_stage_leads
add column email_clicked boolean not null default false,
add column email_clicked_at timestamptz,
add column sms_clicked boolean not null default false,
add column sms_clicked_at timestamptz,
add column extra jsonb;

comment on column private.consolidation_stage_leads.extra is
'Values of the source row''s columns the import does not know (a key per column); merged under '
'the row''s own metadata into the lead''s when both fit in 64 KiB, else kept in the backup only.';
