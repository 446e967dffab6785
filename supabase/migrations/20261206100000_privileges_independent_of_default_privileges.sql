-- The API roles' privileges on every table, view and sequence of this project, stated
-- explicitly instead of left to the project's default privileges.
--
-- Found by review of a hosted deploy: the migrations grant what each role needs and rely on
-- Supabase's 2026-10-30 default ("new tables are not exposed") for everything else. A
-- project created before it (the Traffic project is one) still grants all on every new
-- table, view and sequence in public to anon, authenticated and service_role. There the
-- column-only grant on traffic_leads (update of name and metadata) was void, so a sales
-- manager could re-attribute a lead (first_utm_source) or rewrite its identity fields, and
-- anon could read the monitoring views. Each object's privileges are revoked from the three
-- roles and granted again exactly as a project with the current default has them (the
-- residue of TRUNCATE, REFERENCES and TRIGGER included), so both kinds of project end alike.
-- Functions were already explicit (every one revokes execute before it grants it). The
-- test suite builds a database under the old default and compares every privilege.

revoke all on table public.app_user_roles from anon, authenticated, service_role;
grant insert, select, delete on table public.app_user_roles to authenticated;
grant all on table public.app_user_roles to service_role;

revoke all on table public.integration_logs from anon, authenticated, service_role;
grant insert, select, delete, truncate, references, trigger on table public.integration_logs to service_role;

revoke all on table public.integration_tokens from anon, authenticated, service_role;
grant all on table public.integration_tokens to service_role;

revoke all on table public.outbox_jobs from anon, authenticated, service_role;
grant all on table public.outbox_jobs to service_role;

revoke all on table public.telegram_groups from anon, authenticated, service_role;
grant insert, select, update, delete on table public.telegram_groups to authenticated;
grant all on table public.telegram_groups to service_role;

revoke all on table public.traffic_lead_daily_stats from anon, authenticated, service_role;
grant select on table public.traffic_lead_daily_stats to authenticated;
grant all on table public.traffic_lead_daily_stats to service_role;

revoke all on table public.traffic_lead_journey from anon, authenticated, service_role;
grant select on table public.traffic_lead_journey to authenticated;
grant all on table public.traffic_lead_journey to service_role;

revoke all on table public.traffic_lead_merges from anon, authenticated, service_role;
grant select on table public.traffic_lead_merges to authenticated;
grant all on table public.traffic_lead_merges to service_role;

revoke all on table public.traffic_leads from anon, authenticated, service_role;
grant select on table public.traffic_leads to authenticated;
grant all on table public.traffic_leads to service_role;
grant update (name) on table public.traffic_leads to authenticated;
grant update (metadata) on table public.traffic_leads to authenticated;

revoke all on table public.traffic_teams from anon, authenticated, service_role;
grant insert, select, update, delete on table public.traffic_teams to authenticated;
grant all on table public.traffic_teams to service_role;

revoke all on table public.traffic_user_utm_sources from anon, authenticated, service_role;
grant insert, select, update, delete on table public.traffic_user_utm_sources to authenticated;
grant all on table public.traffic_user_utm_sources to service_role;

revoke all on table public.traffic_users from anon, authenticated, service_role;
grant select, delete on table public.traffic_users to authenticated;
grant all on table public.traffic_users to service_role;
grant insert (id) on table public.traffic_users to authenticated;
grant insert (email), update (email) on table public.traffic_users to authenticated;
grant insert (full_name), update (full_name) on table public.traffic_users to authenticated;
grant insert (team_id), update (team_id) on table public.traffic_users to authenticated;
grant insert (is_active), update (is_active) on table public.traffic_users to authenticated;

revoke all on sequence public.integration_logs_id_seq from anon, authenticated, service_role;
grant update on sequence public.integration_logs_id_seq to service_role;

revoke all on sequence public.outbox_jobs_id_seq from anon, authenticated, service_role;
grant update on sequence public.outbox_jobs_id_seq to service_role;

revoke all on sequence public.traffic_lead_journey_id_seq from anon, authenticated, service_role;
grant update on sequence public.traffic_lead_journey_id_seq to service_role;

revoke all on sequence public.traffic_lead_merges_id_seq from anon, authenticated, service_role;
grant update on sequence public.traffic_lead_merges_id_seq to service_role;

revoke all on sequence public.traffic_leads_lead_no_seq from anon, authenticated, service_role;
grant update on sequence public.traffic_leads_lead_no_seq to service_role;

revoke all on table public.amocrm_sync_backlog from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.amocrm_sync_backlog to service_role;

revoke all on table public.integration_daily_stats from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.integration_daily_stats to service_role;

revoke all on table public.integration_recent_errors from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.integration_recent_errors to service_role;

revoke all on table public.landing_leads from anon, authenticated, service_role;
grant select on table public.landing_leads to authenticated;
grant select, truncate, references, trigger on table public.landing_leads to service_role;

revoke all on table public.lead_journey from anon, authenticated, service_role;
grant select on table public.lead_journey to authenticated;
grant select, truncate, references, trigger on table public.lead_journey to service_role;

revoke all on table public.outbox_dead_jobs from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.outbox_dead_jobs to service_role;

revoke all on table public.outbox_queue_stats from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.outbox_queue_stats to service_role;

revoke all on table public.telegram_group_stats from anon, authenticated, service_role;
grant select, truncate, references, trigger on table public.telegram_group_stats to service_role;

revoke all on table public.traffic_lead_attribution from anon, authenticated, service_role;
grant select on table public.traffic_lead_attribution to authenticated;
grant select, truncate, references, trigger on table public.traffic_lead_attribution to service_role;
