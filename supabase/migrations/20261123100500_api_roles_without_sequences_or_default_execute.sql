-- API roles: no privilege on sequences, and no EXECUTE on functions created from now on
-- unless a migration grants it.
--
-- Foundation (security review of stop 12): the default privileges hosted Supabase leaves
-- behind (and the platform bootstrap reproduces) gave anon and authenticated UPDATE on every
-- sequence in public. PostgREST never touches a sequence, but anyone running SQL as those
-- roles could setval() traffic_leads_lead_no_seq or outbox_jobs_id_seq and break intake and
-- the outbox (23505 on the next insert, or "reached maximum value"). No API role but
-- service_role inserts into a table with a sequence (policies/), so they need none.
-- Functions fall back to PostgreSQL's default EXECUTE for PUBLIC, so a new function in
-- public that forgot its revoke would be callable by anon through /rpc. Every migration
-- grants what the access matrix says explicitly, so the default is now no EXECUTE at all
-- (for functions created by the migration role in any schema; existing ones keep theirs).

revoke all on all sequences in schema public from anon, authenticated;

alter default privileges in schema public revoke all on sequences from anon, authenticated;

alter default privileges revoke execute on functions from public;
