-- One check constraint per concern on traffic_leads and traffic_lead_journey instead of one
-- per column; the same rules.
--
-- Issue 3, lead intake benchmark: PostgreSQL reads every check constraint of a table from
-- its stored text and prepares it again for each INSERT or UPDATE statement, so the 19
-- checks of traffic_leads and the 10 of traffic_lead_journey cost about a fifth of an
-- intake call (8 clients: 1,620 calls/s with them, 1,980 without, ~1,810 combined).
-- find_or_create_unified_lead checks every length itself first and names the parameter
-- (SQLSTATE 22001); a direct write that breaks a rule gets 23514 naming the combined
-- constraint, whose comment lists the limits. Adding a constraint checks the existing rows
-- (one scan of each table, under the lock the migration holds).

alter table public.traffic_leads
drop constraint traffic_leads_name_check,
drop constraint traffic_leads_email_check,
drop constraint traffic_leads_phone_check,
drop constraint traffic_leads_source_check,
drop constraint traffic_leads_source_raw_check,
drop constraint traffic_leads_metadata_check,
drop constraint traffic_leads_click_count_check,
drop constraint traffic_leads_first_utm_source_check,
drop constraint traffic_leads_first_utm_medium_check,
drop constraint traffic_leads_first_utm_campaign_check,
drop constraint traffic_leads_first_utm_content_check,
drop constraint traffic_leads_first_utm_term_check,
drop constraint traffic_leads_last_utm_source_check,
drop constraint traffic_leads_last_utm_medium_check,
drop constraint traffic_leads_last_utm_campaign_check,
drop constraint traffic_leads_last_utm_content_check,
drop constraint traffic_leads_last_utm_term_check,
drop constraint traffic_leads_merge_consistent,
drop constraint traffic_leads_not_merged_into_self,
add constraint traffic_leads_values_check check (
  length(name) <= 200
  and length(email) <= 320
  and length(phone) <= 64
  and length(source) <= 100
  and length(source_raw) <= 100
  and jsonb_typeof(metadata) = 'object'
  and pg_column_size(metadata) <= 65536
  and click_count >= 0
  and length(first_utm_source) <= 255
  and length(first_utm_medium) <= 255
  and length(first_utm_campaign) <= 255
  and length(first_utm_content) <= 255
  and length(first_utm_term) <= 255
  and length(last_utm_source) <= 255
  and length(last_utm_medium) <= 255
  and length(last_utm_campaign) <= 255
  and length(last_utm_content) <= 255
  and length(last_utm_term) <= 255
),
add constraint traffic_leads_merge_check check (
  (merged_into is null) = (merged_at is null)
  and merged_into <> id
);

comment on constraint traffic_leads_values_check on public.traffic_leads is
'At most: name 200 characters, email 320, phone 64, source and source_raw 100, each UTM field 255; '
'metadata a JSON object of at most 64 KiB; click_count not negative.';

comment on constraint traffic_leads_merge_check on public.traffic_leads is
'merged_into and merged_at are set together, and a lead is never merged into itself.';

alter table public.traffic_lead_journey
drop constraint traffic_lead_journey_stage_check,
drop constraint traffic_lead_journey_source_check,
drop constraint traffic_lead_journey_utm_source_check,
drop constraint traffic_lead_journey_utm_medium_check,
drop constraint traffic_lead_journey_utm_campaign_check,
drop constraint traffic_lead_journey_utm_content_check,
drop constraint traffic_lead_journey_utm_term_check,
drop constraint traffic_lead_journey_input_check,
drop constraint traffic_lead_journey_metadata_check,
drop constraint traffic_lead_journey_event_key_check,
add constraint traffic_lead_journey_values_check check (
  stage ~ '^[a-z][a-z0-9_]{0,62}$'
  and length(source) <= 100
  and length(utm_source) <= 255
  and length(utm_medium) <= 255
  and length(utm_campaign) <= 255
  and length(utm_content) <= 255
  and length(utm_term) <= 255
  and jsonb_typeof(input) = 'object'
  and jsonb_typeof(metadata) = 'object'
  and pg_column_size(metadata) <= 65536
  and length(event_key) between 1 and 255
);

comment on constraint traffic_lead_journey_values_check on public.traffic_lead_journey is
'stage is snake_case (a letter, then up to 62 letters, digits or underscores); at most: source 100 '
'characters, each UTM field 255, event_key 1 to 255; input and metadata JSON objects, metadata at most 64 KiB.';
